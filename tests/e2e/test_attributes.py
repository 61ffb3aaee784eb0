"""The built-in `attributes` and `resource` plugins against the collector's own
attributesprocessor and resourceprocessor (v0.161.0).

The same OTLP payloads go through the OpenTelemetry Collector (built from its Go modules with
both processors) and through trailhead, with the same processor blocks in the same pipelines.
Every item must come out the same: its resource's attributes, its scope, its name and its own
attributes, typed (an int stays an int, a hash is the same hex). The blocks use every action,
every value type YAML gives `value:`, and each include/exclude property of each signal. The
plugins run as built-ins: no `plugin:` path.
"""

import base64
import hashlib
import subprocess
import time

import requests
import yaml

from conftest import BINARY, COLLECTOR, free_port, gateway_config, run_collector
from test_collector_interop import read_lines
from test_kubernetes import cluster  # noqa: F401 (the module-scoped API server fixture)

EVERY_ACTION = {"actions": [
    {"key": "env", "value": "staging", "action": "insert"},
    {"key": "retries", "value": 99, "action": "insert"},
    {"key": "ratio", "value": 1, "action": "update"},
    {"key": "missing", "value": True, "action": "update"},
    {"key": "team", "value": ["a", 1, True, 2.5], "action": "UPSERT"},
    {"key": "meta", "value": {"k": "v", "n": 2, "nested": {"b": False}}, "action": "upsert"},
    {"key": "weight", "value": 0.75, "action": "upsert"},
    {"key": "copied", "from_attribute": "http.url", "action": "insert"},
    {"key": "fallback", "from_attribute": "nope", "default_value": 3.5, "action": "upsert"},
    {"key": "client", "from_context": "client.address", "action": "insert"},
    {"key": "db.password", "action": "delete"},
    {"pattern": "^secret\\.", "action": "delete"},
    {"key": "user.email", "action": "hash"},
    {"key": "flag", "action": "hash"},
    {"key": "raw", "action": "hash"},
    {"key": "retries", "action": "hash"},
    {"key": "big", "pattern": "^(big|obj)$", "action": "hash"},
    {"key": "http.url", "pattern": "^(?P<scheme>\\w+)://(?P<host>[^/]+)(?P<path>/[^?]*)(?P<query>\\?.*)?$", "action": "extract"},
    {"key": "count", "converted_type": "int", "action": "convert"},
    {"key": "price", "converted_type": "double", "action": "convert"},
    {"key": "bad", "converted_type": "int", "action": "convert"},
    {"key": "level", "converted_type": "int", "action": "convert"},
    {"key": "ratio", "converted_type": "string", "action": "convert"},
    {"key": "ratio2", "converted_type": "string", "action": "convert"},
    {"key": "tiny", "converted_type": "string", "action": "convert"},
    {"key": "tags", "converted_type": "string", "action": "convert"},
    {"key": "on", "converted_type": "double", "action": "convert"},
    {"key": "obj2", "converted_type": "string", "action": "convert"},
    {"key": "raw2", "converted_type": "string", "action": "convert"},
    {"key": "port", "value": "8080", "action": "insert"},
]}


def marker(name):
    return [{"key": name, "value": True, "action": "insert"}]


PROCESSORS = {
    "attributes/spans": {"include": {"match_type": "strict", "services": ["cart"], "span_kinds": ["SPAN_KIND_SERVER", "SPAN_KIND_CLIENT"]},
                         "exclude": {"match_type": "regexp", "span_names": ["^SEL"]}, "actions": marker("sel.spans")},
    "attributes/nil_service": {"include": {"match_type": "regexp", "services": ["^<nil"]}, "actions": marker("sel.nil")},
    "attributes/libraries": {"include": {"match_type": "regexp", "libraries": [{"name": "^http$", "version": "^1\\."}],
                                         "resources": [{"key": "env", "value": "^pr"}]}, "actions": marker("sel.lib")},
    "attributes/typed": {"include": {"match_type": "strict", "attributes": [{"key": "retries", "value": 3}]}, "actions": marker("sel.typed")},
    "attributes/exists": {"include": {"attributes": [{"key": "ratio"}]},
                          "exclude": {"match_type": "regexp", "attributes": [{"key": "ratio", "value": "^0\\.5$"}]}, "actions": marker("sel.exists")},
    "attributes/logs": {"include": {"match_type": "regexp", "log_bodies": ["password", "^\\{"], "log_severity_texts": ["^(INFO|)$"]},
                        "exclude": {"log_severity_number": {"min": 17}}, "actions": marker("sel.logs")},
    "attributes/severity": {"include": {"log_severity_number": {"min": 13, "match_undefined": True}}, "actions": marker("sel.severity")},
    "attributes/metrics": {"include": {"match_type": "regexp", "metric_names": ["^http\\.", "^cpu$"]},
                           "exclude": {"match_type": "strict", "metric_names": ["cpu"]}, "actions": marker("sel.metrics")},
    # The collector accepts `resources` for metrics but never applies it: every point is marked.
    "attributes/metric_resources": {"include": {"match_type": "strict", "resources": [{"key": "env", "value": "nope"}]},
                                    "actions": marker("sel.mres")},
    "attributes/every_action": EVERY_ACTION,
    "resource": {"attributes": [
        {"key": "deployment.environment", "value": "production", "action": "upsert"},
        {"key": "cluster", "from_attribute": "k8s-cluster", "action": "insert"},
        {"key": "k8s-cluster", "action": "delete"},
        {"key": "host.id", "action": "hash"},
        {"key": "service.name", "pattern": "^(?P<svc_prefix>..)", "action": "extract"},
        {"key": "build", "converted_type": "int", "action": "convert"},
        {"key": "zone", "value": "z1", "action": "update"},
    ]},
}

