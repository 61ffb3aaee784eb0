"""The built-in `probabilistic_sampler` and `redaction` plugins against the collector's own
probabilisticsamplerprocessor and redactionprocessor (v0.161.0).

The same OTLP payloads go through the OpenTelemetry Collector (built from its Go modules with
both processors) and through trailhead with the same processor block. What comes out must be the
same, item for item: for the sampler, the same spans and log records kept with the same trace
states and sampling attributes; for redaction, the same attributes in the same order (summaries
included), the same log bodies. Both plugins run as built-ins: no `plugin:` path.
"""

import base64
import json
import random
import subprocess
import time

import pytest
import requests
import yaml
from google.protobuf.json_format import MessageToDict

from conftest import BINARY, free_port, gateway_config, run_collector

KEYS = {"traces": "resourceSpans", "metrics": "resourceMetrics", "logs": "resourceLogs"}


def read_lines(path):
    """The file exporter's lines: split on newlines only, since a value may hold U+2028, which
    str.splitlines() would split on."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().split("\n") if line.strip()]


def value(v):
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


def typed(v):
    """An OTLP/JSON value in a comparable form that keeps map order (the collector's order is
    part of what must match)."""
    if not v:
        return ("empty",)
    (kind, inner), = v.items()
    if kind == "kvlistValue":
        return ("map", tuple((e["key"], typed(e.get("value", {}))) for e in inner.get("values", [])))
    if kind == "arrayValue":
        return ("array", tuple(typed(x) for x in inner.get("values", [])))
    if kind == "intValue":
        return ("int", int(inner))
    if kind == "doubleValue":
        return ("double", float(inner))
    return (kind, inner)


def attrs(entries):
    return tuple((e["key"], typed(e.get("value", {}))) for e in entries or [])


def run_both(tmp_path, sink, start_trailhead, processors, payloads):
    """Sends `payloads` (signal → list of requests) through the collector and through
    trailhead with `processors` in every pipeline; returns each one's exported requests as
    OTLP/JSON dicts, per signal."""
    names = list(processors)
    port = free_port()
    out = tmp_path / "collector-out.json"
    pipelines = {s: {"receivers": ["otlp"], "processors": names, "exporters": ["file"]} for s in payloads}
    config = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
              "processors": processors,
              "exporters": {"file": {"path": str(out), "flush_interval": "50ms"}},
              "service": {"pipelines": pipelines, "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}}}}
    process = run_collector(config, tmp_path, port)
    try:
        for signal, batch in payloads.items():
            for payload in batch:
                assert requests.post(f"http://127.0.0.1:{port}/v1/{signal}", json=payload, timeout=10).status_code == 200
        time.sleep(1.5)
    finally:
        process.terminate()
        process.wait(10)
    lines = read_lines(out)
    theirs = {s: [line for line in lines if KEYS[s] in line] for s in payloads}

    config = gateway_config(sink.endpoint)
    config["processors"] = processors
    for signal in list(config["service"]["pipelines"]):
        if signal in payloads:
            config["service"]["pipelines"][signal]["processors"] = names
    trailhead = start_trailhead(config)
    for signal, batch in payloads.items():
        for payload in batch:
            assert requests.post(trailhead.url("otlp (http)", f"/v1/{signal}"), json=payload, timeout=10).status_code == 200
    time.sleep(1.5)
    mine = {s: [MessageToDict(r) for r in sink.requests[s]] for s in payloads}
    assert trailhead.metric("trailhead_processor_failures_total") == 0
    return theirs, mine, trailhead


# --- probabilistic_sampler ---------------------------------------------------------------------

RNG = random.Random(19)
TRACE_IDS = [f"{RNG.getrandbits(128):032x}" for _ in range(2000)]
# Trace states that arrive with some traces, the same on every span of the trace: none, an
# arriving threshold, an explicit randomness, another vendor's member, and invalid ones.
STATES = ["", "", "", "", "ot=th:8", "ot=th:c;foo:bar", f"ot=rv:{RNG.getrandbits(56):014x}",
          "vendor=x,ot=th:4", "ot=rv:abababababababab", "Bad=1", "congo=t61rcWkgMzE"]
TRACE_STATES = {t: STATES[i % len(STATES)] for i, t in enumerate(TRACE_IDS)}


def spans_request(spans):
    return {"resourceSpans": [{"resource": {"attributes": kv({"service.name": "lessons"})},
                               "scopeSpans": [{"scope": {"name": "s"}, "spans": spans}]}]}


def sampler_span(trace_id, n, attributes=None):
    return {"traceId": trace_id, "spanId": f"{n:016x}", "name": f"span-{n}", "traceState": TRACE_STATES.get(trace_id, ""),
            "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": kv(attributes or {})}


# Two requests: the first span of every trace, then the second span of every trace in another
# order; and a few spans whose `sampling.priority` forces the decision either way.
SECOND = list(enumerate(TRACE_IDS))
RNG.shuffle(SECOND)
SAMPLER_TRACES = [
    spans_request([sampler_span(t, 2 * i + 1) for i, t in enumerate(TRACE_IDS)]),
    spans_request([sampler_span(t, 2 * i + 2) for i, t in SECOND]
                  + [sampler_span(f"{RNG.getrandbits(128):032x}", 10_000 + i, {"sampling.priority": p})
                     for i, p in enumerate([0, 1, "0", "5", 2.5, 0.0, "x", -1] * 4)]
                  # No trace ID: missing randomness, kept only by fail_closed: false or priority.
                  + [sampler_span("", 20_000 + i, {"sampling.priority": p} if p is not None else None)
                     for i, p in enumerate([None, None, 1, 0])]),
]

LOG_TRACE_IDS = [f"{RNG.getrandbits(128):032x}" for _ in range(600)]


def log_record(n, trace_id=None, attributes=None):
    record = {"timeUnixNano": "1", "body": {"stringValue": f"record-{n}"}, "attributes": kv(attributes or {})}
    if trace_id:
        record["traceId"] = trace_id
    return record


# Records with trace IDs; records with only a `record.id` attribute (hashed by
# `from_attribute` in hash_seed mode); records carrying sampling attributes already; and
# records whose `prio` attribute raises or lowers their probability.
SAMPLER_LOGS = [{"resourceLogs": [{"resource": {"attributes": kv({"service.name": "auth"})}, "scopeLogs": [{"scope": {"name": "l"}, "logRecords":
    [log_record(i, t) for i, t in enumerate(LOG_TRACE_IDS)]
    + [log_record(1000 + i, None, {"record.id": f"req-{i}"}) for i in range(300)]
    + [log_record(2000 + i, LOG_TRACE_IDS[i], {"sampling.threshold": th}) for i, th in enumerate(["8", "c", "zz", "0"] * 5)]
    + [log_record(3000 + i, LOG_TRACE_IDS[i], {"sampling.randomness": "ffffffffffffff"}) for i in range(5)]
    + [log_record(4000 + i, LOG_TRACE_IDS[i], {"prio": p}) for i, p in enumerate([100, 0, 50.0, 1, "100"] * 4)]
    # `from_attribute` values of every type, hashed by their string form (Go's AsString).
    + [log_record(5000 + i, None, {"record.id": v}) for i, v in enumerate(
        [n for n in range(40)] + [n / 7 for n in range(40)] + [1e21, 1.5e-7, -0.0, True, False, b"\x00\x01raw",
         ["a", 1, 2.5, {"k": "v<&>"}], {"b": 1, "a": [True, None and 1 or "x"], "c": "quote\"\n\u2028"}, ""])]
}]}]}]


def kept_spans(requests_json):
    out = []
    for request in requests_json:
        for rs in request.get("resourceSpans", []):
            for ss in rs.get("scopeSpans", []):
                for s in ss.get("spans", []):
                    trace_id = s.get("traceId", "")
                    out.append((trace_id.lower() if len(trace_id) == 32 else base64.b64decode(trace_id).hex(),
                                s["name"], s.get("traceState", ""), attrs(s.get("attributes"))))
    return sorted(out)


def kept_records(requests_json):
    out = []
    for request in requests_json:
        for rl in request.get("resourceLogs", []):
            for sl in rl.get("scopeLogs", []):
                for r in sl.get("logRecords", []):
                    out.append((r["body"]["stringValue"], attrs(r.get("attributes"))))
    return sorted(out)


def sampler_config(mode, percentage=25):
    config = {"sampling_percentage": percentage, "mode": mode, "from_attribute": "record.id", "sampling_priority": "prio"}
    if mode == "hash_seed":
        config["hash_seed"] = 22
    return config


# 25% in each mode, on 2,000 traces sent as two requests: trailhead keeps exactly the spans the
# collector keeps, with the same trace states (rv/th written, invalid ones dropped), and the
# same log records with the same sampling attributes. Every span of a trace shares the
# decision, across the two requests.
@pytest.mark.parametrize("mode", ["hash_seed", "proportional", "equalizing"])
def test_sampler_matches_the_collector(sink, start_trailhead, tmp_path, mode):
    processors = {"probabilistic_sampler": sampler_config(mode)}
    theirs, mine, _ = run_both(tmp_path, sink, start_trailhead, processors,
                               {"traces": SAMPLER_TRACES, "logs": SAMPLER_LOGS})
    expected, got = kept_spans(theirs["traces"]), kept_spans(mine["traces"])
    # Not vacuous: about a quarter of the plain traces (two spans each) are kept, and trace
    # states were written.
    plain = [s for s in expected if TRACE_STATES.get(s[0]) == ""]
    plain_traces = sum(1 for t in TRACE_IDS if TRACE_STATES[t] == "")
    assert 0.18 * plain_traces < len(plain) / 2 < 0.32 * plain_traces, len(plain)
    assert any(s[2].startswith("ot=") for s in expected)
    assert len(got) == len(expected), (len(got), len(expected))
    for mine_span, their_span in zip(got, expected):
        assert mine_span == their_span
    # One decision per trace, across the two requests.
    by_trace = {}
    for trace_id, name, _, _ in got:
        if int(name.split("-")[1]) <= 2 * len(TRACE_IDS):
            by_trace.setdefault(trace_id, set()).add(name)
    assert by_trace and all(len(names) == 2 for names in by_trace.values())

    expected, got = kept_records(theirs["logs"]), kept_records(mine["logs"])
    assert 0 < len(expected) < 945 + 89
    assert got == expected


# Other percentages and precisions, where the collector's float32 scaling, rounding to a
# precision and its limits show: the same spans and records kept, the same trace states.
@pytest.mark.parametrize("mode, percentage, extra", [
    ("hash_seed", 33.3, {}), ("hash_seed", 0.001, {}), ("proportional", 0.7, {"sampling_precision": 2, "fail_closed": False}),
    ("equalizing", 61.8, {"sampling_precision": 14}), ("proportional", 150, {}), ("equalizing", 0, {}),
    # Logs hashed by their attribute even where they have a trace ID; the mode left unset.
    ("", 50, {"attribute_source": "record", "hash_seed": 7}),
])
def test_sampler_percentages_match_the_collector(sink, start_trailhead, tmp_path, mode, percentage, extra):
    config = {**sampler_config(mode, percentage), **extra}
    theirs, mine, _ = run_both(tmp_path, sink, start_trailhead, {"probabilistic_sampler": config},
                               {"traces": SAMPLER_TRACES, "logs": SAMPLER_LOGS})
    expected, got = kept_spans(theirs["traces"]), kept_spans(mine["traces"])
    assert got == expected
    assert kept_records(mine["logs"]) == kept_records(theirs["logs"])
    if percentage == 33.3:
        assert len(expected) > 400
    if percentage in (0, 0.001):
        # Nothing is sampled but what `sampling.priority` forces.
        assert expected and all(dict(span[3]).get("sampling.priority") for span in expected)


# --- redaction ---------------------------------------------------------------------------------

CARD = "4111111111111111"
SPAN_ATTRS = {"id": 42, "name": "Ada", "card": f"visa {CARD} exp", "password": "hunter2", "api_token": "t0k",
              "trace.note": CARD, "safe": "4000000000000002", "amount": 12.5, "ok": True, "tags": ["a", CARD],
              "redaction.redacted.keys": "zeta", "redaction.masked.count": 2, "user.email": "ada@example.com",
              "n": 7, "group": "x", "zz": "azzb"}

REDACTION_TRACES = [{"resourceSpans": [{
    "resource": {"attributes": kv({"service.name": "shop", "host.name": "web-1", "card.owner": CARD})},
    "scopeSpans": [{"scope": {"name": "http", "attributes": kv({"lib.secret": "s", "id": "scope-1"})}, "spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "GET /cart",
         "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": kv(SPAN_ATTRS),
         "events": [{"timeUnixNano": "1", "name": "exception", "attributes": kv({"id": 1, "stack": f"at {CARD}", "password": "p"})}],
         "links": [{"traceId": "5b8efff798038103d269b633813fc60d", "spanId": "eee19b7ec3c1b175", "attributes": kv({"password": "p"})}]},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b176", "name": "clean",
         "startTimeUnixNano": "1", "endTimeUnixNano": "2", "attributes": kv({"id": 1, "name": "b"})},
    ]}]}]}]

REDACTION_LOGS = [{"resourceLogs": [{"resource": {"attributes": kv({"service.name": "auth", "password": "x"})}, "scopeLogs": [{"scope": {"name": "l"}, "logRecords": [
    {"timeUnixNano": "1", "body": {"stringValue": f"charged {CARD} for Ada"}, "attributes": kv({"id": 1, "password": "p"})},
    {"timeUnixNano": "1", "body": value({"name": "Ada", "password": "p", "api_token": "t", "trace.note": "n",
                                         "user": {"id": 7, "card": CARD, "secret": "s", "list": [CARD, 5, {"password": "q", "name": "z"}]},
                                         "safe": "4000000000000002", "amount": 4111111111111111}),
     "attributes": kv({"name": "Ada", "redaction.body.masked.count": 1})},
    {"timeUnixNano": "1", "body": value([CARD, "fine", {"id": 1, "password": "p"}]), "attributes": kv({"id": 2})},
    {"timeUnixNano": "1", "body": {"stringValue": "4000000000000002"}, "attributes": kv({"id": 3})},
    {"timeUnixNano": "1", "body": {"intValue": "4111111111111111"}, "attributes": kv({"id": 4})},
    {"timeUnixNano": "1", "attributes": kv({"id": 5})},
]}]}]}]

REDACTION_METRICS = [{"resourceMetrics": [{"resource": {"attributes": kv({"service.name": "m", "password": "x"})}, "scopeMetrics": [{"scope": {"name": "m"}, "metrics": [
    {"name": "g", "gauge": {"dataPoints": [{"timeUnixNano": "1", "asInt": "1", "attributes": kv({"id": CARD, "password": "p"})}]}},
    {"name": "s", "sum": {"aggregationTemporality": 2, "isMonotonic": True, "dataPoints": [
        {"timeUnixNano": "1", "asDouble": 1.5, "attributes": kv({"name": "Ada", "api_token": "t"})}]}},
    {"name": "h", "histogram": {"aggregationTemporality": 2, "dataPoints": [
        {"timeUnixNano": "1", "count": "1", "bucketCounts": ["1"], "explicitBounds": [], "attributes": kv({"group": "g", "x": 1})}]}},
    {"name": "q", "summary": {"dataPoints": [{"timeUnixNano": "1", "count": "1", "sum": 1.0, "attributes": kv({"id": "1"})}]}},
]}]}]}]

BASE = {"allowed_keys": ["id", "name", "card", "api_token", "safe", "amount", "ok", "tags", "user", "list", "stack", "group",
                         "service.name", "user.email", "card.owner"],
        "ignored_keys": ["trace.note"], "ignored_key_patterns": ["^lib\\."],
        "blocked_key_patterns": [".*token.*", "^user\\.email$"],
        "blocked_values": ["4[0-9]{12}(?:[0-9]{3})?", "(?i)ADA"], "allowed_values": ["^4000"]}

REDACTION_CONFIGS = {
    "debug": {**BASE, "summary": "debug"},
    "info-hmac": {**BASE, "summary": "info", "hash_function": "hmac-sha256", "hmac_key": "k" * 32},
    "silent-sha3-all": {**BASE, "summary": "silent", "hash_function": "sha3", "allow_all_keys": True, "redact_all_types": True},
    # A pattern that matches the empty string: the collector masks every non-string value
    # (read as "") and an empty body, and masks between the letters of strings.
    "empty-matches": {"allow_all_keys": True, "blocked_values": ["z*", "^q$"], "summary": "debug", "hash_function": "MD5"},
}


def redacted_items(signal, requests_json):
    out = []
    for request in requests_json:
        if signal == "traces":
            for rs in request.get("resourceSpans", []):
                for ss in rs.get("scopeSpans", []):
                    for s in ss.get("spans", []):
                        out.append((attrs(rs.get("resource", {}).get("attributes")), attrs(ss.get("scope", {}).get("attributes")),
                                    s["name"], attrs(s.get("attributes")),
                                    tuple(attrs(e.get("attributes")) for e in s.get("events", [])),
                                    tuple(attrs(link.get("attributes")) for link in s.get("links", []))))
        elif signal == "metrics":
            for rm in request.get("resourceMetrics", []):
                for sm in rm.get("scopeMetrics", []):
                    for m in sm.get("metrics", []):
                        data = next(v for k, v in m.items() if k in ("gauge", "sum", "histogram", "summary", "exponentialHistogram"))
                        for p in data["dataPoints"]:
                            out.append((attrs(rm.get("resource", {}).get("attributes")), m["name"], attrs(p.get("attributes"))))
        else:
            for rl in request.get("resourceLogs", []):
                for sl in rl.get("scopeLogs", []):
                    for r in sl.get("logRecords", []):
                        out.append((attrs(rl.get("resource", {}).get("attributes")), typed(r.get("body") or {}), attrs(r.get("attributes"))))
    return sorted(out, key=repr)


# Same payloads, same block, for each summary level and hash: every span, span event, link,
# log record (attributes and body) and data point comes out with the collector's attributes,
# in the collector's order, summaries and hashes included; resources and scopes too.
@pytest.mark.parametrize("name", list(REDACTION_CONFIGS))
def test_redaction_matches_the_collector(sink, start_trailhead, tmp_path, name):
    payloads = {"traces": REDACTION_TRACES, "logs": REDACTION_LOGS, "metrics": REDACTION_METRICS}
    theirs, mine, _ = run_both(tmp_path, sink, start_trailhead, {"redaction": REDACTION_CONFIGS[name]}, payloads)
    for signal in payloads:
        expected, got = redacted_items(signal, theirs[signal]), redacted_items(signal, mine[signal])
        assert len(expected) == {"traces": 2, "logs": 6, "metrics": 4}[signal], signal
        for mine_item, their_item in zip(got, expected):
            assert mine_item == their_item, f"{signal}:\n trailhead: {mine_item}\n collector: {their_item}"
        assert len(got) == len(expected)
    # Not vacuous: the collector removed, masked and summarized.
    span = dict(next(i for i in redacted_items("traces", theirs["traces"]) if i[2] == "GET /cart")[3])
    if name == "empty-matches":
        assert span["n"][0] == "stringValue" and span["zz"][1].count("d41d8cd98f00b204e9800998ecf8427e") == 2
        return
    assert span["trace.note"] == ("stringValue", CARD)
    assert CARD not in span["card"][1]
    assert ("password" in span) == (name == "silent-sha3-all")
    if name == "debug":
        assert span["redaction.redacted.keys"] == ("stringValue", "n,password,zeta,zz")
        assert span["redaction.masked.count"] == ("int", 2 + 4)
    if name == "silent-sha3-all":
        assert not any(k.startswith("redaction.") for k in span if k not in SPAN_ATTRS)


def validate(tmp_path, processors):
    config = gateway_config("127.0.0.1:4317")
    config["processors"] = processors
    config["service"]["pipelines"]["traces"]["processors"] = list(processors)
    path = tmp_path / "config.yaml"
    text = yaml.safe_dump(config, sort_keys=False)
    path.write_text(text)
    return text, subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)


# What is not built is refused when the config is checked, naming the key at its line: the
# URL and database sanitizers, an unknown summary level, an unknown key, a bad mode.
@pytest.mark.parametrize("processors, key, message", [
    ({"redaction": {"url_sanitizer": {"enabled": True}}}, "url_sanitizer", "not supported"),
    ({"redaction": {"db_sanitizer": {"sql": {"enabled": True}}}}, "sql:", "not supported"),
    ({"redaction": {"summary": "verbose"}}, "summary", "expected debug, info or silent"),
    ({"redaction": {"blocked_values": ["("]}}, "- (", "error compiling regex"),
    ({"probabilistic_sampler": {"sampling_percentag": 5}}, "sampling_percentag", "unknown field"),
    ({"probabilistic_sampler": {"mode": "fast"}}, "mode", "unknown variant"),
    ({"probabilistic_sampler": {"sampling_precision": 15}}, "sampling_precision", "should be <= 14"),
])
def test_unsupported_options_are_refused(tmp_path, processors, key, message):
    text, result = validate(tmp_path, processors)
    assert result.returncode == 1, result.stderr
    assert message in result.stderr, result.stderr
    line = next(n for n, l in enumerate(text.splitlines(), 1) if l.strip().startswith(key))
    assert f"config.yaml:{line}:" in result.stderr, result.stderr


# Both validate as built-ins with the collector's keys (no `plugin:` path).
def test_collector_configs_validate(tmp_path):
    _, result = validate(tmp_path, {"probabilistic_sampler": sampler_config("hash_seed"),
                                    "redaction": REDACTION_CONFIGS["info-hmac"]})
    assert result.returncode == 0, result.stderr
