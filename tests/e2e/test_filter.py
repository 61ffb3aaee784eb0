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

from conftest import BINARY, free_port, gateway_config, kv, run_collector
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
                        ids = [a["value"]["stringValue"] for a in r.get("attributes", []) if a["key"] == "id"]
                        out.append(ids[0] if ids else r["body"]["stringValue"])
    return sorted(out)


def through_collector(tmp_path, filter_config=FILTER, payloads=PAYLOADS):
    port = free_port()
    out = tmp_path / "filtered.json"
    pipelines = {s: {"receivers": ["otlp"], "processors": ["filter"], "exporters": ["file"]} for s in PAYLOADS}
    config = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
              "processors": {"filter": filter_config},
              "exporters": {"file": {"path": str(out), "flush_interval": "50ms"}},
              "service": {"pipelines": pipelines, "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}}}}
    process = run_collector(config, tmp_path, port)
    try:
        url = f"http://127.0.0.1:{port}"
        for signal, payload in payloads.items():
            assert requests.post(f"{url}/v1/{signal}", json=payload, timeout=5).status_code == 200
        time.sleep(1.0)
    finally:
        process.terminate()
        process.wait(10)
    lines = read_lines(out)
    keys = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}
    return {s: survivors(s, [line for line in lines if keys[s] in line]) for s in payloads}


def through_trailhead(sink, start_trailhead, filter_config=FILTER, payloads=PAYLOADS):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"filter": filter_config}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["filter"]
    trailhead = start_trailhead(config)
    for signal, payload in payloads.items():
        assert requests.post(trailhead.url("otlp (http)", f"/v1/{signal}"), json=payload, timeout=5).status_code == 200
    time.sleep(1.0)
    from google.protobuf.json_format import MessageToDict
    got = {s: survivors(s, [MessageToDict(r) for r in sink.requests[s]]) for s in payloads}
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


# error_mode: an evaluation error (ToLowerCase on a map body) is a plugin error under
# `propagate`, so on_failure applies; under `ignore` the condition is false for that record
# and the rest run.
@pytest.mark.parametrize("mode", ["propagate", "ignore"])
def test_error_mode(sink, start_trailhead, mode):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"filter": {"error_mode": mode, "logs": {"log_record": ['ToLowerCase(body) == "secret"', "severity_number < 9"]}}}
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


# The paths beyond the filterprocessor documentation's examples: durations by math, nested
# keys, IDs, trace states, flags, kinds as text, dropped counts, events and links counted,
# scope versions, log times and bodies indexed, data point values of every type, metric units
# and temporalities. Each condition drops its own item; a body that cannot be indexed fails
# that condition under `ignore` in both.
FULL_FILTER = {
    "error_mode": "ignore",
    "traces": {
        "span": [
            "end_time_unix_nano - start_time_unix_nano > 1000000",
            'attributes["http"]["route"] == "/a"',
            'attributes["codes"][1] == 404',
            'trace_state["vendor"] == "y"',
            "flags == 1",
            'kind.string == "Client"',
            "Len(links) > 1",
            "dropped_events_count > 5",
            'instrumentation_scope.version == "9.9"',
            "parent_span_id.string == \"00000000000000aa\"",
            'resource.attributes["k8s"]["pod"] == "web-9"',
        ],
        "spanevent": [
            'time_unix_nano > 2500 and attributes["n"] == 2',
            'name == "e3" and span.dropped_events_count == 0 and Len(span.events) == 3',
        ],
    },
    "metrics": {
        "metric": ['unit == "By"', "aggregation_temporality == AGGREGATION_TEMPORALITY_DELTA and is_monotonic == false"],
        "datapoint": [
            "value_int == 5",
            "value_double > 2.0",
            'value_int == 0 and metric.name == "z"',
            "count == 3 and Len(bucket_counts) == 2",
            "time_unix_nano - start_time_unix_nano == 100",
            "sum == 1.0",
            'attributes["deep"]["k"] == "v"',
        ],
    },
    "logs": {
        "log_record": [
            'body["user"]["name"] == "ann"',
            "observed_time_unix_nano - time_unix_nano > 1000",
            "flags == 1",
            'event_name == "login"',
            'body.string == "plain2"',
            'IsMatch(body, "secret")',
            'body[1] == 2',
            'trace_id.string == "0af7651916cd43dd8448eb211c80319c"',
        ],
    },
}


