"""Writes config/monitoring/: Prometheus alert rules and a Grafana dashboard over the
gateway's /metrics. The rules and panels are written here once, as data, and rendered to
the YAML and JSON files operators load; ``--check`` fails when the files are stale (the
test runs it, so the files and this source cannot drift apart).

    .venv/bin/python scripts/monitoring.py           # rewrite the files
    .venv/bin/python scripts/monitoring.py --check   # exit 1 if they differ
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "config" / "monitoring"
RULES_FILE = OUT / "gwproactor-alerts.yml"
DASHBOARD_FILE = OUT / "gwproactor-dashboard.json"

# Minutes and thresholds an operator tunes: named here, used below.
LINK_DOWN_MINUTES = 5
PEER_SILENT_SECONDS = 300
BACKLOG_EVENTS = 100
LOOP_LAG_SECONDS = 0.5

RULES: list[dict[str, Any]] = [
    {
        "alert": "GwproactorLinkNotActive",
        "expr": "gwproactor_link_active == 0",
        "for": f"{LINK_DOWN_MINUTES}m",
        "severity": "warning",
        "summary": "Link {{ $labels.link }} of {{ $labels.instance }} not active",
        "description": (
            f"The link has not been active for {LINK_DOWN_MINUTES} minutes: its broker is "
            "unreachable, a subscription is refused, acks do not come back or the peer is "
            "silent. See gwproactor_link_state for which."
        ),
    },
    {
        "alert": "GwproactorNoDataFromPeer",
        "expr": f"gwproactor_link_seconds_since_heard > {PEER_SILENT_SECONDS}",
        "for": "2m",
        "severity": "warning",
        "summary": "No data from the peer of link {{ $labels.link }} on {{ $labels.instance }}",
        "description": (
            "Nothing valid heard from the peer for {{ $value | humanizeDuration }} (since "
            "start when never heard)."
        ),
    },
    {
        "alert": "GwproactorBacklogGrowing",
        "expr": (
            f"gwproactor_store_pending_events > {BACKLOG_EVENTS} "
            "and deriv(gwproactor_store_pending_events[15m]) > 0"
        ),
        "for": "15m",
        "severity": "warning",
        "summary": "Event backlog of {{ $labels.instance }} growing ({{ $value }} pending)",
        "description": (
            "Events are stored faster than upstream acknowledges them: the upstream link is "
            "down or slow. The store is bounded; past its size events are dropped or refused."
        ),
    },
    {
        "alert": "GwproactorEventsDropped",
        "expr": (
            "increase(gwproactor_store_events_dropped_total[10m]) > 0 "
            "or increase(gwproactor_store_events_refused_total[10m]) > 0 "
            "or increase(gwproactor_store_write_errors_total[10m]) > 0 "
            "or increase(gwproactor_events_rejected_total[10m]) > 0"
        ),
        "for": "0m",
        "severity": "critical",
        "summary": "{{ $labels.instance }} is losing events",
        "description": (
            "The store dropped (drop_oldest), refused (refuse_new) or failed to write events, "
            "or actors' events were rejected (not stored), in the last 10 minutes: data is "
            "being lost. Check disk space, the upstream link and the gateway's log."
        ),
    },
    {
        "alert": "GwproactorDeadLetters",
        "expr": "increase(gwproactor_store_dead_letters_total[1h]) > 0",
        "for": "0m",
        "severity": "warning",
        "summary": "{{ $labels.instance }} moved events to the dead letters",
        "description": (
            "Upstream never acknowledged these events after max_delivery_attempts; they wait "
            "in the dead-letter table (gwproactor store CONFIG dead-letters)."
        ),
    },
    {
        "alert": "GwproactorWatchdogStall",
        "expr": (
            "gwproactor_watchdog_satisfied == 0 "
            "or increase(gwproactor_watchdog_stalls_total[10m]) > 0"
        ),
        "for": "0m",
        "severity": "critical",
        "summary": "A part of {{ $labels.instance }} stopped patting its watchdog",
        "description": (
            "A thread or the event loop went silent (gwproactor_watchdog_stalled says which); "
            "under systemd the unit is restarted."
        ),
    },
    {
        "alert": "GwproactorLoopLag",
        "expr": f"gwproactor_loop_lag_seconds > {LOOP_LAG_SECONDS}",
        "for": "5m",
        "severity": "warning",
        "summary": "Event loop of {{ $labels.instance }} lagging ({{ $value }} s)",
        "description": "Something blocks the event loop: every link and timer is late.",
    },
    {
        "alert": "GwproactorActorErrors",
        "expr": "increase(gwproactor_actor_errors_total[10m]) > 0",
        "for": "0m",
        "severity": "warning",
        "summary": "Actor {{ $labels.actor }} of {{ $labels.instance }} is failing",
        "description": "Its handler or its thread failed {{ $value }} times in 10 minutes.",
    },
]


def rules_yaml(*, annotations: bool = True) -> str:
    """The rules as a Prometheus rule file (YAML written by hand: every value quoted as a
    JSON string, which is valid YAML, so no YAML library is needed). ``annotations=False``
    leaves out the texts (for promtool's unit tests, which compare them too)."""
    lines = [
        "# Prometheus alert rules for gwproactor gateways (generated by scripts/monitoring.py).",
        "# Load with rule_files: [gwproactor-alerts.yml]; check with promtool check rules.",
        "groups:",
        "  - name: gwproactor",
        "    rules:",
    ]
    for rule in RULES:
        lines += [
            f"      - alert: {rule['alert']}",
            f"        expr: {json.dumps(rule['expr'])}",
            f"        for: {rule['for']}",
            "        labels:",
            f"          severity: {rule['severity']}",
        ]
        if annotations:
            lines += [
                "        annotations:",
                f"          summary: {json.dumps(rule['summary'])}",
                f"          description: {json.dumps(rule['description'])}",
            ]
    return "\n".join(lines) + "\n"


_PANELS: list[tuple[str, str, list[tuple[str, str]], str]] = [
    # (title, type, [(expr, legend)], unit)
    ("Ready", "stat", [('gwproactor_ready{instance=~"$instance"}', "{{instance}}")], "none"),
    (
        "Link state",
        "state-timeline",
        [
            (
                'max by (link, state) (gwproactor_link_state{instance=~"$instance"} == 1)',
                "{{link}}: {{state}}",
            )
        ],
        "none",
    ),
    (
        "Seconds since the peer was heard",
        "timeseries",
        [('gwproactor_link_seconds_since_heard{instance=~"$instance"}', "{{link}}")],
        "s",
    ),
    (
        "Store backlog (pending events)",
        "timeseries",
        [('gwproactor_store_pending_events{instance=~"$instance"}', "{{instance}}")],
        "none",
    ),
    (
        "Events lost or parked (per 10 min)",
        "timeseries",
        [
            (
                'increase(gwproactor_store_events_dropped_total{instance=~"$instance"}[10m])',
                "dropped",
            ),
            (
                'increase(gwproactor_store_events_refused_total{instance=~"$instance"}[10m])',
                "refused",
            ),
            (
                'increase(gwproactor_store_write_errors_total{instance=~"$instance"}[10m])',
                "write errors",
            ),
            (
                'increase(gwproactor_store_dead_letters_total{instance=~"$instance"}[10m])',
                "dead letters",
            ),
            (
                'increase(gwproactor_events_rejected_total{instance=~"$instance"}[10m])',
                "rejected",
            ),
        ],
        "none",
    ),
    (
        "Messages per second",
        "timeseries",
        [
            (
                "sum by (link) "
                '(rate(gwproactor_link_messages_in_total{instance=~"$instance"}[5m]))',
                "{{link}} in",
            ),
            (
                "sum by (link) "
                '(rate(gwproactor_link_messages_out_total{instance=~"$instance"}[5m]))',
                "{{link}} out",
            ),
        ],
        "ops",
    ),
    (
        "Connect failures and ack timeouts (per 10 min)",
        "timeseries",
        [
            (
                'increase(gwproactor_link_connect_failures_total{instance=~"$instance"}[10m])',
                "{{link}} connect failures",
            ),
            (
                'increase(gwproactor_link_ack_timeouts_total{instance=~"$instance"}[10m])',
                "{{link}} ack timeouts",
            ),
        ],
        "none",
    ),
    (
        "Actor errors (per 10 min)",
        "timeseries",
        [('increase(gwproactor_actor_errors_total{instance=~"$instance"}[10m])', "{{actor}}")],
        "none",
    ),
    (
        "Problems by kind (per 10 min)",
        "timeseries",
        [('increase(gwproactor_problems_total{instance=~"$instance"}[10m])', "{{kind}}")],
        "none",
    ),
    (
        "Event loop lag and watchdog stalls",
        "timeseries",
        [
            ('gwproactor_loop_lag_seconds{instance=~"$instance"}', "loop lag (s)"),
            (
                'increase(gwproactor_watchdog_stalls_total{instance=~"$instance"}[10m])',
                "stalls per 10 min",
            ),
        ],
        "none",
    ),
]


def dashboard() -> dict[str, Any]:
    """A Grafana dashboard (schema 39) with a Prometheus data source variable and an
    ``instance`` variable (the gateways scraped)."""
    panels = []
    for index, (title, kind, targets, unit) in enumerate(_PANELS):
        width = 24 if kind == "state-timeline" else 12
        panels.append(
            {
                "id": index + 1,
                "title": title,
                "type": kind,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {
                    "h": 8,
                    "w": width,
                    "x": 0 if width == 24 else 12 * (index % 2),
                    "y": 8 * index,
                },
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "options": {},
                "targets": [
                    {"refId": chr(ord("A") + n), "expr": expr, "legendFormat": legend}
                    for n, (expr, legend) in enumerate(targets)
                ],
            }
        )
    return {
        "title": "gwproactor gateways",
        "uid": "gwproactor",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "30s",
        "tags": ["gwproactor"],
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "type": "datasource",
                    "query": "prometheus",
                    "label": "Prometheus",
                },
                {
                    "name": "instance",
                    "type": "query",
                    "label": "gateway",
                    "datasource": {"type": "prometheus", "uid": "${datasource}"},
                    "query": "label_values(gwproactor_build_info, instance)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    wanted = {RULES_FILE: rules_yaml(), DASHBOARD_FILE: dashboard_json()}
    if "--check" in argv:
        stale = [p.name for p, text in wanted.items() if not p.exists() or p.read_text() != text]
        if stale:
            print(f"stale: {', '.join(stale)}; run scripts/monitoring.py")
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for path, text in wanted.items():
        path.write_text(text)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
