"""Watchdogs: the internal one (every loop part and thread pats a monitored name), the
service manager's (sd_notify ``WATCHDOG=1``, or a custom pat command), and the patter that
pats the latter only while the former is satisfied.

Threads: everything is loop-only except :meth:`InternalWatchdog.pat_threadsafe`.
"""

from gwproactor.watchdog._external import (
    ExternalWatchdogCommandBuilder,
    SystemDWatchdogCommandBuilder,
    run_pat_command,
)
from gwproactor.watchdog._internal import LOOP_NAME, SPIN_NAME, InternalWatchdog, WatchdogEntry
from gwproactor.watchdog._patter import PatOutcome, WatchdogPatter
from gwproactor.watchdog._sdnotify import STATUS_MAX_CHARS, SdNotifier, one_line

__all__ = (
    # internal
    "InternalWatchdog",
    "LOOP_NAME",
    "SPIN_NAME",
    "WatchdogEntry",
    # service manager
    "SdNotifier",
    "STATUS_MAX_CHARS",
    "one_line",
    # custom pat command
    "ExternalWatchdogCommandBuilder",
    "SystemDWatchdogCommandBuilder",
    "run_pat_command",
    # glue
    "PatOutcome",
    "WatchdogPatter",
)
