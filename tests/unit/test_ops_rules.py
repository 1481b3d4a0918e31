"""The Prometheus alert rules and the Grafana dashboard shipped in ops/: the rules pass
`promtool check rules` and their unit tests (`promtool test rules`), every PromQL expression
(rules and dashboard) names only metrics streamproc exports, the dashboard's queries parse
with Prometheus' own parser, and the dashboard is importable JSON whose panels all have a
datasource and a query.

promtool comes from Debian's prometheus package (./bin/test installs it when run as root);
without it these tests fail, never skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streamproc.core.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "streamproc-alerts.yml"
RULE_TESTS = ROOT / "ops" / "prometheus" / "streamproc-alerts.test.yml"
DASHBOARD = ROOT / "ops" / "grafana" / "streamproc-dashboard.json"
METRIC_NAME = re.compile(r"\bstreamproc_[a-z_]+")
SUFFIXES = {"counter": ("_total", "_created"),
            "histogram": ("_bucket", "_sum", "_count", "_created")}
ALERTS = {"StreamprocConsumerLagGrowing", "StreamprocDeadLettered", "StreamprocIngestDeadLettered",
          "StreamprocDestinationAuthPaused", "StreamprocDestinationPaused",
          "StreamprocDestinationPausedLong", "StreamprocDestinationErrorRate",
          "StreamprocWorkerDown", "StreamprocNoWorkers", "StreamprocPartitionBatchesFailing",
          "StreamprocWorkerNotReady", "StreamprocHoldsExpiring"}


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:  # fail, never skip: the rules must be proven with the real tool
        pytest.fail("promtool is missing: the alert rule tests need Debian's prometheus package "
                    "(apt-get install -y prometheus; ./bin/test installs it when run as root)",
                    pytrace=False)
    return path


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def _rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def _dashboard_exprs(dash: dict) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", []) if "expr" in t]
    for var in dash["templating"]["list"]:
        query = var.get("query")
        if var["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def exported_names() -> dict[str, str]:
    """{sample name a scrape can carry: its family}, from a real Metrics registry."""
    out: dict[str, str] = {}
    for family in Metrics().registry.collect():
        for suffix in SUFFIXES.get(family.type, ("",)):
            out[family.name + suffix] = family.name
        for sample in family.samples:
            out[sample.name] = family.name
    return out


def used_names(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in METRIC_NAME.findall(expr)}


# ------------------------------------------------------------------------------ promtool


def test_promtool_check_rules():
    r = _run("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in r.stdout, r.stdout


def test_promtool_rule_unit_tests_pass():
    r = _run("test", "rules", str(RULE_TESTS.relative_to(ROOT)))
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    assert {rule["alert"] for rule in _rules()} == ALERTS
    doc = yaml.safe_load(RULE_TESTS.read_text())
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == ALERTS, f"no firing case for {ALERTS - fires}"
    assert quiet == ALERTS, f"no quiet case for {ALERTS - quiet}"


def test_rules_have_severity_annotations_and_for():
    for rule in _rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert set(rule["annotations"]) == {"summary", "description"}, name
        assert "{{ $labels." in rule["annotations"]["description"], name
        if not name.endswith("DeadLettered"):  # those fire at once (an increase in 10 min)
            assert rule.get("for"), f"{name} has no for:"


def test_dashboard_queries_parse_with_promtool(tmp_path):
    """Prometheus' parser, through `promtool check rules` on recording rules made of the
    dashboard's queries (Grafana's variables replaced by values)."""
    subst = {"$__rate_interval": "5m", "$job": "streamproc", "$instance": ".*"}
    rules = []
    for n, expr in enumerate(_dashboard_exprs(_dashboard())):
        if expr.startswith("label_values("):  # Grafana's variable query, not PromQL: its selector
            expr = re.match(r"label_values\((.*), *\w+\)$", expr).group(1)
        for var, value in subst.items():
            expr = expr.replace(var, value)
        rules.append({"record": f"dashboard:query_{n}", "expr": expr})
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = _run("check", "rules", str(path))
    assert r.returncode == 0, r.stdout + r.stderr


def test_exposition_passes_promtool_check_metrics():
    m = Metrics()
    for metric in m._metrics.values():  # noqa: SLF001 - one labelled child of each metric
        labels = metric._labelnames  # noqa: SLF001
        child = metric.labels(*["x"] * len(labels)) if labels else metric
        child.observe(1) if hasattr(child, "observe") else child.inc()
    r = subprocess.run([_promtool(), "check", "metrics"], input=m.render().decode(),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------------------ metric names


def test_metric_extraction_strips_suffixes_to_families():
    names = exported_names()
    assert names["streamproc_delivered_total"] == "streamproc_delivered"
    assert names["streamproc_delivery_latency_seconds_bucket"] == \
        "streamproc_delivery_latency_seconds"
    assert names["streamproc_consumer_lag"] == "streamproc_consumer_lag"
    assert "streamproc_consumer_lag_total" not in names  # a gauge has no _total
    assert "streamproc_delivered" not in names  # a counter is exported with _total
    assert used_names(['rate(streamproc_x_total[5m]) / on(le) streamproc_y{a="streamproc"}']) \
        == {"streamproc_x_total", "streamproc_y"}


def test_rules_use_only_metrics_streamproc_exports():
    exprs = [rule["expr"] for rule in _rules()]
    used = used_names(exprs)
    unknown = used - set(exported_names())
    assert not unknown, f"the alert rules use metrics streamproc does not export: {unknown}"
    assert {exported_names()[n] for n in used} >= {
        "streamproc_consumer_lag", "streamproc_dead_lettered", "streamproc_dead_lettered_ingest",
        "streamproc_auth_paused", "streamproc_failed", "streamproc_delivered",
        "streamproc_batch_retries", "streamproc_ready", "streamproc_holds_dropped"}


def test_dashboard_uses_only_metrics_streamproc_exports():
    used = used_names(_dashboard_exprs(_dashboard()))
    unknown = used - set(exported_names())
    assert not unknown, f"the dashboard uses metrics streamproc does not export: {unknown}"
    assert {exported_names()[n] for n in used} >= {
        "streamproc_events_in", "streamproc_routed", "streamproc_delivered",
        "streamproc_consumer_lag", "streamproc_delivery_latency_seconds", "streamproc_dropped",
        "streamproc_dead_lettered", "streamproc_retried", "streamproc_requests",
        "streamproc_batch_retries", "streamproc_ready", "streamproc_tracks_held",
        "streamproc_holds_dropped"}


# ------------------------------------------------------------------------------ dashboard


def test_dashboard_json_is_importable():
    dash = _dashboard()
    assert dash["uid"] and dash["title"]
    assert 36 <= dash["schemaVersion"] <= 41
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        # a series every worker exports from its start (labelled series such as
        # streamproc_auth_paused only appear after their first use)
        assert variables[name]["query"]["query"].startswith(
            ("label_values(streamproc_ready", "label_values(streamproc_faust_stream_records")), name
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in dash["panels"]:
        where = f"panel {p.get('title')!r}"
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert p["targets"], f"{where} has no query"
        assert {"h", "w", "x", "y"} <= set(p["gridPos"]), where
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), where
        for t in p["targets"]:
            assert t["expr"].strip() and t["datasource"] == p["datasource"], where
            if "streamproc_" in t["expr"] or t["expr"].startswith("up"):
                assert '$job' in t["expr"] and '$instance' in t["expr"], where