PIPELINES = {
    "traces": ["attributes/spans", "attributes/nil_service", "attributes/libraries", "attributes/typed",
               "attributes/exists", "attributes/every_action", "resource"],
    "logs": ["attributes/logs", "attributes/severity", "attributes/libraries", "attributes/every_action", "resource"],
    "metrics": ["attributes/metrics", "attributes/metric_resources", "attributes/every_action", "resource"],
}


def value(v):
    if v is None:
        return {}
    if isinstance(v, bool):
        return {"boolValue": v}
    if isinstance(v, int):
        return {"intValue": str(v)}
    if isinstance(v, float):
        return {"doubleValue": v}
    if isinstance(v, bytes):
        return {"bytesValue": base64.b64encode(v).decode()}
    if isinstance(v, list):
        return {"arrayValue": {"values": [value(x) for x in v]}}
    if isinstance(v, dict):
        return {"kvlistValue": {"values": kv(v)}}
    return {"stringValue": v}


def kv(attributes):
    return [{"key": k, "value": value(v)} for k, v in attributes.items()]


ITEM_ATTRS = {
    "user.email": "a@example.com", "http.url": "https://shop.example/api/v1/users/42?x=1", "retries": 3,
    "ratio": 0.25, "ratio2": 0.1, "tiny": 1e-7, "flag": True, "raw": b"\x00\x01", "db.password": "hunter2",
    "secret.token": "t", "secret.other": 1, "count": "17", "price": "9.5", "bad": "abc", "level": 2.9,
    "big": 1e21, "tags": ["x", 2, {"k": "v"}], "obj": {"b": 1, "a": "<&>"}, "on": True,
    "obj2": {"b": 1.5, "a": "<&>\n", "c": None}, "raw2": b"\x00\x01",
}

TRACE_ID = "5b8efff798038103d269b633813fc60c"


def span(i, name, kind, attributes):
    return {"traceId": TRACE_ID, "spanId": f"{i:016x}", "name": name, "kind": kind,
            "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": kv(attributes)}


RESOURCE_1 = {"service.name": "cart", "env": "prod", "k8s-cluster": "east", "host.id": "h1", "build": "42"}
RESOURCE_2 = {"host.id": 7, "build": "x42", "zone": "a"}

TRACES = {"resourceSpans": [
    {"resource": {"attributes": kv(RESOURCE_1)}, "scopeSpans": [
        {"scope": {"name": "http", "version": "1.2"}, "spans": [
            span(1, "GET /cart", 2, ITEM_ATTRS),
            span(2, "SELECT", 3, {"user.email": "b@example.com", "count": "x1", "http.url": "no match", "ratio": 0.5}),
            span(3, "POST /pay", 3, {"retries": 3, "env": "given"}),
        ]},
        {"scope": {"name": "grpc"}, "spans": [span(4, "Check", 1, {"retries": 5})]},
    ]},
    {"resource": {"attributes": kv(RESOURCE_2)}, "scopeSpans": [
        {"scope": {"name": "http", "version": "2.0"}, "spans": [span(5, "GET /x", 2, {"ratio": 0.5})]},
    ]},
]}


def record(body, severity, text, attributes):
    out = {"timeUnixNano": "1", "severityNumber": severity, "severityText": text, "attributes": kv(attributes)}
    if body is not None:
        out["body"] = value(body)
    return out


