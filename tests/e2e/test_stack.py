"""deploy/stack/, checked offline: the Dapr Configurations against the Dapr CRD's strict
schema, the k8s-monitoring values against its 4.4.0 schemas and rendered by its chart (the
pod-logs Alloy config), the Grafana datasources' links between signals, and the wiring between
them — Dapr posts to trailhead's Service and port, trailhead exports to Alloy's receiver and
profiles to Pyroscope."""

import json
import re
import subprocess
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

from conftest import BINARY, REPO
from test_chart import find, helm, render

STACK = REPO / "deploy" / "stack"
SCHEMAS = REPO / "tests" / "fixtures" / "schemas"
# grafana/k8s-monitoring 4.4.0 as released (tests/fixtures/charts/SOURCES.md): no chart
# repository is reachable here, and helm renders a packaged chart offline.
K8S_MONITORING = REPO / "tests" / "fixtures" / "charts" / "k8s-monitoring-4.4.0.tgz"


def load(path):
    return yaml.safe_load(path.read_text())


def schema(name):
    return json.loads((SCHEMAS / name).read_text())


def test_dapr_configurations_match_the_crd():
    strict = schema("dapr-configuration-v1alpha1.strict.schema.json")
    for path in sorted((STACK / "dapr").glob("*.yaml")):
        jsonschema.validate(load(path), strict)
    # The strict schema catches a typo, so the check above can fail.
    typo = load(STACK / "dapr" / "configuration.yaml")
    typo["spec"]["tracing"]["zipkin"] = {"endpointAdress": "http://x"}
    try:
        jsonschema.validate(typo, strict)
        raise AssertionError("a misspelt Dapr key passed the schema")
    except jsonschema.ValidationError:
        pass


def test_k8s_monitoring_values_match_its_schema():
    values = load(STACK / "k8s-monitoring.values.yaml")
    jsonschema.validate(values, schema("k8s-monitoring-4.4.0.values.schema.json"))
    feature = {k: v for k, v in values["applicationObservability"].items() if k not in ("enabled", "collector")}
    jsonschema.validate(feature, schema("k8s-monitoring-4.4.0.feature-application-observability.values.schema.json"))
    assert values["applicationObservability"]["processors"]["resourceDetection"]["override"] is False


# Dapr → trailhead → Alloy: every endpoint names a Service and port that the charts create.
def test_endpoints_line_up():
    manifests = render("-f", STACK / "trailhead.values.yaml")
    (service,) = find(manifests, "Service")
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    zipkin = urlparse(load(STACK / "dapr" / "configuration.yaml")["spec"]["tracing"]["zipkin"]["endpointAddress"])
    assert (zipkin.hostname, zipkin.port, zipkin.path) == (host, ports["zipkin"], "/api/v2/spans")
    otel = load(STACK / "dapr" / "configuration-otlp.yaml")["spec"]["tracing"]["otel"]
    assert otel["endpointAddress"] == f"{host}:{ports['otlp']}" and otel["protocol"] == "grpc"
    # The authenticated one reaches hardened.yaml's otlp/dapr once its chart ports are on.
    hardened = render("-f", STACK / "trailhead.values.yaml", "--set", "ports.otlp-dapr.enabled=true",
                      "--set", "ports.otlp-dapr-http.enabled=true")
    (service,) = find(hardened, "Service")
    dapr_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    auth = load(STACK / "dapr" / "configuration-otlp-auth.yaml")["spec"]["tracing"]["otel"]
    receiver = load(REPO / "config" / "examples" / "hardened.yaml")["receivers"]["otlp/dapr"]["protocols"]
    assert auth["endpointAddress"] == f"{host}:{dapr_ports['otlp-dapr']}" and auth["protocol"] == "grpc"
    assert receiver["grpc"]["endpoint"].endswith(f":{dapr_ports['otlp-dapr']}")
    assert receiver["http"]["endpoint"].endswith(f":{dapr_ports['otlp-dapr-http']}")
    assert "otlp-dapr" not in ports  # off unless asked for
    # k8s-monitoring release "lgtm" with collector "alloy-receiver" in "monitoring".
    monitoring = load(STACK / "k8s-monitoring.values.yaml")
    receiver = monitoring["applicationObservability"]["collector"]
    assert receiver in monitoring["collectors"]
    (config_map,) = find(manifests, "ConfigMap", "trailhead")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    grpc_port = monitoring["applicationObservability"]["receivers"]["otlp"]["grpc"]["port"]
    assert config["exporters"]["otlp/alloy"]["endpoint"] == f"lgtm-{receiver}.monitoring.svc.cluster.local:{grpc_port}"


