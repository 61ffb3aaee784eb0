"""The Grafana dashboards in deploy/stack/dashboards: current with their generator, valid
ConfigMaps for the sidecar, valid dashboard JSON with unique panel ids and a templated
datasource, and every metric they query accounted for:
- trailhead_* metrics, with the labels the panels group by, are on a running trailhead's /metrics;
- Tempo's span metrics and the Dapr sidecar's metrics are names those projects document (no Tempo
  or Dapr can run here, so this list is the one thing taken on trust);
- what the user-activity dashboard queries comes from the example service, checked in
  test_profile_service.py by running it through trailhead.
The panels of other signals (traces, logs, flame graphs) query datasources grafana.values.yaml
provisions, and every data link lands on a dashboard and variables that exist."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, gateway_config, kubernetes_validate

DASHBOARDS = REPO / "deploy" / "stack" / "dashboards"
GRAFANA = REPO / "deploy" / "stack" / "grafana.values.yaml"
TEMPLATED = {"type": "prometheus", "uid": "${datasource}"}
PLUGINS = REPO / "target" / "plugins"

# Documented elsewhere: Tempo's metrics-generator span-metrics processor
# (grafana.com/docs/tempo/latest/metrics-generator/span_metrics/) and daprd's Prometheus
# endpoint (github.com/dapr/dapr docs/development/dapr-metrics.md).
EXTERNAL = {
    "traces_spanmetrics_calls_total": {"service", "span_name", "span_kind", "status_code"},
    "traces_spanmetrics_latency_bucket": {"service", "span_name", "span_kind", "status_code", "le"},
    "dapr_http_server_request_count": {"app_id", "method"},
    "dapr_http_server_response_count": {"app_id", "method", "status"},
    "dapr_http_server_latency_bucket": {"app_id", "method", "status", "le"},
    "dapr_grpc_io_server_completed_rpcs": {"app_id", "grpc_server_method", "grpc_server_status", "status"},
}
# Labels the scrape (k8s-monitoring's pod discovery) adds to every series.
SCRAPE_LABELS = {"namespace", "pod", "job", "instance"}
METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")
LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")
BY = re.compile(r"by \(([^)]*)\)")


def dashboards():
    """(file name, ConfigMap, dashboard) for each dashboard file."""
    found = []
    for path in sorted(DASHBOARDS.glob("*.yaml")):
        config_map = yaml.safe_load(path.read_text())
        for key, text in config_map["data"].items():
            found.append((f"{path.name}:{key}", config_map, json.loads(text)))
    return found


def panels(board):
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def queries(board):
    """Every PromQL expression in the dashboard: metrics panels' targets and variable queries."""
    for panel in panels(board):
        if panel.get("datasource") != TEMPLATED:
            continue
        for target in panel.get("targets", []):
            yield target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["query"]["query"]


def metric_names(expr):
    return set(METRIC.findall(expr)) | set(LABEL_VALUES.findall(expr))


