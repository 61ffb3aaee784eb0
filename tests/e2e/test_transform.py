"""The built-in `transform` plugin against the collector's own transformprocessor.

The same OTLP payloads go through the OpenTelemetry Collector (built from its Go modules with
the transformprocessor v0.161.0) and through trailhead with the same `transform:` block. What
comes out must be the same, item for item: every resource, scope, span, event, log record,
metric and data point with its fields and attributes. The transform runs from the built-in
plugin: the config gives no `plugin:` path.
"""

import subprocess
import time

import requests
import yaml
from google.protobuf.json_format import MessageToDict

from conftest import BINARY, free_port, gateway_config, kv, run_collector
from test_collector_interop import read_lines

# A typical gateway config: resource, span, span event, log, metric and data point blocks.
GATEWAY = {
    "error_mode": "ignore",
    "trace_statements": [
        {"context": "resource", "statements": [
            'set(attributes["deployment.environment"], "prod") where attributes["k8s.namespace.name"] == "shop"',
            'delete_key(attributes, "host.id")',
        ]},
        {"context": "span", "statements": [
            'set(attributes["env"], resource.attributes["deployment.environment"]) where resource.attributes["deployment.environment"] != nil',
            'delete_key(attributes, "password")',
            'replace_pattern(name, "/users/[0-9]+", "/users/{id}")',
            'replace_pattern(attributes["http.url"], "token=([a-z0-9]+)", "token=$$1-redacted")',
            'replace_all_patterns(attributes, "value", "secret-[a-z]+", "***")',
            "truncate_all(attributes, 24)",
            'limit(attributes, 6, ["http.route"])',
            'set(status.code, STATUS_CODE_ERROR) where attributes["http.status_code"] >= 500',
            'set(status.message, "server error") where attributes["http.status_code"] >= 500',
            'set(attributes["duration_ns"], end_time_unix_nano - start_time_unix_nano)',
            'set(kind, SPAN_KIND_INTERNAL) where kind == SPAN_KIND_UNSPECIFIED',
        ]},
        {"context": "spanevent", "conditions": ['name == "retry"'], "statements": [
            'set(attributes["span"], span.name)',
        ]},
    ],
    "log_statements": [
        {"context": "log", "statements": [
            'replace_pattern(body, "password=[^ ]+", "password=***")',
            'set(severity_text, "WARN") where severity_number >= SEVERITY_NUMBER_WARN and severity_number < SEVERITY_NUMBER_ERROR',
            'set(attributes["service"], resource.attributes["service.name"])',
            'keep_keys(attributes, ["service", "user"])',
            'set(time_unix_nano, time_unix_nano + 1000)',
        ]},
    ],
    "metric_statements": [
        {"context": "metric", "statements": [
            'set(description, "requests served") where name == "requests"',
            'set(unit, "1") where name == "requests"',
            'set(name, Concat([name, "total"], "_")) where type == METRIC_DATA_TYPE_SUM',
        ]},
        {"context": "datapoint", "statements": [
            'set(attributes["metric"], metric.name)',
            'delete_key(attributes, "http.route") where attributes["http.route"] == "/healthz"',
        ]},
    ],
}

# The flat form: the context inferred from the paths, and the converters, math and nested keys.
FLAT = {
    "trace_statements": [
        'set(span.attributes["upper"], ToUpperCase(span.name))',
        'set(span.attributes["lower"], ConvertCase(span.name, "lower"))',
        'set(span.attributes["svc"], Concat([resource.attributes["service.name"], span.name, span.attributes["missing"]], ":"))',
        'set(span.attributes["nested"]["a"]["b"], "deep")',
        'set(span.attributes["hash"], SHA256(span.name))',
        'set(span.attributes["ns"], Nanoseconds(Duration("1.5s")))',
        'set(span.attributes["int"], Int("42") * 2 - 1)',
        'set(span.attributes["half"], Double(span.attributes["n"]) / 4)',
        'set(span.attributes["len"], Len(span.name))',
        'set(span.attributes["sub"], Substring(span.name, 0, 3)) where Len(span.name) >= 3',
        'set(span.attributes["parts"], Split(span.name, " "))',
        'set(span.attributes["first"], Split(span.name, " ")[0])',
        'set(span.attributes["is_str"], IsString(span.attributes["n"]))',
        # Not on a span without `n`: the collector would write an empty value there, which
        # contract 0.2 cannot carry (docs/PLUGINS.md).
        'set(span.attributes["n_str"], String(span.attributes["n"])) where span.attributes["n"] != nil',
        'set(span.attributes["tid"], span.trace_id.string) where span.trace_id == TraceID(0x5b8efff798038103d269b633813fc60c)',
        'set(span.attributes["matched"], true) where IsMatch(span.name, "^GET")',
        'replace_match(span.attributes["db"], "SELECT *", "query")',
        'replace_all_matches(span.attributes, "*secret*", "***")',
        'delete_matching_keys(span.attributes, "^tmp\\\\.")',
        'merge_maps(span.attributes, {"n": 100, "added": "yes"}, "insert")',
        'set(span.attributes["flat"], {"a": {"b": 1}, "l": [1, 2]})',
        'flatten(span.attributes["flat"], "f")',
        'keep_matching_keys(span.attributes, "^(?:[a-z]|f\\\\.)")',
    ],
}




