"""Log formats for daemons, and a handler that fails (a full disk) reporting it once."""

from __future__ import annotations

import errno
import io
import json
import logging
import threading
from pathlib import Path

import pytest

from gwproactor.config import LoggingSettings
from gwproactor.observe.logger import ProactorLogger
from gwproactor.observe.logging_setup import (
    log_uncaught,
    resolve_format,
    setup_logging,
    stream_handler,
)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _record(level: int = logging.ERROR, msg: str = "two\nlines", exc: bool = False) -> str:
    stream = io.StringIO()
    handler = stream_handler("journal", stream)
    log = logging.getLogger("gwproactor.test.format")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    log.addHandler(handler)
    try:
        if exc:
            try:
                raise ValueError("boom\nsecond line")
            except ValueError:
                log.exception(msg)
        else:
            log.log(level, msg)
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def test_journal_lines_have_a_priority_and_no_time() -> None:
    assert _record(logging.ERROR, "hello") == "<3>ERROR gwproactor.test.format: hello\n"
    assert _record(logging.WARNING, "w").startswith("<4>WARNING ")
    assert _record(logging.INFO, "i").startswith("<6>INFO ")
    assert _record(logging.DEBUG, "d").startswith("<7>DEBUG ")


def test_a_traceback_and_newlines_stay_on_one_line() -> None:
    text = _record(msg="failed\nbadly", exc=True)
    assert text.count("\n") == 1
    assert text.startswith("<3>ERROR gwproactor.test.format: failed | badly | Traceback")
    assert "ValueError: boom | second line" in text


def test_json_lines_parse() -> None:
    stream = io.StringIO()
    handler = stream_handler("json", stream)
    record = logging.LogRecord("gwproactor.x", logging.WARNING, __file__, 1, "a %s", ("b",), None)
    handler.handle(record)
    out = json.loads(stream.getvalue())
    assert out["level"] == "WARNING"
    assert out["priority"] == 4
    assert out["message"] == "a b"
    assert out["logger"] == "gwproactor.x"


def test_auto_format() -> None:
    pipe = io.StringIO()
    assert resolve_format("auto", pipe, {"JOURNAL_STREAM": "8:1"}) == "journal"
    assert resolve_format("auto", pipe, {}) == "plain"
    assert resolve_format("auto", _Tty(), {"JOURNAL_STREAM": "8:1"}) == "rich"
    assert resolve_format("json", pipe, {"JOURNAL_STREAM": "8:1"}) == "json"


class _FullDisk(io.StringIO):
    full = True

    def write(self, s: str) -> int:
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(s)


def test_a_failing_handler_reports_once_then_recovery(
    capsys: pytest.CaptureFixture[str],
) -> None:
    stream = _FullDisk()
    handler = stream_handler("plain", stream)
    record = logging.LogRecord("gwproactor.x", logging.INFO, __file__, 1, "event", (), None)
    for _ in range(500):
        handler.handle(record)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "No space left on device" in err
    assert "Logging error" not in err
    stream.full = False
    handler.handle(record)
    handler.handle(record)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "works again; 500 lost" in err
    assert stream.getvalue().count("event") == 2


def test_file_log_off_under_systemd_unless_asked(tmp_path: Path) -> None:
    logger = ProactorLogger("gwproactor.test.filelog")
    for settings, environ, expected in (
        (LoggingSettings(), {"JOURNAL_STREAM": "8:1"}, 0),
        (LoggingSettings(), {}, 1),
        (LoggingSettings(file_enabled=True), {"INVOCATION_ID": "x"}, 1),
        (LoggingSettings(file_enabled=False), {}, 0),
    ):
        handlers = setup_logging(settings, tmp_path, logger=logger, environ=environ)
        try:
            assert len(handlers) == expected, (settings, environ)
        finally:
            for handler in handlers:
                logger.general.removeHandler(handler)
                handler.close()


def test_an_uncaught_thread_exception_is_one_record() -> None:
    stream = io.StringIO()
    log = logging.getLogger("gwproactor.test.uncaught")
    log.propagate = False
    handler = stream_handler("journal", stream)
    log.addHandler(handler)
    restore = log_uncaught(log)
    try:

        def boom() -> None:
            raise RuntimeError("driver\ngone")

        thread = threading.Thread(target=boom, name="sensor.io")
        thread.start()
        thread.join()
    finally:
        restore()
        log.removeHandler(handler)
    text = stream.getvalue()
    assert text.count("\n") == 1, text
    assert text.startswith("<2>CRITICAL gwproactor.test.uncaught: uncaught exception in thread")
    assert "RuntimeError: driver | gone" in text