LOGS = {"resourceLogs": [
    {"resource": {"attributes": kv(RESOURCE_1)}, "scopeLogs": [{"scope": {"name": "http", "version": "1.0"}, "logRecords": [
        record("user password=1", 9, "INFO", ITEM_ATTRS),
        record(42, 5, "debug", {"count": "3"}),
        record({"a": "x"}, 0, "", {"flag": False}),
        record("password again", 17, "INFO", {}),
        record(None, 13, "WARN", {"secret.x": "y"}),
    ]}]},
    {"resource": {"attributes": kv(RESOURCE_2)}, "scopeLogs": [{"scope": {"name": "other"}, "logRecords": [
        record("password", 0, "", {"ratio": 0.5})]}]},
]}


def point(attributes, **v):
    return {"timeUnixNano": "1", "attributes": kv(attributes), **v}


METRICS = {"resourceMetrics": [
    {"resource": {"attributes": kv(RESOURCE_1)}, "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
        {"name": "http.requests", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
            point(ITEM_ATTRS, asInt="5"), point({"count": "7", "user.email": "c@example.com"}, asInt="7")]}},
        {"name": "cpu", "gauge": {"dataPoints": [point({"level": 0.5}, asDouble=0.5)]}},
        {"name": "latency", "histogram": {"aggregationTemporality": 2, "dataPoints": [
            point({"retries": 1}, count="1", bucketCounts=["1"], explicitBounds=[])]}},
        {"name": "quantiles", "summary": {"dataPoints": [point({"price": "1e400"}, count="1", sum=1.0)]}},
    ]}]},
    {"resource": {"attributes": kv(RESOURCE_2)}, "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
        {"name": "http.errors", "gauge": {"dataPoints": [point({}, asInt="2")]}}]}]},
]}

PAYLOADS = {"traces": TRACES, "metrics": METRICS, "logs": LOGS}


def typed(v):
    """An OTLP/JSON value as a comparable, hashable form: its type and value, maps by key."""
    if not v:
        return ("empty",)
    (kind, inner), = v.items()
    if kind == "kvlistValue":
        return ("map", tuple(sorted((e["key"], typed(e.get("value", {}))) for e in inner.get("values", []))))
    if kind == "arrayValue":
        return ("array", tuple(typed(x) for x in inner.get("values", [])))
    if kind == "intValue":
        return ("int", int(inner))
    if kind == "doubleValue":
        return ("double", float(inner))
    return (kind, inner)


def attrs(entries):
    return tuple(sorted((e["key"], typed(e.get("value", {}))) for e in entries or []))


def items(signal, requests_json):
    """Every item as (resource attributes, scope, name, own attributes), sorted."""
    out = []
    for request in requests_json:
        if signal == "traces":
            for rs in request.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append((attrs(rs.get("resource", {}).get("attributes")), ss.get("scope", {}).get("name", ""),
                                    s["name"], attrs(s.get("attributes"))))
        elif signal == "metrics":
            for rm in request.get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        data = next(v for k, v in m.items() if k in ("gauge", "sum", "histogram", "summary", "exponentialHistogram"))
                        for p in data["dataPoints"]:
                            out.append((attrs(rm.get("resource", {}).get("attributes")), sm.get("scope", {}).get("name", ""),
                                        m["name"], attrs(p.get("attributes"))))
        else:
            for rl in request.get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for r in sl.get("logRecords", []):
                        out.append((attrs(rl.get("resource", {}).get("attributes")), sl.get("scope", {}).get("name", ""),
                                    repr(typed(r.get("body") or {})), attrs(r.get("attributes"))))
    return sorted(out, key=repr)


def through_collector(tmp_path):
    port = free_port()
    out = tmp_path / "collector-out.json"
    pipelines = {s: {"receivers": ["otlp"], "processors": PIPELINES[s], "exporters": ["file"]} for s in PAYLOADS}
    config = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
              "processors": PROCESSORS,
              "exporters": {"file": {"path": str(out), "flush_interval": "50ms"}},
              "service": {"pipelines": pipelines, "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}}}}
    process = run_collector(config, tmp_path, port)
    try:
        for signal, payload in PAYLOADS.items():
            assert requests.post(f"http://127.0.0.1:{port}/v1/{signal}", json=payload, timeout=5).status_code == 200
        time.sleep(1.0)
    finally:
        process.terminate()
        process.wait(10)
    lines = read_lines(out)
    keys = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}
    return {s: items(s, [line for line in lines if keys[s] in line]) for s in PAYLOADS}


