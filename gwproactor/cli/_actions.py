"""``gwproactor reconnect LINK``, ``log-level CATEGORY LEVEL``, ``restart-actor NAME``: the
token-protected actions of a running gateway, over its web routes.

The token is the gateway's ``web.token``: ``--token``, else the ``GWPROACTOR_WEB__TOKEN``
environment variable (the same variable the gateway reads). Exit codes: 0 done, 1 the
gateway refused (no or wrong token, unknown link/actor/category, restart failed), 2 it
could not be reached.
"""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from rich.console import Console

from gwproactor.cli._status import (
    EXIT_ERROR_ANSWER,
    EXIT_UNREACHABLE,
    GatewayAnswerError,
    GatewayUnreachableError,
    post_json,
)

__all__ = ("TOKEN_ENV", "action_command", "action_path")

TOKEN_ENV = "GWPROACTOR_WEB__TOKEN"  # noqa: S105  (a variable name, not a secret)


def action_path(action: str, *args: str) -> str:
    """The route of ``action`` (``reconnect``, ``log-level``, ``restart-actor``)."""
    return "/actions/" + "/".join([action, *(quote(a, safe="") for a in args)])


def action_command(
    url: str,
    action: str,
    args: list[str],
    *,
    token: str | None,
    as_json: bool,
    timeout: float,
    console: Console,
) -> int:
    """Ask the gateway at ``url`` to do ``action``; print its answer; return the exit code."""
    token = token or os.environ.get(TOKEN_ENV) or None
    try:
        answer = post_json(url, action_path(action, *args), token=token, timeout=timeout)
    except GatewayUnreachableError as e:
        console.print(f"[red]cannot reach the gateway:[/red] {e}")
        return EXIT_UNREACHABLE
    except GatewayAnswerError as e:
        hint = f" (give --token or set {TOKEN_ENV})" if e.status in (401, 403) else ""
        console.print(f"[red]refused:[/red] {e}{hint}")
        return EXIT_ERROR_ANSWER
    if as_json:
        console.out(json.dumps(answer, sort_keys=True), highlight=False)
    else:
        console.print(_summary(action, args, answer), soft_wrap=True)
    return 0


def _summary(action: str, args: list[str], answer: object) -> str:
    if action == "reconnect" and isinstance(answer, dict):
        return f"link {args[0]}: reconnect requested (was {answer.get('state')})"
    if action == "log-level" and isinstance(answer, dict):
        levels = ", ".join(f"{k}={v}" for k, v in dict(answer.get("levels", {})).items())
        return f"log level of {args[0]} set to {args[1].upper()} ({levels})"
    if action == "restart-actor":
        return f"actor {args[0]} restarted"
    return json.dumps(answer)
