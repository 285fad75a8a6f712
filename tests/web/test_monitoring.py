"""config/monitoring/: the Prometheus alert rules and the Grafana dashboard are generated
from scripts/monitoring.py and up to date, use only metrics the gateway exports, and (where
Debian's ``prometheus`` package provides promtool) pass ``promtool check rules`` and fire,
in promtool's rule unit tests, on the series they are meant for."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from gwproactor.web import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
_METRIC = re.compile(r"\bgwproactor_[a-z_]+\b")


def _monitoring() -> ModuleType:
    spec = importlib.util.spec_from_file_location("monitoring", ROOT / "scripts" / "monitoring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_files_are_generated_and_up_to_date() -> None:
    monitoring = _monitoring()
    assert monitoring.main(["--check"]) == 0, "run scripts/monitoring.py"
    assert monitoring.RULES_FILE.read_text() == monitoring.rules_yaml()


def test_rules_and_panels_use_exported_metrics_and_have_their_parts() -> None:
    monitoring = _monitoring()
    exported = set(METRIC_NAMES)
    wanted = {
        "GwproactorLinkNotActive",
        "GwproactorNoDataFromPeer",
        "GwproactorBacklogGrowing",
        "GwproactorEventsDropped",
        "GwproactorDeadLetters",
        "GwproactorWatchdogStall",
    }
    names = [rule["alert"] for rule in monitoring.RULES]
    assert wanted <= set(names) and len(names) == len(set(names))
    for rule in monitoring.RULES:
        assert set(rule) == {"alert", "expr", "for", "severity", "summary", "description"}
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule
        assert rule["severity"] in ("warning", "critical")
        used = set(_METRIC.findall(rule["expr"]))
        assert used and used <= exported, (rule["alert"], used - exported)
    board = json.loads(monitoring.DASHBOARD_FILE.read_text())
    panels = board["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 8
    exprs = [t["expr"] for p in panels for t in p["targets"]]
    used = {m for e in exprs for m in _METRIC.findall(e)}
    assert used <= exported, used - exported
    assert {"gwproactor_store_dead_letters_total", "gwproactor_link_state"} <= used
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource", "instance"]


# One series per alert, shaped so that the alert fires at the evaluation time below and not
# before: (series, values, alert, eval time that fires, eval time that does not, labels).
_CASES = [
    (
        'gwproactor_link_active{instance="gw1",link="parent"}',
        "1 0x15",
        "GwproactorLinkNotActive",
        "8m",
        "3m",
        {"link": "parent"},
    ),
    (
        'gwproactor_link_seconds_since_heard{instance="gw1",link="parent"}',
        "0+60x15",
        "GwproactorNoDataFromPeer",
        "9m",
        "5m",
        {"link": "parent"},
    ),
    (
        'gwproactor_store_pending_events{instance="gw1"}',
        "0+20x40",
        "GwproactorBacklogGrowing",
        "25m",
        "10m",
        {},
    ),
    (
        'gwproactor_store_events_dropped_total{instance="gw1"}',
        "0 0 0 5 5 5",
        "GwproactorEventsDropped",
        "4m",
        "1m",
        {},
    ),
    (
        'gwproactor_store_dead_letters_total{instance="gw1"}',
        "0 0 0 1 1 1",
        "GwproactorDeadLetters",
        "4m",
        "1m",
        {},
    ),
    (
        'gwproactor_watchdog_satisfied{instance="gw1"}',
        "1 1 1 0 0 0",
        "GwproactorWatchdogStall",
        "4m",
        "1m",
        {},
    ),
    ('gwproactor_loop_lag_seconds{instance="gw1"}', "0.9x15", "GwproactorLoopLag", "7m", "3m", {}),
    (
        'gwproactor_actor_errors_total{instance="gw1",actor="relay"}',
        "0 0 0 2 2 2",
        "GwproactorActorErrors",
        "4m",
        "1m",
        {"actor": "relay"},
    ),
]


@pytest.fixture(scope="session")
def promtool() -> str:
    """Debian's promtool, installed by scripts/_ensure_promtool.sh when missing; where it
    cannot be installed the test is skipped (the structure checks above still ran)."""
    found = shutil.which("promtool")
    if found is None:
        script = ROOT / "scripts" / "_ensure_promtool.sh"
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["/bin/sh", str(script)], capture_output=True, timeout=600, check=False)
        found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool cannot be installed here (Debian package prometheus)")
    return found


def test_promtool_checks_the_rules_and_each_alert_fires(tmp_path: Path, promtool: str) -> None:
    monitoring = _monitoring()
    checked = subprocess.run(
        [promtool, "check", "rules", str(monitoring.RULES_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    rules = tmp_path / "rules.yml"
    rules.write_text(monitoring.rules_yaml(annotations=False))
    severity = {r["alert"]: r["severity"] for r in monitoring.RULES}
    lines = [f"rule_files: [{json.dumps(str(rules))}]", "evaluation_interval: 1m", "tests:"]
    for series, values, alert, fires, quiet, labels in _CASES:
        expected = {"instance": "gw1", "severity": severity[alert], **labels}
        lines += [
            "  - interval: 1m",
            "    input_series:",
            f"      - series: {json.dumps(series)}",
            f"        values: {json.dumps(values)}",
            "    alert_rule_test:",
            f"      - eval_time: {quiet}",
            f"        alertname: {alert}",
            "        exp_alerts: []",
            f"      - eval_time: {fires}",
            f"        alertname: {alert}",
            "        exp_alerts:",
            f"          - exp_labels: {json.dumps(expected)}",
        ]
    unit = tmp_path / "tests.yml"
    unit.write_text("\n".join(lines) + "\n")
    tested = subprocess.run(
        [promtool, "test", "rules", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