def through_trailhead(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = PROCESSORS
    for signal, pipeline in config["service"]["pipelines"].items():
        pipeline["processors"] = PIPELINES[signal]
    trailhead = start_trailhead(config)
    counts = {}
    for signal, payload in PAYLOADS.items():
        assert requests.post(trailhead.url("otlp (http)", f"/v1/{signal}"), json=payload, timeout=5).status_code == 200
        counts[signal] = len(items(signal, [payload]))
    for signal, count in counts.items():
        sink.wait_for(signal, count, timeout=10)
    from google.protobuf.json_format import MessageToDict
    return {s: items(s, [MessageToDict(r) for r in sink.requests[s]]) for s in PAYLOADS}, trailhead


def find(found, name):
    return next(item for item in found if item[2] == name)


# Same payloads, same blocks: trailhead's attributes and resource plugins give every item the
# collector's attributes, typed, for every action and every include/exclude property.
def test_attributes_and_resource_match_the_collector(sink, start_trailhead, tmp_path):
    expected = through_collector(tmp_path)
    got, trailhead = through_trailhead(sink, start_trailhead)
    # Not vacuous: the collector changed what these blocks say it changes.
    span = dict(find(expected["traces"], "GET /cart")[3])
    assert span["sel.spans"] == ("boolValue", True) and "sel.nil" not in span
    assert span["user.email"] == ("stringValue", hashlib.sha256(b"a@example.com").hexdigest())
    assert span["count"] == ("int", 17) and span["path"] == ("stringValue", "/api/v1/users/42")
    assert span["obj2"] == ("stringValue", '{"a":"<&>\\n","b":1.5,"c":null}') and span["port"] == ("stringValue", "8080")
    assert "db.password" not in span and "secret.token" not in span
    assert dict(find(expected["traces"], "GET /cart")[0])["cluster"] == ("stringValue", "east")
    assert "sel.nil" in dict(find(expected["traces"], "GET /x")[3])
    assert sum("sel.logs" in dict(i[3]) for i in expected["logs"]) == 3
    assert sum("sel.metrics" in dict(i[3]) for i in expected["metrics"]) == 3
    assert all("sel.mres" in dict(i[3]) for i in expected["metrics"])
    assert sum(len(v) for v in expected.values()) == 5 + 6 + 6
    for signal in PAYLOADS:
        assert len(got[signal]) == len(expected[signal]), signal
        for mine, theirs in zip(got[signal], expected[signal]):
            assert mine == theirs, f"{signal}:\n trailhead: {mine}\n collector: {theirs}"
    assert trailhead.metric("trailhead_processor_failures_total") == 0


def validate_both(tmp_path, processors, pipelines):
    """Runs `trailhead validate` and the collector's `validate` on the same blocks."""
    config = gateway_config("127.0.0.1:4317")
    config["processors"] = processors
    for signal, pipeline in config["service"]["pipelines"].items():
        pipeline["processors"] = pipelines.get(signal, [])
    path = tmp_path / "trailhead.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    path.write_text(text)
    mine = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    collector_config = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
                        "processors": processors, "exporters": {"debug": {}},
                        "service": {"pipelines": {s: {"receivers": ["otlp"], "processors": p, "exporters": ["debug"]}
                                                  for s, p in pipelines.items()}}}
    collector_path = tmp_path / "collector.yaml"
    collector_path.write_text(yaml.safe_dump(collector_config))
    theirs = subprocess.run([str(COLLECTOR), "validate", "--config", str(collector_path)], capture_output=True, text=True)
    return mine, theirs, text


# A misconfigured action is refused by both, and trailhead points at the field's line.
def test_bad_action_is_refused_at_its_line(tmp_path):
    processors = {"attributes": {"actions": [
        {"key": "a", "value": 1, "action": "insert"},
        {"key": "b", "converted_type": "boolean", "action": "convert"},
    ]}}
    mine, theirs, text = validate_both(tmp_path, processors, {"traces": ["attributes"]})
    assert theirs.returncode != 0, theirs.stdout + theirs.stderr
    assert mine.returncode == 1, mine.stdout + mine.stderr
    line = next(n for n, l in enumerate(text.splitlines(), 1) if "converted_type: boolean" in l)
    assert f"trailhead.yaml:{line}:" in mine.stderr, mine.stderr
    assert "actions[1].converted_type: unknown type `boolean`" in mine.stderr, mine.stderr