def kvlist(attributes):
    return {"kvlistValue": {"values": kv(attributes)}}


def full_span(i, name, start=1000, end=2000, **fields):
    return {"traceId": TRACE_ID, "spanId": f"{i:016x}", "name": name, "kind": 2,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(end), **fields}


LINK = {"traceId": TRACE_ID, "spanId": "00000000000000ff"}
FULL_TRACES = {"resourceSpans": [
    {"resource": {"attributes": [{"key": "k8s", "value": kvlist({"pod": "web-1"})}]},
     "scopeSpans": [
         {"scope": {"name": "http", "version": "1.0"}, "spans": [
             full_span(1, "slow", end=5_000_000),
             full_span(2, "nested", attributes=[{"key": "http", "value": kvlist({"route": "/a"})}]),
             full_span(3, "listed", attributes=[{"key": "codes", "value": {"arrayValue": {"values": [
                 {"intValue": "200"}, {"intValue": "404"}]}}}]),
             full_span(4, "state", traceState="vendor=y"),
             full_span(5, "bad state", traceState="Not A State"),
             full_span(6, "flagged", flags=1),
             full_span(7, "client", kind=3),
             full_span(8, "linked", links=[LINK, LINK]),
             full_span(9, "dropped", droppedEventsCount=9),
             full_span(10, "child", parentSpanId="00000000000000aa"),
             full_span(11, "kept", events=[
                 {"name": "e1", "timeUnixNano": "1500", "attributes": kv({"n": 1})},
                 {"name": "e2", "timeUnixNano": "3000", "attributes": kv({"n": 2})},
                 {"name": "e3", "timeUnixNano": "3000"}]),
             full_span(12, "short", end=900_000, links=[LINK]),
         ]},
         {"scope": {"name": "db", "version": "9.9"}, "spans": [full_span(13, "versioned")]},
     ]},
    {"resource": {"attributes": [{"key": "k8s", "value": kvlist({"pod": "web-9"})}]},
     "scopeSpans": [{"scope": {"name": "x"}, "spans": [full_span(14, "pod 9")]}]},
]}


def log(id_, **fields):
    return {"attributes": kv({"id": id_}), **fields}


FULL_LOGS = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [
    log("map", body={"kvlistValue": {"values": [{"key": "user", "value": kvlist({"name": "ann"})}]}}),
    log("other user", body={"kvlistValue": {"values": [{"key": "user", "value": kvlist({"name": "bob"})}]}}),
    log("late", timeUnixNano="100", observedTimeUnixNano="5000"),
    log("prompt", timeUnixNano="100", observedTimeUnixNano="200"),
    log("flagged", flags=1),
    log("login", eventName="login"),
    log("plain", body={"stringValue": "plain"}),
    log("plain2", body={"stringValue": "plain2"}),
    log("secret map", body=kvlist({"secret": "x"})),
    log("list", body={"arrayValue": {"values": [{"intValue": "1"}, {"intValue": "2"}]}}),
    log("empty"),
    log("traced", traceId="0af7651916cd43dd8448eb211c80319c"),
]}]}]}


def pt(id_, **value):
    return {"timeUnixNano": "0", "attributes": kv({"id": id_}), **value}


FULL_METRICS = {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
    {"name": "g", "unit": "ms", "gauge": {"dataPoints": [pt("int5", asInt="5"), pt("int6", asInt="6"), pt("dbl", asDouble=2.5)]}},
    {"name": "z", "gauge": {"dataPoints": [pt("dbl0", asDouble=0.5)]}},
    {"name": "s", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
        {**pt("s7", asInt="7"), "startTimeUnixNano": "100", "timeUnixNano": "200"},
        {**pt("s8", asInt="8"), "startTimeUnixNano": "100", "timeUnixNano": "300"}]}},
    {"name": "d", "sum": {"aggregationTemporality": 1, "isMonotonic": False, "dataPoints": [pt("d1", asInt="1")]}},
    {"name": "h", "histogram": {"aggregationTemporality": 2, "dataPoints": [
        pt("h3", count="3", sum=4.5, bucketCounts=["1", "2"], explicitBounds=[1.0]),
        pt("h4", count="4", sum=4.5, bucketCounts=["4"], explicitBounds=[])]}},
    {"name": "q", "summary": {"dataPoints": [pt("q1", count="2", sum=1.0), pt("q2", count="2", sum=2.0)]}},
    {"name": "u", "unit": "By", "gauge": {"dataPoints": [pt("u1", asInt="1")]}},
    {"name": "deep", "gauge": {"dataPoints": [
        {"timeUnixNano": "0", "asInt": "1", "attributes": [{"key": "deep", "value": kvlist({"k": "v"})}]},
        pt("shallow", asInt="1")]}},
]}]}]}

