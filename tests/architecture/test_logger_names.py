"""Log lines name public places: no logger of the package is named after a private module
(``gwproactor.store._store``); an operator filters on ``gwproactor.store``."""

from __future__ import annotations

import importlib
import logging
import pkgutil

import gwproactor


def test_no_logger_is_named_after_a_private_module() -> None:
    for info in pkgutil.walk_packages(gwproactor.__path__, "gwproactor."):
        if not info.name.endswith("__main__"):  # that one runs the command line
            importlib.import_module(info.name)
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith("gwproactor.")]
    private = [n for n in names if any(part.startswith("_") for part in n.split("."))]
    assert private == []