# Keys the collector does not know are refused by both, never ignored: a misspelt action key,
# an include property from another processor, a resource processor with include.
def test_unknown_keys_are_refused(tmp_path):
    cases = [
        ({"attributes": {"actions": [{"key": "a", "value": 1, "action": "insert", "patern": "x"}]}}, "patern"),
        ({"attributes": {"include": {"match_type": "strict", "expressions": ["x"]}, "actions": [{"key": "a", "action": "delete"}]}}, "expressions"),
        ({"resource": {"attributes": [{"key": "a", "action": "delete"}], "include": {"match_type": "strict", "services": ["x"]}}}, "include"),
        ({"resource": {"attributes": [{"key": "a", "action": "insert", "from_context": "metadata.tenant"}]}}, "metadata.tenant"),
    ]
    for processors, word in cases:
        name = next(iter(processors))
        mine, theirs, _ = validate_both(tmp_path, processors, {"traces": [name]})
        assert mine.returncode == 1 and word in mine.stderr, mine.stderr
        if word != "metadata.tenant":  # the collector accepts it, and finds no value without include_metadata
            assert theirs.returncode != 0, (processors, theirs.stderr)


# The collector's 2026 name for k8sattributes validates as the built-in, beside attributes and
# resource, with no `plugin:` path.
def test_k8s_attributes_alias_validates(tmp_path):
    processors = {"k8s_attributes": {"passthrough": True},
                  "attributes": {"actions": [{"key": "a", "action": "delete"}]},
                  "resource": {"attributes": [{"key": "a", "action": "delete"}]}}
    mine, theirs, _ = validate_both(tmp_path, processors, {"traces": ["k8s_attributes", "attributes", "resource"]})
    assert theirs.returncode == 0, theirs.stderr
    assert mine.returncode == 0, mine.stdout + mine.stderr


# A block whose include suits spans only (`services`) in a logs pipeline: the collector refuses
# the pipeline; trailhead serves spans, passes log records through unchanged, and says so in
# its log at start, so the difference is never silent.
def test_span_only_block_in_a_logs_pipeline(tmp_path, sink, start_trailhead):
    block = {"include": {"match_type": "strict", "services": ["cart"]}, "actions": marker("sel.spans")}
    _, theirs, _ = validate_both(tmp_path, {"attributes": block}, {"traces": ["attributes"], "logs": ["attributes"]})
    assert theirs.returncode != 0 and "not valid for log records" in theirs.stderr, theirs.stderr
    config = gateway_config(sink.endpoint)
    config["processors"] = {"attributes": block}
    for signal in ("traces", "logs"):
        config["service"]["pipelines"][signal]["processors"] = ["attributes"]
    trailhead = start_trailhead(config)
    for signal in ("traces", "logs"):
        assert requests.post(trailhead.url("otlp (http)", f"/v1/{signal}"), json=PAYLOADS[signal], timeout=5).status_code == 200
    assert sink.wait_for("traces", 5) == 5 and sink.wait_for("logs", 6) == 6
    from google.protobuf.json_format import MessageToDict
    spans = items("traces", [MessageToDict(r) for r in sink.requests["traces"]])
    assert [s[2] for s in spans if "sel.spans" in dict(s[3])] == ["Check", "GET /cart", "POST /pay", "SELECT"]
    logs = items("logs", [MessageToDict(r) for r in sink.requests["logs"]])
    assert logs == items("logs", [LOGS])
    warned = [e for e in trailhead.logs if "log records pass through unchanged" in str(e)]
    assert warned and "include.services: not valid for log records" in str(warned[0]), trailhead.logs


# The collector's 2026 name in the typical gateway chain, on a real API server: a
# `k8s_attributes` entry starts the host's Kubernetes cache (its settings are found by type)
# and enriches by connection, and `resource` then acts on the enriched resource.
def test_k8s_attributes_alias_then_resource_on_a_cluster(cluster, sink, start_trailhead):
    from test_kubernetes import NS, resource_of, send
    cluster.pod("alias-app-0", NS, "127.0.0.31")
    config = gateway_config(sink.endpoint)
    config["processors"] = {
        "k8s_attributes": {"auth_type": "kubeconfig", "wait_for_metadata": True},
        "resource": {"attributes": [
            {"key": "cluster.pod", "from_attribute": "k8s.pod.name", "action": "insert"},
            {"key": "k8s.pod.uid", "action": "delete"},
        ]},
    }
    config["service"]["pipelines"]["traces"]["processors"] = ["k8s_attributes", "resource"]
    trailhead = start_trailhead(config, extra_env={"KUBECONFIG": str(cluster.kubeconfig)})
    assert any(entry.get("message") == "Kubernetes metadata synced" for entry in trailhead.logs), trailhead.logs
    assert send(trailhead, "127.0.0.31", name="via-alias") == 200
    attrs = resource_of(sink, "via-alias")
    assert attrs["k8s.pod.name"] == "alias-app-0" and attrs["cluster.pod"] == "alias-app-0", attrs
    assert attrs["k8s.namespace.name"] == NS and "k8s.pod.uid" not in attrs, attrs
