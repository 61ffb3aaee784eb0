"""The built-in `filter` plugin against the collector's own filterprocessor.

The same OTLP payloads go through the OpenTelemetry Collector (built from its Go modules with
the filterprocessor) and through trailhead with the same `filter:` block, the conditions of
the filterprocessor's documentation. What survives must be the same, item for item. The
filter runs from the built-in plugin: the config gives no `plugin:` path.
"""

import json
import subprocess
import time

import pytest
import requests
import yaml

from conftest import BINARY, gateway_config, run_collector
from conftest import free_port
from test_collector_interop import read_lines

FILTER = {
    "error_mode": "ignore",
    "traces": {
        "span": [
            'attributes["container.name"] == "app_container_1"',
            'resource.attributes["host.name"] == "localhost"',
            'name == "app_3"',
            'kind == SPAN_KIND_INTERNAL and status.code != STATUS_CODE_ERROR',
            'IsMatch(instrumentation_scope.name, "^noisy")',
        ],
        "spanevent": [
            'attributes["grpc"] == true',
            'IsMatch(name, ".*grpc.*")',
        ],
    },
    "metrics": {
        "metric": [
            'name == "my.metric" and resource.attributes["my_label"] == "abc123"',
            "type == METRIC_DATA_TYPE_HISTOGRAM",
        ],
        "datapoint": [
            "metric.type == METRIC_DATA_TYPE_SUMMARY",
            'attributes["http.route"] == "/healthz"',
        ],
    },
    "logs": {
        "log_record": [
            'IsMatch(body, ".*password.*")',
            "severity_number != SEVERITY_NUMBER_UNSPECIFIED and severity_number < SEVERITY_NUMBER_WARN",
            'not (attributes["keep"] == true or attributes["keep"] == nil)',
        ],
    },
}


def kv(attributes):
    out = []
    for key, value in attributes.items():
        if isinstance(value, bool):
            out.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        else:
            out.append({"key": key, "value": {"stringValue": value}})
    return out


TRACE_ID = "5b8efff798038103d269b633813fc60c"


def span(i, name, kind=2, status=0, attributes=None, events=()):
    return {"traceId": TRACE_ID, "spanId": f"{i:016x}", "name": name, "kind": kind,
            "startTimeUnixNano": "1", "endTimeUnixNano": "2",
            "status": {"code": status}, "attributes": kv(attributes or {}),
            "events": [{"timeUnixNano": "1", "name": n, "attributes": kv(a)} for n, a in events]}


TRACES = {"resourceSpans": [
    {"resource": {"attributes": kv({"host.name": "web-1", "service.name": "lessons"})},
     "scopeSpans": [
         {"scope": {"name": "lessons.http"}, "spans": [
             span(1, "GET /lessons", attributes={"container.name": "app_container_2"},
                  events=[("grpc.send", {}), ("cache.miss", {"grpc": False}), ("retry", {"grpc": True})]),
             span(2, "app_3"),
             span(3, "internal work", kind=1),
             span(4, "internal failure", kind=1, status=2, events=[("exception", {})]),
             span(5, "in container", attributes={"container.name": "app_container_1"}),
         ]},
         {"scope": {"name": "noisy.lib"}, "spans": [span(6, "chatty")]},
     ]},
    {"resource": {"attributes": kv({"host.name": "localhost"})},
     "scopeSpans": [{"scope": {"name": "x"}, "spans": [span(7, "local")]}]},
]}


def point(attributes, **value):
    return {"timeUnixNano": "1", "attributes": kv(attributes), **value}


METRICS = {"resourceMetrics": [
    {"resource": {"attributes": kv({"my_label": "abc123"})},
     "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
         {"name": "my.metric", "gauge": {"dataPoints": [point({}, asInt="1")]}},
         {"name": "requests", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
             point({"http.route": "/healthz"}, asInt="5"),
             point({"http.route": "/lessons"}, asInt="7")]}},
         {"name": "latency", "histogram": {"aggregationTemporality": 2, "dataPoints": [
             point({}, count="1", bucketCounts=["1"], explicitBounds=[])]}},
         {"name": "quantiles", "summary": {"dataPoints": [point({}, count="1", sum=1.0)]}},
         {"name": "probes", "gauge": {"dataPoints": [point({"http.route": "/healthz"}, asDouble=1.0)]}},
     ]}]},
    {"resource": {"attributes": kv({"my_label": "other"})},
     "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
         {"name": "my.metric", "gauge": {"dataPoints": [point({}, asInt="2")]}}]}]},
]}


def record(body, severity=0, attributes=None):
    return {"timeUnixNano": "1", "severityNumber": severity, "body": {"stringValue": body},
            "attributes": kv(attributes or {})}


LOGS = {"resourceLogs": [{"resource": {"attributes": kv({"service.name": "auth"})}, "scopeLogs": [{"scope": {"name": "auth"}, "logRecords": [
    record("user password=hunter2", 9),
    record("debug detail", 5),
    record("no severity", 0),
    record("warning", 13),
    record("error kept", 17, {"keep": True}),
    record("error dropped", 17, {"keep": False}),
]}]}]}

