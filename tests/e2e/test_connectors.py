"""Connectors: `forward` side by side with the collector peer (v0.161.0, built from its Go
modules), and `routing` (contrib's routingconnector, which the Go proxy does not serve at
v0.161.0) checked against what its sources and tests say.

The forward case runs the same config in both: OTLP in to `traces/in` and `logs/in`, which
export to `forward`; `traces/a` and `traces/b` (and `logs/a`, `logs/b`) receive from it, each
with its own processor and its own OTLP exporter to a sink of its own. Every item must reach
both legs, changed only by that leg's processor, in both gateways.
"""

import json
import subprocess
import time

import requests
import yaml
from google.protobuf.json_format import MessageToDict

from conftest import BINARY, REPO, Sink, free_port, run_collector

CONFORMANCE = REPO / "tests" / "fixtures" / "conformance" / "otlp"
FIXTURES = {"traces": "trace.json", "logs": "logs.json"}
CONTAINERS = {"traces": ("resourceSpans", "scopeSpans", "spans"), "logs": ("resourceLogs", "scopeLogs", "logRecords")}


def forward_config(receiver, sinks, batch):
    """The forward fan-out: `{signal}/in` → forward → `{signal}/a` and `{signal}/b`."""
    exporters = {}
    for leg, sink in sinks.items():
        exporters[f"otlp/{leg}"] = {"endpoint": sink.endpoint, "tls": {"insecure": True}, **batch}
    pipelines = {}
    for signal in FIXTURES:
        pipelines[f"{signal}/in"] = {"receivers": ["otlp"], "exporters": ["forward"]}
        pipelines[f"{signal}/a"] = {"receivers": ["forward"], "processors": ["attributes/a"], "exporters": ["otlp/a"]}
        pipelines[f"{signal}/b"] = {"receivers": ["forward"], "processors": ["resource/b"], "exporters": ["otlp/b"]}
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": receiver}}}},
        "processors": {
            "attributes/a": {"actions": [{"key": "leg", "value": "a", "action": "insert"}]},
            "resource/b": {"attributes": [{"key": "leg", "value": "b", "action": "upsert"}]},
        },
        "connectors": {"forward": None},
        "exporters": exporters,
        "service": {"pipelines": pipelines},
    }


def flat_items(signal, requests_seen):
    """Each item as JSON with its resource and scope, sorted: batching may differ. An empty
    `status` is dropped: the collector re-encodes an empty status message, trailhead's
    attributes plugin leaves it out, and both mean "unset"."""
    top, middle, leaf = CONTAINERS[signal]
    found = []
    for request in requests_seen:
        for resource in MessageToDict(request).get(top, []):
            for scope in resource.get(middle, []):
                for item in scope.get(leaf, []):
                    if item.get("status") == {}:
                        del item["status"]
                    found.append(json.dumps({"resource": resource.get("resource"), "scope": scope.get("scope"), "item": item}, sort_keys=True))
    return sorted(found)


def send_fixtures(http_address):
    for signal, fixture in FIXTURES.items():
        body = (CONFORMANCE / fixture).read_bytes()
        response = requests.post(f"http://{http_address}/v1/{signal}", data=body,
                                 headers={"Content-Type": "application/json"}, timeout=5)
        assert response.status_code == 200, response.text