def alloy_block(config, header):
    """The body of the first Alloy block whose opening line contains `header` (braces matched)."""
    start = config.index(header)
    depth, i = 0, config.index("{", start)
    for j in range(i, len(config)):
        depth += {"{": 1, "}": -1}.get(config[j], 0)
        if depth == 0:
            return config[i + 1:j]
    raise AssertionError(f"unclosed block {header!r}")


def alloy_keys(block, stage):
    """The keys of `stage { values|expressions = {k = "", ...} }` inside an Alloy block."""
    body = alloy_block(block, stage)
    return set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*=\s*\"", alloy_block(body, "= {")))


@pytest.fixture(scope="module")
def k8s_monitoring():
    """The k8s-monitoring chart rendered with the stack's values, as deploy.sh installs it."""
    result = helm("template", "lgtm", K8S_MONITORING, "--namespace", "monitoring", "-f", STACK / "k8s-monitoring.values.yaml")
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def test_pod_logs_values_match_the_feature_schema():
    values = load(STACK / "k8s-monitoring.values.yaml")
    feature = {k: v for k, v in values["podLogsViaLoki"].items() if k not in ("enabled", "collector")}
    jsonschema.validate(feature, schema("k8s-monitoring-4.4.0.feature-pod-logs-via-loki.values.schema.json"))
    # The feature schema has types: a list where a map belongs fails, so the check can fail.
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**feature, "namespaces": "mathtrail"},
                            schema("k8s-monitoring-4.4.0.feature-pod-logs-via-loki.values.schema.json"))


# Pod logs of "mathtrail" into Loki, read by a DaemonSet from /var/log; the Dapr sidecars' JSON
# lines parsed so app_id and level are labels and trace_id structured metadata.
def test_rendered_alloy_collects_pod_logs(k8s_monitoring):
    (collector,) = find(k8s_monitoring, "Alloy", "lgtm-alloy-logs")
    assert collector["spec"]["controller"]["type"] == "daemonset"
    assert collector["spec"]["alloy"]["mounts"]["varlog"] is True
    (config_map,) = find(k8s_monitoring, "ConfigMap", "lgtm-alloy-logs")
    config = config_map["data"]["config.alloy"]
    discovery = alloy_block(config, 'discovery.kubernetes "pods"')
    assert re.search(r'namespaces\s*{\s*names\s*=\s*\["mathtrail"\]\s*}', discovery), discovery
    feature = alloy_block(config, 'pod_logs_via_loki "feature"')
    assert "loki.write.loki.receiver" in feature
    assert 'loki.write "loki"' in config and "loki-gateway.monitoring.svc.cluster.local/loki/api/v1/push" in config
    process = alloy_block(config, 'loki.process "pod_logs"')
    selector = process.index('selector = "{container=\\"daprd\\"}"')
    dapr = alloy_block(process[process.rindex("stage.match", 0, selector):], "stage.match")
    assert {"app_id", "level", "trace_id", "time"} <= alloy_keys(dapr, "stage.json")
    # Labels stay low-cardinality: one stream per app and level, never per trace.
    assert alloy_keys(dapr, "stage.labels") == {"app_id", "level"}
    assert "trace_id" in alloy_keys(dapr, "stage.structured_metadata")
    assert re.search(r'stage.timestamp\s*{\s*source\s*=\s*"time"\s*format\s*=\s*"RFC3339Nano"', dapr), dapr
    # The example service's sidecar writes JSON and runs where the logs are collected.
    (deployment, _) = yaml.safe_load_all((REPO / "examples" / "profile-service" / "deploy.yaml").read_text())
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["dapr.io/log-as-json"] == "true" and deployment["metadata"]["namespace"] == "mathtrail"


def datasources():
    values = load(STACK / "grafana.values.yaml")
    return {d["uid"]: d for d in values["datasources"]["datasources.yaml"]["datasources"]}


def provisioned_strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from provisioned_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from provisioned_strings(value)
    elif isinstance(node, str):
        yield node


