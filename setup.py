"""Only what pyproject.toml cannot say:

- the repository's ``actors/`` folder (the actors shipped with the gateway) holds the package
  ``gwproactor_actors``: an import name of its own, so it cannot clash with a user's package;
- the repository's ``config/`` folder (example configs, the systemd unit, monitoring rules)
  is shipped inside the wheel as the data package ``gwproactor.examples``, so that an
  installed ``gwproactor demo`` and ``gwproactor install-unit`` find them."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["gwproactor", "gwproactor.*"]),
        *find_packages(where="actors", include=["gwproactor_actors", "gwproactor_actors.*"]),
        "gwproactor.examples",
    ],
    package_dir={
        "gwproactor_actors": "actors/gwproactor_actors",
        "gwproactor.examples": "config",
    },
)
