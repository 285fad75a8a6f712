"""Settings sources, precedence and errors that name the field and the source."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gwproactor.config import (
    ProactorSettings,
    describe_sources,
    load_settings,
    load_settings_with_sources,
)
from gwproactor.errors import ConfigError

CONFIG = """
name = "child"
receive_queue_max = 500

[links.up]
peer = "parent"
role = "upstream"
broker.host = "10.1.1.1"
broker.port = 1884

[actors.relay1]
class = "gwproactor_actors.relay:RelayActor"
handles = ["sim.relay.set"]
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "child.toml"
    path.write_text(CONFIG)
    return path


def test_file_values_load(config_file: Path) -> None:
    settings = load_settings(config_file, env_file=None, environ={})
    assert settings.name == "child"
    assert settings.links["up"].broker.port == 1884
    assert settings.actors["relay1"].handles == ["sim.relay.set"]
    assert settings.upstream_link == "up"


def test_precedence_argument_env_dotenv_file(config_file: Path, tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(
        "GWPROACTOR_RECEIVE_QUEUE_MAX=700\nGWPROACTOR_LINKS__UP__BROKER__PORT=1885\n"
        "GWPROACTOR_STOP_TIMEOUT_SECONDS=3\n"
    )
    environ = {"GWPROACTOR_LINKS__UP__BROKER__PORT": "1886", "GWPROACTOR_STOP_TIMEOUT_SECONDS": "4"}
    settings, sources = load_settings_with_sources(
        config_file, dotenv, environ=environ, stop_timeout_seconds=2.5
    )
    assert settings.receive_queue_max == 700  # .env beats file
    assert settings.links["up"].broker.port == 1886  # env beats .env
    assert settings.links["up"].broker.host == "10.1.1.1"  # nested merge keeps file's host
    assert settings.stop_timeout_seconds == 2.5  # argument beats env
    assert sources.origin(("receive_queue_max",)).startswith(".env file")
    assert sources.origin(("links", "up", "broker", "host")).startswith("config file")
    assert sources.origin(("dispatch_batch",)) == "default"


def test_bad_env_value_names_field_and_variable(config_file: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(
            config_file, env_file=None, environ={"GWPROACTOR_LINKS__UP__BROKER__PORT": "abc"}
        )
    text = str(info.value)
    assert "links.up.broker.port" in text
    assert "GWPROACTOR_LINKS__UP__BROKER__PORT" in text
    assert "'abc'" in text


def test_bad_file_value_names_field_and_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "x"\n[links.up]\npeer = "p"\nrole = "sideways"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env_file=None, environ={})
    assert "links.up.role" in str(info.value)
    assert f"config file {path}" in str(info.value)


def test_unknown_key_in_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('name = "x"\nrecieve_queue_max = 5\n')
    with pytest.raises(ConfigError, match="recieve_queue_max"):
        load_settings(path, env_file=None, environ={})


def test_malformed_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[links.up\n')
    with pytest.raises(ConfigError, match=r"not valid TOML.*line 2"):
        load_settings(path, env_file=None, environ={})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        describe_sources(tmp_path / "nope.toml", env_file=None, environ={})


def test_bad_name_and_two_upstreams_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid name"):
        load_settings(None, env_file=None, environ={"GWPROACTOR_NAME": "a/b"})
    path = tmp_path / "two.toml"
    path.write_text(
        '[links.a]\npeer = "p"\nrole = "upstream"\n[links.b]\npeer = "q"\nrole = "upstream"\n'
    )
    with pytest.raises(ConfigError, match="at most one upstream"):
        load_settings(path, env_file=None, environ={})


def test_secrets_do_not_show_in_repr(tmp_path: Path) -> None:
    path = tmp_path / "secret.toml"
    path.write_text('[links.up]\npeer = "p"\nbroker.username = "u"\nbroker.password = "hunter2"\n')
    settings = load_settings(path, env_file=None, environ={})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()
    assert settings.links["up"].broker.password is not None
    assert settings.links["up"].broker.password.get_secret_value() == "hunter2"


def test_the_upload_window_setting_has_its_new_name_and_the_old_one_still_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert ProactorSettings().event_upload_window == 200
    with caplog.at_level(logging.WARNING, logger="gwproactor.config"):
        old = ProactorSettings(num_initial_event_reuploads=7)
    assert (old.event_upload_window, old.num_initial_event_reuploads) == (7, 7)
    assert "num_initial_event_reuploads is deprecated" in caplog.text
    assert "num_initial_event_reuploads" not in old.model_dump()
    assert "num_initial_event_reuploads" not in old.model_fields_set

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gwproactor.config"):
        loaded = load_settings(None, None, environ={"GWPROACTOR_NUM_INITIAL_EVENT_REUPLOADS": "9"})
    assert loaded.event_upload_window == 9
    assert "deprecated" in caplog.text

    file = tmp_path / "both.toml"
    file.write_text("num_initial_event_reuploads = 3\nevent_upload_window = 4\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="gwproactor.config"):
        both = load_settings(file, None, environ={})
    assert (both.event_upload_window, both.num_initial_event_reuploads) == (4, 4)
    assert "is ignored" in caplog.text

    with pytest.raises(ConfigError, match="num_initial_event_reuploads"):
        load_settings(None, None, environ={"GWPROACTOR_NUM_INITIAL_EVENT_REUPLOADS": "0"})
    caplog.clear()
    ProactorSettings(event_upload_window=5)
    assert caplog.text == ""
