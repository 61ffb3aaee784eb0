"""deploy/stack/, checked offline: the Dapr Configurations against the Dapr CRD's strict
schema, the k8s-monitoring values against its 4.4.0 schema, and the wiring between them —
Dapr posts to trailhead's Service and port, trailhead exports to Alloy's receiver."""

import json
from urllib.parse import urlparse

import jsonschema
import yaml

from conftest import REPO
from test_chart import find, render

STACK = REPO / "deploy" / "stack"
SCHEMAS = REPO / "tests" / "fixtures" / "schemas"


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