TRACE_ID = "5b8efff798038103d269b633813fc60c"


def span(i, name, kind=2, status=None, start=1000, end=251000, attributes=None, events=()):
    return {"traceId": TRACE_ID, "spanId": f"{i:016x}", "name": name, "kind": kind,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
            "status": status or {}, "attributes": kv(attributes or {}),
            "events": [{"timeUnixNano": "1", "name": n, "attributes": kv(a)} for n, a in events]}


TRACES = {"resourceSpans": [
    {"resource": {"attributes": kv({"service.name": "lessons", "k8s.namespace.name": "shop", "host.id": "i-1"})},
     "scopeSpans": [{"scope": {"name": "lessons.http"}, "spans": [
         span(1, "GET /users/42", attributes={
             "http.url": "https://x/users/42?token=abc123", "password": "hunter2", "http.status_code": 503,
             "note": "secret-value here", "http.route": "/users/{id}", "a": "1", "b": "2", "c": "3", "d": "4",
             "long": "a value much longer than twenty four bytes", "n": 7, "db": "SELECT * FROM t",
             "tmp.x": "gone"},
              events=[("retry", {"attempt": 2}), ("other", {})]),
         span(2, "POST /users/7/orders", kind=0, status={"code": 1, "message": "fine"},
              attributes={"http.status_code": 200, "n": 3}),
     ]}]},
    {"resource": {"attributes": kv({"service.name": "billing", "k8s.namespace.name": "ops"})},
     "scopeSpans": [{"scope": {"name": "billing"}, "spans": [span(3, "charge", kind=3, start=5, end=10)]}]},
]}


def record(body, severity=0, text="", attributes=None):
    return {"timeUnixNano": "1", "severityNumber": severity, "severityText": text,
            "body": {"stringValue": body}, "attributes": kv(attributes or {})}


LOGS = {"resourceLogs": [{"resource": {"attributes": kv({"service.name": "auth"})}, "scopeLogs": [{"scope": {"name": "auth"}, "logRecords": [
    record("user password=hunter2 logged in", 9, "INFO", {"user": "ada", "ip": "10.0.0.1"}),
    record("disk almost full", 14, "warning", {"disk": "/dev/sda"}),
    record("boom", 17, "ERROR"),
    record("no severity"),
]}]}]}


def point(attributes, **value):
    return {"timeUnixNano": "1", "attributes": kv(attributes), **value}


METRICS = {"resourceMetrics": [
    {"resource": {"attributes": kv({"service.name": "lessons"})},
     "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
         {"name": "requests", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
             point({"http.route": "/healthz"}, asInt="5"),
             point({"http.route": "/lessons"}, asInt="7")]}},
         {"name": "queue", "unit": "items", "gauge": {"dataPoints": [point({}, asDouble=1.5)]}},
     ]}]},
]}

PAYLOADS = {"traces": TRACES, "metrics": METRICS, "logs": LOGS}
KEYS = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}


def norm(value):
    """A value with its maps' keys sorted, at every depth: the collector builds a map literal
    from a Go map, whose order changes from run to run."""
    if isinstance(value, dict):
        out = {k: norm(v) for k, v in value.items()}
        if "kvlistValue" in out:
            out["kvlistValue"] = {"values": sorted(out["kvlistValue"].get("values", []), key=lambda kv: kv["key"])}
        return out
    if isinstance(value, list):
        return [norm(v) for v in value]
    return value


def attrs(entity):
    """Attributes as a sorted list of (key, value): attribute order is not compared (pdata
    rebuilds some maps where trailhead edits them in place)."""
    return sorted((a["key"], repr(norm(a.get("value", {})))) for a in entity.get("attributes", []))