def test_dashboards_are_generated_and_deployable(tmp_path):
    check = subprocess.run([sys.executable, str(DASHBOARDS / "generate.py"), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    found = dashboards()
    assert {board["uid"] for _, _, board in found} == {"trailhead", "mathtrail-services", "mathtrail-user-activity"}
    for name, config_map, _ in found:
        assert config_map["metadata"]["labels"] == {"grafana_dashboard": "1"}, name
        assert config_map["metadata"]["namespace"] == "monitoring", name
    combined = tmp_path / "dashboards.yaml"
    combined.write_text(yaml.safe_dump_all([config_map for _, config_map, _ in found]))
    kubernetes_validate(combined)


def variables_used(text):
    """Dashboard variables a query or URL names: $name, ${name} and ${name:format}."""
    return {a or b for a, b in re.findall(r"\$(?:(\w+)|\{(\w+)(?::\w+)?\})", text)}


def provisioned():
    """{uid: type} of the datasources the Grafana chart provisions."""
    values = yaml.safe_load(GRAFANA.read_text())
    return {d["uid"]: d["type"] for d in values["datasources"]["datasources.yaml"]["datasources"]}


@pytest.mark.parametrize("name,board", [(n, b) for n, _, b in dashboards()], ids=lambda v: v if isinstance(v, str) else "")
def test_dashboard_structure(name, board):
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids)), f"{name}: duplicate panel ids {sorted(ids)}"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    datasources = provisioned()
    for panel in panels(board):
        if panel["type"] == "row":
            continue
        source = panel["datasource"]
        # Metrics from the picked Prometheus store; another signal from its provisioned datasource.
        assert source == TEMPLATED or datasources.get(source["uid"]) == source["type"] != "prometheus", \
            f"{name}: panel {panel['title']!r} queries {source}, which is not provisioned"
        assert panel["targets"], f"{name}: panel {panel['title']!r} queries nothing"
        for target in panel["targets"]:
            assert target["datasource"] == source, f"{name}: panel {panel['title']!r}"
            query = target.get("expr") or target.get("query") or target.get("labelSelector")
            assert query, f"{name}: panel {panel['title']!r} has an empty query"
            for used in variables_used(query) | variables_used(target.get("labelSelector", "")):
                assert used in variables or used.startswith("__"), f"{name}: ${used} is not a variable"
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == TEMPLATED, f"{name}: variable {variable['name']}"
    # No panel overlaps another on the grid.
    cells = set()
    for panel in panels(board):
        pos = panel["gridPos"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & mine, f"{name}: panel {panel['title']!r} overlaps another"
        cells |= mine


# Every data link opens a dashboard that exists, sets only variables it has, from labels the
# series keeps; the services dashboard links each per-service series to its traces, logs and
# flame graph, which query Tempo, Loki and Pyroscope by the same variable.
def test_data_links_land_on_existing_variables():
    boards = {board["uid"]: board for _, _, board in dashboards()}
    linked = 0
    for name, _, board in dashboards():
        for panel in panels(board):
            for link in panel.get("fieldConfig", {}).get("defaults", {}).get("links", []):
                linked += 1
                target = re.match(r"/d/([\w-]+)/", link["url"])
                assert target and target.group(1) in boards, f"{name}: {link['url']} opens no dashboard"
                names = {v["name"] for v in boards[target.group(1)]["templating"]["list"]}
                for variable in re.findall(r"[?&]var-(\w+)=", link["url"]):
                    assert variable in names, f"{name}: {link['url']} sets ${variable}, not a variable of {target.group(1)}"
                kept = {label.strip() for t in panel["targets"] for clause in BY.findall(t["expr"]) for label in clause.split(",")}
                for label in re.findall(r"__field\.labels\.(\w+)", link["url"] + link["title"]):
                    assert label in kept, f"{name}: panel {panel['title']!r} links by {label}, which its series do not keep"
    assert linked
    services = boards["mathtrail-services"]
    metrics = [p for p in panels(services) if p.get("datasource") == TEMPLATED]
    assert all(p["fieldConfig"]["defaults"]["links"] for p in metrics), "a per-service panel has no link"
    signals = {p["datasource"]["type"]: p for p in panels(services) if p["type"] != "row" and p["datasource"] != TEMPLATED}
    assert set(signals) == {"tempo", "loki", "grafana-pyroscope-datasource"}
    for panel in signals.values():
        (target,) = panel["targets"]
        assert "service" in variables_used(json.dumps(target)), f"{panel['title']!r} does not follow $service"
    # The flame graph shows the profile type a span's "Profiles for this span" opens.
    (tempo,) = [d for d in yaml.safe_load(GRAFANA.read_text())["datasources"]["datasources.yaml"]["datasources"] if d["type"] == "tempo"]
    assert signals["grafana-pyroscope-datasource"]["targets"][0]["profileTypeId"] == tempo["jsonData"]["tracesToProfiles"]["profileTypeId"]


def exposed(trailhead):
    """{family: label names} from trailhead's /metrics; a histogram also under its _bucket etc."""
    families = {}
    for series in trailhead.metrics():
        name, _, labels = series.partition("{")
        keys = set(re.findall(r'(\w+)="', labels))
        families.setdefault(name, set()).update(keys)
    return families


def test_every_metric_queried_exists(sink, start_trailhead):
    # A gateway with every kind of component, so each family has its series.
    config = gateway_config(sink.endpoint)
    config["processors"] = {"plugin/stamp": {"plugin": str(PLUGINS / "resource-stamp.wasm")}}
    config["service"]["pipelines"]["traces"]["processors"] = ["plugin/stamp"]
    families = exposed(start_trailhead(config))
    assert "trailhead_processor_duration_seconds_bucket" in families

    user_activity = set()
    for name, _, board in dashboards():
        for expr in queries(board):
            for metric in metric_names(expr):
                if board["uid"] == "mathtrail-user-activity":
                    user_activity.add(metric)
                    continue
                known = families if metric.startswith("trailhead_") else EXTERNAL
                assert metric in known, f"{name}: {metric} in {expr!r} is not a metric {'trailhead exposes' if known is families else 'Tempo or Dapr documents'}"
                grouped = {label.strip() for clause in BY.findall(expr) for label in clause.split(",") if label.strip()}
                # Only single-source expressions are checked for labels: a ratio of two
                # families groups by labels both have.
                if len(metric_names(expr)) == 1:
                    missing = grouped - known[metric] - SCRAPE_LABELS - {"le"}
                    assert not missing, f"{name}: {metric} has no label {missing} ({expr!r})"
    assert user_activity == {"http_server_request_duration_seconds_count", "http_server_request_duration_seconds_bucket",
                             "mathtrail_sessions_active"}