PAYLOADS = {"traces": TRACES, "metrics": METRICS, "logs": LOGS}


def survivors(signal, requests_json):
    """What is left, as comparable tuples: spans with their events, metrics with their
    points' attributes, log bodies."""
    out = []
    for request in requests_json:
        if signal == "traces":
            for rs in request.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append((s["name"], tuple(e["name"] for e in s.get("events", []))))
        elif signal == "metrics":
            for rm in request.get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        data = next(v for k, v in m.items() if k in ("gauge", "sum", "histogram", "summary", "exponentialHistogram"))
                        points = tuple(json.dumps(p.get("attributes", []), sort_keys=True) for p in data["dataPoints"])
                        out.append((m["name"], points))
        else:
            for rl in request.get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for r in sl.get("logRecords", []):
                        out.append(r["body"]["stringValue"])
    return sorted(out)


def through_collector(tmp_path):
    port = free_port()
    out = tmp_path / "filtered.json"
    pipelines = {s: {"receivers": ["otlp"], "processors": ["filter"], "exporters": ["file"]} for s in PAYLOADS}
    config = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
              "processors": {"filter": FILTER},
              "exporters": {"file": {"path": str(out), "flush_interval": "50ms"}},
              "service": {"pipelines": pipelines, "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}}}}
    process = run_collector(config, tmp_path, port)
    try:
        url = f"http://127.0.0.1:{port}"
        for signal, payload in PAYLOADS.items():
            assert requests.post(f"{url}/v1/{signal}", json=payload, timeout=5).status_code == 200
        time.sleep(1.0)
    finally:
        process.terminate()
        process.wait(10)
    lines = read_lines(out)
    keys = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}
    return {s: survivors(s, [line for line in lines if keys[s] in line]) for s in PAYLOADS}


def through_trailhead(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"filter": FILTER}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["filter"]
    trailhead = start_trailhead(config)
    for signal, payload in PAYLOADS.items():
        assert requests.post(trailhead.url("otlp (http)", f"/v1/{signal}"), json=payload, timeout=5).status_code == 200
    time.sleep(1.0)
    from google.protobuf.json_format import MessageToDict
    got = {s: survivors(s, [MessageToDict(r) for r in sink.requests[s]]) for s in PAYLOADS}
    return got, trailhead


# Same input, same conditions: trailhead's filter keeps exactly what the collector keeps.
def test_filter_matches_the_collector(sink, start_trailhead, tmp_path):
    expected = through_collector(tmp_path)
    got, trailhead = through_trailhead(sink, start_trailhead)
    # Not vacuous: each signal kept some items and lost some.
    assert expected["traces"] == [("GET /lessons", ("cache.miss",)), ("internal failure", ("exception",))]
    assert len(expected["logs"]) == 3 and len(expected["metrics"]) == 2
    for signal in PAYLOADS:
        assert got[signal] == expected[signal], signal
    dropped = trailhead.metric("trailhead_processor_dropped_items_total", processor="filter")
    # Items are spans, data points (as the collector counts metrics) and log records.
    assert dropped == (7 - 2) + (7 - 2) + (6 - 3), dropped


# error_mode: an evaluation error (IsMatch on a map) is a plugin error under `propagate`, so
# on_failure applies; under `ignore` the condition is false for that record and the rest run.
@pytest.mark.parametrize("mode", ["propagate", "ignore"])
def test_error_mode(sink, start_trailhead, mode):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"filter": {"error_mode": mode, "logs": {"log_record": ['IsMatch(body, "secret")', "severity_number < 9"]}}}
    config["service"]["pipelines"]["logs"]["processors"] = ["filter"]
    trailhead = start_trailhead(config)
    logs = {"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"kvlistValue": {"values": [{"key": "a", "value": {"stringValue": "secret"}}]}}, "severityNumber": 13},
        {"body": {"stringValue": "debug"}, "severityNumber": 5},
        {"body": {"stringValue": "secret"}, "severityNumber": 13},
    ]}]}]}
    assert requests.post(trailhead.url("otlp (http)", "/v1/logs"), json=logs, timeout=5).status_code == 200
    if mode == "propagate":
        assert sink.wait_for("logs", 3) == 3  # on_failure: pass forwards the batch untouched
        assert trailhead.metric("trailhead_processor_failures_total", processor="filter", kind="plugin_error") == 1
    else:
        assert sink.wait_for("logs", 1) == 1
        time.sleep(0.3)
        assert sink.items("logs") == 1
        assert any("a map" in str(e) for e in trailhead.logs), trailhead.logs


# A condition that does not parse fails `validate` at its own line, naming the column.
def test_bad_condition_points_at_its_line(tmp_path, sink):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"filter": {"traces": {"span": ['name == "ok"', "kind == SPAN_KIND_SERVR"]}}}
    config["service"]["pipelines"]["traces"]["processors"] = ["filter"]
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    path.write_text(text)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if "SPAN_KIND_SERVR" in l)
    result = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"bad.yaml:{line}:" in result.stderr, result.stderr
    assert "column 9: unknown enum `SPAN_KIND_SERVR`" in result.stderr, result.stderr