def outcome(signal, requests_json):
    """Everything that came out, as comparable tuples, in order."""
    out = []
    for request in requests_json:
        for rs in request.get(KEYS[signal], []):
            resource = attrs(rs.get("resource", {}))
            for ss in rs.get("scopeSpans", []) + rs.get("scopeLogs", []) + rs.get("scopeMetrics", []):
                scope = ss.get("scope", {}).get("name", "")
                for s in ss.get("spans", []):
                    status = s.get("status", {})
                    events = tuple((e["name"], tuple(attrs(e))) for e in s.get("events", []))
                    out.append((resource, scope, s["name"], s.get("kind", 0), status.get("code", 0),
                                status.get("message", ""), s.get("startTimeUnixNano"), s.get("endTimeUnixNano"),
                                attrs(s), events))
                for r in ss.get("logRecords", []):
                    out.append((resource, scope, repr(r.get("body")), r.get("severityNumber", 0),
                                r.get("severityText", ""), r.get("timeUnixNano"), attrs(r)))
                for m in ss.get("metrics", []):
                    data = next(v for k, v in m.items() if k in ("gauge", "sum", "histogram", "summary", "exponentialHistogram"))
                    points = tuple(tuple(attrs(p)) for p in data["dataPoints"])
                    out.append((resource, scope, m["name"], m.get("unit", ""), m.get("description", ""), points))
    return out


def through_collector(tmp_path, transform):
    port = free_port()
    out = tmp_path / "transformed.json"
    pipelines = {s: {"receivers": ["otlp"], "processors": ["transform"], "exporters": ["file"]} for s in PAYLOADS}
    config = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
              "processors": {"transform": transform},
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
    return {s: outcome(s, [line for line in lines if KEYS[s] in line]) for s in PAYLOADS}


def through_trailhead(sink, start_trailhead, transform):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"transform": transform}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["transform"]
    trailhead = start_trailhead(config)
    for signal, payload in PAYLOADS.items():
        assert requests.post(trailhead.url("otlp (http)", f"/v1/{signal}"), json=payload, timeout=5).status_code == 200
    for signal in PAYLOADS:
        sink.wait_for(signal, 1)
    time.sleep(0.5)
    got = {s: outcome(s, [MessageToDict(r, use_integers_for_enums=True) for r in sink.requests[s]]) for s in PAYLOADS}
    return got, trailhead


def assert_same(expected, got):
    for signal in PAYLOADS:
        assert len(got[signal]) == len(expected[signal]), (signal, got[signal], expected[signal])
        for mine, theirs in zip(got[signal], expected[signal]):
            assert mine == theirs, f"{signal}:\n  trailhead {mine}\n  collector {theirs}"


# The typical gateway config: trailhead's transform changes every item as the collector's does.
def test_gateway_transform_matches_the_collector(sink, start_trailhead, tmp_path):
    expected = through_collector(tmp_path, GATEWAY)
    got, trailhead = through_trailhead(sink, start_trailhead, GATEWAY)
    # Not vacuous: the statements changed what they should have.
    first = expected["traces"][0]
    assert first[2] == "GET /users/{id}" and first[4] == 2 and first[5] == "server error", first
    assert ("env", repr({"stringValue": "prod"})) in first[8], first[8]
    assert ("http.url", repr({"stringValue": "https://x/users/{id}?tok"})) not in first[8]
    assert expected["logs"][1][4] == "WARN" and expected["metrics"][0][2] == "requests_total", expected
    assert_same(expected, got)
    assert not [line for line in trailhead.logs if "statement" in str(line)], trailhead.logs


# The flat form with converters, math, nested keys and map editors: the same again.
def test_flat_statements_and_converters_match_the_collector(sink, start_trailhead, tmp_path):
    expected = through_collector(tmp_path, FLAT)
    got, _ = through_trailhead(sink, start_trailhead, FLAT)
    first = dict(expected["traces"][0][8])
    assert first["upper"] == repr({"stringValue": "GET /USERS/42"}), first
    assert "f.a.b" in first["flat"] and "tmp.x" not in first, first
    assert_same(expected, got)


# A statement trailhead cannot run fails `validate` at its own line, naming the function and
# its column.
def test_unsupported_function_points_at_its_line(tmp_path, sink):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"transform": {"trace_statements": [{"context": "span", "statements": [
        'set(attributes["a"], "b")', 'set(attributes["h"], FNV(name))']}]}}
    config["service"]["pipelines"]["traces"]["processors"] = ["transform"]
    path = tmp_path / "bad.yaml"
    text = yaml.safe_dump(config, sort_keys=False, width=1000)
    path.write_text(text)
    line = next(n for n, l in enumerate(text.splitlines(), 1) if "FNV" in l)
    result = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"bad.yaml:{line}:" in result.stderr, result.stderr
    assert "column 22: unsupported function `FNV`" in result.stderr, result.stderr