def wait_items(sinks, want, timeout=20):
    """Waits until every sink holds `want[signal]` items of each signal."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(len(flat_items(s, sink.requests[s])) >= want[s] for sink in sinks for s in want):
            return
        time.sleep(0.1)


def fixture_counts():
    counts = {}
    for signal, fixture in FIXTURES.items():
        top, middle, leaf = CONTAINERS[signal]
        data = json.loads((CONFORMANCE / fixture).read_text())
        counts[signal] = sum(len(s.get(leaf, [])) for r in data[top] for s in r.get(middle, []))
    return counts


# The same config and the same OTLP through the collector and through trailhead: both legs of
# the forward connector get every item, each changed by its own processor only, and what
# trailhead delivers on each leg is what the collector delivers there.
def test_forward_matches_the_collector(start_trailhead, tmp_path):
    ours = {"a": Sink(), "b": Sink()}
    theirs = {"a": Sink(), "b": Sink()}
    collector = None
    try:
        trailhead = start_trailhead(forward_config("127.0.0.1:0", ours, {"batch": {"timeout": "20ms"}}))
        port = free_port()
        collector = run_collector(forward_config(f"127.0.0.1:{port}", theirs, {}), tmp_path, port)
        send_fixtures(trailhead.address("otlp (http)"))
        send_fixtures(f"127.0.0.1:{port}")
        want = fixture_counts()
        wait_items([*ours.values(), *theirs.values()], want)
        for leg in ["a", "b"]:
            for signal in FIXTURES:
                mine = flat_items(signal, ours[leg].requests[signal])
                collectors = flat_items(signal, theirs[leg].requests[signal])
                assert len(mine) == want[signal], (leg, signal, len(mine))
                assert mine == collectors, (leg, signal)
        # Each leg carries its own processor's mark and not the other's.
        a_items = " ".join(flat_items("traces", ours["a"].requests["traces"]))
        b_items = " ".join(flat_items("traces", ours["b"].requests["traces"]))
        assert '"stringValue": "a"' in a_items and '"stringValue": "b"' not in a_items
        assert '"stringValue": "b"' in b_items and '"stringValue": "a"' not in b_items
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(10)
        for sink in [*ours.values(), *theirs.values()]:
            sink.stop()


# A downstream exporter that cannot take more is a refusal the upstream sender sees (retryable),
# and the other leg gets nothing of the refused request, so a retry does not duplicate it there.
def test_a_full_downstream_queue_refuses_upstream_with_nothing_half_delivered(start_trailhead):
    ours = {"a": Sink(), "b": Sink()}
    hold = {"on": True}

    def stall(signal, request, context):
        while hold["on"]:
            time.sleep(0.05)
    ours["b"].behaviour = stall
    try:
        config = forward_config("127.0.0.1:0", ours, {"batch": {"timeout": "5ms"}})
        config["exporters"]["otlp/b"]["sending_queue"] = {"queue_size": 1, "sizer": "requests", "num_consumers": 1}
        config["exporters"]["otlp/b"]["timeout"] = "30s"
        trailhead = start_trailhead(config)
        address = trailhead.address("otlp (http)")
        body = (CONFORMANCE / FIXTURES["traces"]).read_bytes()
        statuses = []
        for _ in range(10):
            response = requests.post(f"http://{address}/v1/traces", data=body,
                                     headers={"Content-Type": "application/json"}, timeout=10)
            statuses.append(response.status_code)
        assert 503 in statuses, statuses
        accepted = statuses.count(200)
        hold["on"] = False
        per_request = fixture_counts()["traces"]
        wait_items([ours["a"], ours["b"]], {"traces": accepted * per_request})
        time.sleep(0.3)
        assert len(flat_items("traces", ours["a"].requests["traces"])) == accepted * per_request
        assert len(flat_items("traces", ours["b"].requests["traces"])) == accepted * per_request
    finally:
        hold["on"] = False
        for sink in ours.values():
            sink.stop()


def validate(tmp_path, config_text):
    path = tmp_path / "t.yaml"
    path.write_text(config_text)
    done = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


# The collector's graph refusals, each at the line and column where the pipeline lists it.
def test_graph_refusals_are_located(tmp_path):
    text = """receivers:
  otlp:
    protocols: {http: {endpoint: 127.0.0.1:0}}
processors:
  attributes: {actions: [{key: a, value: b, action: insert}]}
connectors:
  forward:
  forward/half:
exporters:
  debug:
service:
  pipelines:
    traces/in: {receivers: [otlp], exporters: [forward/half]}
    traces/a: {receivers: [forward], processors: [attributes], exporters: [debug, forward]}
    logs/x: {receivers: [forward], exporters: [debug]}