FULL_PAYLOADS = {"traces": FULL_TRACES, "metrics": FULL_METRICS, "logs": FULL_LOGS}


# Same input, conditions on every kind of path: trailhead's filter keeps exactly what the
# collector's keeps, and each signal both kept and dropped items.
def test_full_paths_match_the_collector(sink, start_trailhead, tmp_path):
    expected = through_collector(tmp_path, FULL_FILTER, FULL_PAYLOADS)
    got, _ = through_trailhead(sink, start_trailhead, FULL_FILTER, FULL_PAYLOADS)
    assert expected["traces"] == [("bad state", ()), ("kept", ("e1",)), ("short", ())], expected["traces"]
    assert expected["logs"] == ["empty", "other user", "plain", "prompt"], expected["logs"]
    kept_points = [(name, len(points)) for name, points in expected["metrics"]]
    assert kept_points == [("deep", 1), ("g", 1), ("h", 1), ("q", 1), ("s", 1)], expected["metrics"]
    for signal in FULL_PAYLOADS:
        assert got[signal] == expected[signal], signal


# The filter-only converters: IsRootSpan() on spans, and HasAttrOnDatapoint /
# HasAttrKeyOnDatapoint on metrics of every data point type, where the collector's first
# point with the key decides alone and a value that is not a string reads as "".
CONVERTER_FILTER = {
    "traces": {"span": ['IsRootSpan() and name != "kept root"']},
    "metrics": {"metric": [
        'HasAttrOnDatapoint("route", "/b")',
        'HasAttrKeyOnDatapoint("other")',
        'HasAttrOnDatapoint(key = "code", expected_val = "")',
    ]},
}


def attr_point(attributes, **value):
    return {"timeUnixNano": "0", "attributes": kv(attributes), **value}


CONVERTER_PAYLOADS = {
    "traces": {"resourceSpans": [{"resource": {}, "scopeSpans": [{"scope": {"name": "s"}, "spans": [
        full_span(1, "root"),
        full_span(2, "kept root"),
        full_span(3, "child", parentSpanId="0000000000000001"),
        full_span(4, "zero parent", parentSpanId="0000000000000000"),
    ]}]}]},
    "metrics": {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
        {"name": "g first decides", "gauge": {"dataPoints": [
            attr_point({"route": "/a"}, asInt="1"), attr_point({"route": "/b"}, asInt="2")]}},
        {"name": "h", "histogram": {"aggregationTemporality": 2, "dataPoints": [
            attr_point({"route": "/b"}, count="1")]}},
        {"name": "s int code", "sum": {"aggregationTemporality": 2, "dataPoints": [
            attr_point({}, asInt="1"), attr_point({"code": 5}, asInt="2")]}},
        {"name": "q", "summary": {"dataPoints": [attr_point({"route": "/a"}, count="1")]}},
        {"name": "e other", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [
            attr_point({"other": "x"}, count="1")]}},
        {"name": "e", "exponentialHistogram": {"aggregationTemporality": 2, "dataPoints": [
            attr_point({"route": "/c"}, count="1")]}},
        {"name": "plain", "gauge": {"dataPoints": [attr_point({}, asDouble=1.0)]}},
    ]}]}]},
}


# Same input, the filter-only converters: trailhead drops exactly the spans and metrics the
# collector's filterprocessor drops, and each signal both kept and dropped some.
def test_filter_converters_match_the_collector(sink, start_trailhead, tmp_path):
    expected = through_collector(tmp_path, CONVERTER_FILTER, CONVERTER_PAYLOADS)
    got, _ = through_trailhead(sink, start_trailhead, CONVERTER_FILTER, CONVERTER_PAYLOADS)
    assert expected["traces"] == [("child", ()), ("kept root", ())], expected["traces"]
    kept = [name for name, _ in expected["metrics"]]
    assert kept == ["e", "g first decides", "plain", "q"], expected["metrics"]
    for signal in CONVERTER_PAYLOADS:
        assert got[signal] == expected[signal], signal
