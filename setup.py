"""Only what pyproject.toml cannot say: the repository's ``config/`` folder (example configs,
the systemd unit) is shipped inside the wheel as the data package ``gwproactor.examples``,
so that an installed ``gwproactor demo`` and ``gwproactor install-unit`` find them."""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["gwproactor", "gwproactor.*"]), "gwproactor.examples"],
    package_dir={"gwproactor.examples": "config"},
)