"""
    code, output = validate(tmp_path, text)
    assert code != 0
    assert "t.yaml:13:48: connector `forward/half`: used as exporter in [traces/in] pipeline but not used in any supported receiver pipeline" in output, output
    assert "t.yaml:15:26: connector `forward`: used as receiver in [logs/x] pipeline but not used in any supported exporter pipeline" in output, output
    assert "t.yaml:14:83: connector `forward`: cycle detected: connector `forward` (traces to traces) -> processor `attributes` in pipeline `traces/a` -> connector `forward` (traces to traces)" in output, output


def spans_request(resources):
    """An OTLP traces request: resources (service, [(span name, env)]), each span with an
    int attribute `zero` = 0 for a condition that fails to evaluate."""
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.resource.v1 import resource_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2

    def attr(key, value):
        any_value = common_pb2.AnyValue(int_value=value) if isinstance(value, int) else common_pb2.AnyValue(string_value=value)
        return common_pb2.KeyValue(key=key, value=any_value)
    resource_spans = []
    for service, spans in resources:
        items = [trace_pb2.Span(trace_id=bytes([i + 1] * 16), span_id=bytes([i + 1] * 8), name=name,
                                attributes=[attr("env", env), attr("zero", 0)]) for i, (name, env) in enumerate(spans)]
        resource_spans.append(trace_pb2.ResourceSpans(resource=resource_pb2.Resource(attributes=[attr("service.name", service)]),
                                                      scope_spans=[trace_pb2.ScopeSpans(spans=items)]))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=resource_spans).SerializeToString()


def routing_config(sinks, routing):
    """OTLP in → `traces/in` → `routing` → one pipeline per sink (`traces/<name>`)."""
    exporters = {f"otlp/{name}": {"endpoint": sink.endpoint, "tls": {"insecure": True}, "batch": {"timeout": "20ms"}}
                 for name, sink in sinks.items()}
    pipelines = {"traces/in": {"receivers": ["otlp"], "exporters": ["routing"]}}
    for name in sinks:
        pipelines[f"traces/{name}"] = {"receivers": ["routing"], "exporters": [f"otlp/{name}"]}
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "connectors": {"routing": routing},
        "exporters": exporters,
        "service": {"pipelines": pipelines},
    }


def span_names(sink):
    return sorted(span.name for request in sink.requests["traces"] for r in request.resource_spans
                  for s in r.scope_spans for span in s.spans)


def post_spans(trailhead, body):
    return requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=body,
                         headers={"Content-Type": "application/x-protobuf"}, timeout=5)


# A resource route takes a whole resource (the first route it meets), a span route single
# spans of what is left, and the default pipelines the rest.
def test_routing_by_resource_and_span_with_default(start_trailhead):
    sinks = {"cart": Sink(), "prod": Sink(), "rest": Sink()}
    try:
        routing = {
            "default_pipelines": ["traces/rest"],
            "table": [
                {"condition": 'attributes["service.name"] == "cart"', "pipelines": ["traces/cart"]},
                {"context": "span", "statement": 'route() where attributes["env"] == "prod"', "pipelines": ["traces/prod"]},
            ],
        }
        trailhead = start_trailhead(routing_config(sinks, routing))
        body = spans_request([("cart", [("c1", "prod"), ("c2", "dev")]), ("shop", [("s1", "prod"), ("s2", "dev")])])
        assert post_spans(trailhead, body).status_code == 200
        for sink, count in [(sinks["cart"], 2), (sinks["prod"], 1), (sinks["rest"], 1)]:
            sink.wait_for("traces", count, timeout=10)
        time.sleep(0.2)
        assert span_names(sinks["cart"]) == ["c1", "c2"]
        assert span_names(sinks["prod"]) == ["s1"]
        assert span_names(sinks["rest"]) == ["s2"]
        shop = sinks["prod"].requests["traces"][0].resource_spans[0].resource.attributes[0]
        assert (shop.key, shop.value.string_value) == ("service.name", "shop")
    finally:
        for sink in sinks.values():
            sink.stop()


# error_mode: `propagate` (the default) refuses the request when a condition fails to
# evaluate, and nothing is delivered; `ignore` counts it as unmet, so the default takes it.
def test_routing_error_mode(start_trailhead):
    sinks = {"hit": Sink(), "rest": Sink()}
    try:
        table = [{"context": "span", "condition": '10 / attributes["zero"] > 1', "pipelines": ["traces/hit"]}]
        body = spans_request([("cart", [("c1", "prod")])])
        strict = start_trailhead(routing_config(sinks, {"default_pipelines": ["traces/rest"], "table": table}))
        refused = post_spans(strict, body)
        assert refused.status_code != 200 and refused.status_code != 503, refused.status_code
        lenient = start_trailhead(routing_config(sinks, {"default_pipelines": ["traces/rest"], "table": table, "error_mode": "ignore"}))
        assert post_spans(lenient, body).status_code == 200
        sinks["rest"].wait_for("traces", 1, timeout=10)
        time.sleep(0.2)
        assert span_names(sinks["rest"]) == ["c1"] and span_names(sinks["hit"]) == []
    finally:
        for sink in sinks.values():
            sink.stop()


# A routing table refused as the collector refuses it, at the key; and a route naming a
# pipeline that does not receive from the connector.
def test_routing_refusals_are_located(tmp_path):
    text = """receivers:
  otlp:
    protocols: {http: {endpoint: 127.0.0.1:0}}
connectors:
  routing:
    table:
      - condition: 'attributes["a"] == "b"'
        statement: 'route() where true'
        pipelines: [traces/a]
      - condition: 'true'
        pipelines: [traces/nope]
exporters:
  debug:
service:
  pipelines:
    traces/in: {receivers: [otlp], exporters: [routing]}
    traces/a: {receivers: [routing], exporters: [debug]}
"""
    code, output = validate(tmp_path, text)
    assert code != 0
    assert "t.yaml:7:9: connector `routing`: table[0]: invalid route: both condition and statement provided" in output, output
    assert "t.yaml:11:21: connector `routing`: table[1].pipelines[0]: pipeline `traces/nope` does not list connector `routing` as a receiver" in output, output