# Every link between signals names a datasource of the right type; Grafana expands $VAR and
# ${VAR} from its environment in provisioning files, so each Grafana variable is written $$.
def test_grafana_links_the_signals():
    by_uid = datasources()
    kind = {uid: d["type"] for uid, d in by_uid.items()}
    tempo = by_uid["tempo"]["jsonData"]
    logs, profiles, metrics = tempo["tracesToLogsV2"], tempo["tracesToProfiles"], tempo["tracesToMetrics"]
    assert kind[logs["datasourceUid"]] == "loki"
    assert kind[profiles["datasourceUid"]] == "grafana-pyroscope-datasource"
    assert kind[metrics["datasourceUid"]] == "prometheus"
    assert kind[tempo["serviceMap"]["datasourceUid"]] == "prometheus"
    (derived,) = by_uid["loki"]["jsonData"]["derivedFields"]
    assert kind[derived["datasourceUid"]] == "tempo"
    (exemplars,) = by_uid["mimir"]["jsonData"]["exemplarTraceIdDestinations"]
    assert kind[exemplars["datasourceUid"]] == "tempo"
    for datasource in by_uid.values():
        for text in provisioned_strings(datasource.get("jsonData", {})):
            assert not re.search(r"(?<!\$)\$(\{|__)", text), f"{datasource['name']}: {text!r} is not escaped with $$"

    # Trace → logs: its namespace and service (Loki labels the pod-logs feature sets), its pod
    # (structured metadata "pod") and its trace id.
    assert logs["customQuery"] is True
    for used in ('namespace="$${__span.tags["k8s.namespace.name"]}"', 'service_name="$${__span.tags["service.name"]}"',
                 'pod="$${__span.tags["k8s.pod.name"]}"', '|= "$${__trace.traceId}"'):
        assert used in logs["query"], used
    # Trace → profiles: the span profile (customQuery off: Grafana uses the span's
    # pyroscope.profile.id) of the CPU profile pyroscope-go sends, by service name.
    assert profiles["customQuery"] is False
    assert profiles["profileTypeId"] == "process_cpu:cpu:nanoseconds:cpu:nanoseconds"
    assert profiles["tags"] == [{"key": "service.name", "value": "service_name"}]
    # Trace → metrics: Tempo's span metrics, by the label the metrics generator names the service.
    assert metrics["tags"] == [{"key": "service.name", "value": "service"}]
    for query in metrics["queries"]:
        assert "{$$__tags" in query["query"] and "traces_spanmetrics_" in query["query"], query
    # Log → trace: the structured metadata key the Alloy stage writes.
    assert (derived["matcherType"], derived["matcherRegex"], derived["url"]) == ("label", "trace_id", "$${__value.raw}")
    stages = load(STACK / "k8s-monitoring.values.yaml")["podLogsViaLoki"]["extraLogProcessingStages"]
    assert "trace_id" in alloy_keys(stages, "stage.structured_metadata")
    # Exemplars → trace: Mimir keeps exemplars only when this limit is set.
    assert exemplars["name"] == "trace_id"
    limits = load(STACK / "mimir.values.yaml")["mimir"]["structuredConfig"]["limits"]
    assert limits["max_global_exemplars_per_user"] > 0


def stack_config():
    manifests = render("-f", STACK / "trailhead.values.yaml")
    (config_map,) = find(manifests, "ConfigMap", "trailhead")
    return manifests, config_map["data"]["config.yaml"]


# Profiles: the otlp receiver (4317/4318, no new port), the memory limiter and k8sattributes,
# then straight to Pyroscope's OTLP gRPC port (the Service Grafana's datasource reads too).
def test_profiles_go_straight_to_pyroscope():
    manifests, text = stack_config()
    config = yaml.safe_load(text)
    profiles = config["service"]["pipelines"]["profiles"]
    assert profiles["receivers"] == ["otlp"]
    assert profiles["processors"] == ["memory_limiter", "k8sattributes"]
    (exporter,) = profiles["exporters"]
    pyroscope = urlparse(datasources()["pyroscope"]["url"])
    assert config["exporters"][exporter]["endpoint"] == f"{pyroscope.hostname}:{pyroscope.port}"
    assert config["exporters"][exporter]["sending_queue"]["storage"] in config["service"]["extensions"]
    (service,) = find(manifests, "Service")
    (default_service,) = find(render(), "Service")
    assert service["spec"]["ports"] == default_service["spec"]["ports"]


# FAILS until the host's profiles signal (issue 22, the host helper's branch) is merged:
# `trailhead validate` refuses `service.pipelines.profiles` as an unknown pipeline type today.
def test_stack_config_validates(tmp_path):
    _, text = stack_config()
    config = tmp_path / "config.yaml"
    config.write_text(text)
    validated = subprocess.run([str(BINARY), "validate", "--config", str(config)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr
