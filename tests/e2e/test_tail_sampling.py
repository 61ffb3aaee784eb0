"""The host-native `tail_sampling` processor against the collector's own (v0.161.0).

The same traces (errors, slow ones, attribute-tagged ones, trace states, big ones, a
probabilistic share with a salt, `and`, `not`, `composite` and `drop` policies) go through the
OpenTelemetry Collector built from its Go modules with the tailsamplingprocessor and through
trailhead with the same `tail_sampling:` block. Each sends what it keeps to its own OTLP/gRPC
sink; the trace IDs kept, and every span of each, must be the same. Late spans of a decided
trace then follow the decision on both.
"""

import contextlib
import random
import subprocess
import time

import pytest
import requests
import yaml

from conftest import BINARY, Sink, free_port, gateway_config, run_collector

# Every policy here is deterministic (no rate limit is reached), so both sides must agree
# trace for trace.
TAIL_SAMPLING = {
    "decision_wait": "1s",
    "num_traces": 10000,
    "policies": [
        {"name": "errors", "type": "status_code", "status_code": {"status_codes": ["ERROR"]}},
        {"name": "slow", "type": "latency", "latency": {"threshold_ms": 800}},
        {"name": "band", "type": "latency", "latency": {"threshold_ms": 300, "upper_threshold_ms": 400}},
        {"name": "gold", "type": "string_attribute", "string_attribute": {"key": "tier", "values": ["gold"]}},
        {"name": "vip", "type": "string_attribute",
         "string_attribute": {"key": "customer", "values": ["^vip-[0-9]+$"], "enabled_regex_matching": True}},
        {"name": "share", "type": "probabilistic", "probabilistic": {"hash_salt": "trailhead", "sampling_percentage": 15}},
        {"name": "vendor", "type": "trace_state", "trace_state": {"key": "vendor", "values": ["keep"]}},
        {"name": "big", "type": "span_count", "span_count": {"min_spans": 7}},
        {"name": "retried-5xx", "type": "and", "and": {"and_sub_policy": [
            {"name": "5xx", "type": "numeric_attribute", "numeric_attribute": {"key": "http.status_code", "min_value": 500, "max_value": 599}},
            {"name": "retried", "type": "boolean_attribute", "boolean_attribute": {"key": "retry", "value": True}},
            {"name": "not-canary", "type": "not", "not": {"not_sub_policy":
                {"name": "canary", "type": "string_attribute", "string_attribute": {"key": "deploy", "values": ["canary"]}}}},
        ]}},
        {"name": "mixed", "type": "composite", "composite": {
            "max_total_spans_per_second": 1000000,
            "policy_order": ["eu", "staging"],
            "composite_sub_policy": [
                {"name": "eu", "type": "string_attribute", "string_attribute": {"key": "region", "values": ["eu"]}},
                {"name": "staging", "type": "numeric_attribute", "numeric_attribute": {"key": "env.level", "max_value": 2}},
            ],
            "rate_allocation": [{"policy": "eu", "percent": 50}, {"policy": "staging", "percent": 50}],
        }},
        {"name": "no-health", "type": "drop", "drop": {"drop_sub_policy": [
            {"name": "health", "type": "string_attribute", "string_attribute": {"key": "http.route", "values": ["/healthz"]}},
        ]}},
    ],
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


def make_traces(count=300, seed=20):
    """`count` traces of 1-8 spans with random durations, statuses and attributes, each
    trace a list of (resource attributes, span) in the order its spans are sent."""
    rng = random.Random(seed)
    traces = []
    base = 1_700_000_000_000_000_000
    for _ in range(count):
        trace_id = rng.randbytes(16).hex()
        spans = []
        for i in range(rng.randint(1, 8)):
            start = base + rng.randint(0, 200) * 1_000_000
            end = start + rng.choice([1, 50, 120, 250, 350, 380, 450, 900]) * 1_000_000
            attributes = {}
            for key, values in [("tier", ["gold", "silver", 7]), ("customer", ["vip-12", "vip-x", "joe"]),
                                ("http.status_code", [200, 503, 404, "503"]), ("retry", [True, False, "true"]),
                                ("deploy", ["canary", "stable"]), ("region", ["eu", "us"]),
                                ("env.level", [1, 3]), ("http.route", ["/healthz", "/lessons"])]:
                if rng.random() < 0.12:
                    attributes[key] = rng.choice(values)
            span = {"traceId": trace_id, "spanId": rng.randbytes(8).hex(), "name": f"op{i}",
                    "startTimeUnixNano": str(start), "endTimeUnixNano": str(end),
                    "status": {"code": 2 if rng.random() < 0.05 else rng.choice([0, 1])},
                    "attributes": kv(attributes)}
            if i > 0:
                span["parentSpanId"] = spans[0][1]["spanId"]
            if rng.random() < 0.04:
                span["traceState"] = rng.choice(["vendor=keep", "vendor=drop,other=1", "Vendor=keep", "vendor=keep,vendor=x"])
            resource = {"service.name": rng.choice(["web", "api", "db"])}
            if rng.random() < 0.05:
                resource["tier"] = "gold"
            spans.append((resource, span))
        traces.append(spans)
    return traces


def requests_of(traces, per_request=25):
    """OTLP/JSON bodies: each trace whole in one request, spans grouped by resource."""
    bodies = []
    for at in range(0, len(traces), per_request):
        resource_spans = []
        for trace in traces[at:at + per_request]:
            for resource, span in trace:
                resource_spans.append({"resource": {"attributes": kv(resource)},
                                       "scopeSpans": [{"scope": {"name": "t"}, "spans": [span]}]})
        bodies.append({"resourceSpans": resource_spans})
    return bodies


def kept(sink):
    """Trace ID → sorted span IDs of what reached `sink`."""
    out = {}
    for s in sink.spans():
        out.setdefault(s.trace_id.hex(), []).append(s.span_id.hex())
    return {t: sorted(ids) for t, ids in out.items()}


def post_all(url, bodies):
    for body in bodies:
        response = requests.post(f"{url}/v1/traces", json=body, timeout=10)
        assert response.status_code == 200, response.text


def settle(sink, seconds=3.0):
    """Waits until nothing new arrives at `sink` for `seconds` (decisions come after
    decision_wait, within the collector's one-second tick)."""
    last, still = -1, time.time()
    while time.time() - still < seconds:
        now = sink.items("traces")
        if now != last:
            last, still = now, time.time()
        time.sleep(0.1)


def late_bodies(traces, ids):
    """One more span for each trace in `ids`, after its decision."""
    late = []
    for trace in traces:
        resource, first = trace[0]
        if first["traceId"] in ids:
            span = dict(first, spanId=("ff" + first["spanId"][2:]), name="late", parentSpanId=first["spanId"])
            span["status"] = {"code": 0}
            span["attributes"] = []
            span.pop("traceState", None)
            late.append([(resource, span)])
    return requests_of(late)


@contextlib.contextmanager
def pair(tmp_path, start_trailhead, theirs_config, ours_config):
    """The collector with `theirs_config` and trailhead with `ours_config` (tail_sampling
    blocks), each exporting to its own sink: yields [(url, sink) of the collector, of
    trailhead] and the trailhead, and stops both afterwards."""
    port = free_port()
    theirs = Sink()
    config = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
              "processors": {"tail_sampling": theirs_config},
              "exporters": {"otlp": {"endpoint": theirs.endpoint, "tls": {"insecure": True}}},
              "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["tail_sampling"], "exporters": ["otlp"]}}}}
    process = run_collector(config, tmp_path, port)
    mine = Sink()
    ours = gateway_config(mine.endpoint)
    ours["processors"] = {"tail_sampling": ours_config}
    ours["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling"]
    try:
        trailhead = start_trailhead(ours)
        yield [(f"http://127.0.0.1:{port}", theirs), (trailhead.url("otlp (http)"), mine)], trailhead
    finally:
        process.terminate()
        process.wait(10)
        theirs.stop()
        mine.stop()


def run_both(tmp_path, start_trailhead, traces, late_for, tail_sampling=TAIL_SAMPLING):
    """Sends `traces` through the collector and trailhead, then late spans for `late_for(kept)`;
    returns what each kept before and after the late spans, and the trailhead."""
    results = []
    with pair(tmp_path, start_trailhead, tail_sampling, tail_sampling) as (both, trailhead):
        for url, sink in both:
            post_all(url, requests_of(traces))
        for _, sink in both:
            settle(sink)
            results.append(kept(sink))
        late = late_bodies(traces, late_for(results[0]))
        for url, sink in both:
            post_all(url, late)
        for _, sink in both:
            settle(sink, 1.5)
            results.append(kept(sink))
    return results, trailhead


# The same traces, the same decisions: every kept trace ID, with all its spans; and a late
# span follows its trace's decision on both (kept for a sampled trace, not for the others).
def test_keeps_the_same_traces_as_the_collector(tmp_path, start_trailhead):
    traces = make_traces()
    every = {t[0][1]["traceId"] for t in traces}

    def late_for(theirs):
        sampled = sorted(theirs)[:5]
        others = sorted(every - set(theirs))[:5]
        return set(sampled + others)

    (theirs, mine, theirs_late, mine_late), trailhead = run_both(tmp_path, start_trailhead, traces, late_for)
    print(f"\nkept by the collector: {len(theirs)} of {len(traces)} traces; trailhead: {len(mine)}")
    assert 40 < len(theirs) < len(traces) - 40, len(theirs)  # the set is neither all nor nothing
    assert set(mine) == set(theirs), (sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine)))
    assert mine == theirs
    assert set(theirs_late) == set(theirs), "a late span must not bring back a trace not sampled"
    assert mine_late == theirs_late
    assert sum(len(v) for v in mine_late.values()) == sum(len(v) for v in mine.values()) + 5
    decided = sum(trailhead.metric("trailhead_tail_sampling_traces_total", processor="tail_sampling", decision=d)
                  for d in ("sampled", "not_sampled", "dropped"))
    assert decided == len(traces)
    late = trailhead.metric("trailhead_tail_sampling_late_spans_total", processor="tail_sampling", decision="sampled")
    assert late == 5
    dropped = trailhead.metric("trailhead_tail_sampling_policy_decisions_total", processor="tail_sampling",
                               policy="no-health", decision="dropped")
    assert dropped > 0


# Each policy group alone, so one policy's decisions cannot hide behind another's: the
# probabilistic hash with its salt, the latency band, the attribute combinations, drop.
@pytest.mark.parametrize("names", [["share"], ["band", "slow"], ["retried-5xx", "mixed"],
                                   ["gold", "vip", "vendor", "big"], ["no-health", "errors"]])
def test_each_policy_group_alone(tmp_path, start_trailhead, names):
    policies = [p for p in TAIL_SAMPLING["policies"] if p["name"] in names]
    if names == ["no-health", "errors"]:
        policies.append({"name": "all", "type": "always_sample"})
    config = dict(TAIL_SAMPLING, policies=policies)
    traces = make_traces(400, seed=len(names) + 7)
    (theirs, mine, _, _), _ = run_both(tmp_path, start_trailhead, traces, lambda _: set(), config)
    assert 0 < len(theirs) < len(traces), len(theirs)
    assert mine == theirs, (sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine)))


# At shutdown the traces still waiting are decided at once and the sampled ones delivered
# before the exporters drain: a sender's error trace is not lost to a restart.
def test_shutdown_decides_what_waits(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"tail_sampling": dict(TAIL_SAMPLING, decision_wait="60s")}
    config["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling"]
    trailhead = start_trailhead(config)
    traces = make_traces(40, seed=3)
    post_all(trailhead.url("otlp (http)"), requests_of(traces))
    time.sleep(0.5)
    assert sink.items("traces") == 0  # held for decision_wait
    held = trailhead.metric("trailhead_tail_sampling_held_traces", processor="tail_sampling")
    assert held == 40
    assert trailhead.stop() == 0
    assert sink.items("traces") > 0
    assert any("decided now" in str(line.get("message")) for line in trailhead.logs), trailhead.logs[-10:]


# Beyond num_traces and trailhead's max_held_bytes the oldest waiting traces are evicted and
# counted, so memory stays bounded whatever arrives.
def test_bounds_evict_and_count(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"tail_sampling": {"decision_wait": "60s", "num_traces": 30, "max_held_bytes": 20000,
                                              "policies": [{"name": "all", "type": "always_sample"}]}}
    config["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling"]
    trailhead = start_trailhead(config)
    post_all(trailhead.url("otlp (http)"), requests_of(make_traces(100, seed=5)))
    held = trailhead.metric("trailhead_tail_sampling_held_bytes", processor="tail_sampling")
    assert 0 < held <= 20000
    assert trailhead.metric("trailhead_tail_sampling_held_traces", processor="tail_sampling") <= 30
    evicted = sum(trailhead.metric("trailhead_tail_sampling_evicted_traces_total", processor="tail_sampling", reason=r)
                  for r in ("num_traces", "max_held_bytes"))
    assert evicted >= 70
    lost = trailhead.metric("trailhead_tail_sampling_lost_spans_total", processor="tail_sampling", reason="evicted")
    assert lost > 0


# A bad policy is refused at its own line by `trailhead validate`, naming the key.
def test_bad_policy_is_refused_in_place(tmp_path):
    message = validate_policies(tmp_path, """      - name: errors
        type: status_code
        status_code:
          status_codes: [ERROR, BROKEN]
""")
    assert "bad.yaml:12:" in message and "unknown status code `BROKEN`" in message, message


def validate_policies(tmp_path, policies):
    """`trailhead validate` on a config whose tail_sampling has `policies` (YAML lines under
    `policies:`, from line 9): what it printed; it must have refused the config."""
    config = tmp_path / "bad.yaml"
    config.write_text("""receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  tail_sampling:
    policies:
""" + policies + """exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
""")
    checked = subprocess.run([str(BINARY), "validate", "--config", str(config)], capture_output=True, text=True)
    assert checked.returncode != 0
    return checked.stdout + checked.stderr


# What tail_sampling releases goes through the rest of the pipeline (here the built-in
# attributes plugin after it) before the exporters. A reload keeps the running sampler; one
# that changes its settings is refused, since it holds traces waiting for decisions.
def test_releases_run_the_rest_of_the_pipeline_and_survive_reloads(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {
        "tail_sampling": {"decision_wait": "1s", "policies": [TAIL_SAMPLING["policies"][0]]},
        "attributes": {"actions": [{"key": "sampled.by", "value": "trailhead", "action": "insert"}]},
    }
    config["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling", "attributes"]
    trailhead = start_trailhead(config)
    traces = make_traces(60, seed=11)
    errors = {t[0][1]["traceId"] for t in traces if any(s["status"]["code"] == 2 for _, s in t)}
    assert errors
    post_all(trailhead.url("otlp (http)"), requests_of(traces))
    settle(sink, 2.5)
    assert set(kept(sink)) == errors
    assert all(any(a.key == "sampled.by" for a in s.attributes) for s in sink.spans())

    reload = lambda: requests.post(trailhead.url("metrics", "/reload"), timeout=30).json()
    assert reload()["config"] == "unchanged"
    written = yaml.safe_load(trailhead.config_path.read_text())
    written["processors"]["attributes"]["actions"][0]["value"] = "reloaded"
    trailhead.config_path.write_text(yaml.safe_dump(written, sort_keys=False))
    assert reload()["config"] == "applied"
    more = make_traces(60, seed=12)
    more_errors = {t[0][1]["traceId"] for t in more if any(s["status"]["code"] == 2 for _, s in t)}
    post_all(trailhead.url("otlp (http)"), requests_of(more))
    settle(sink, 2.5)
    assert set(kept(sink)) == errors | more_errors
    written["processors"]["tail_sampling"]["decision_wait"] = "2s"
    trailhead.config_path.write_text(yaml.safe_dump(written, sort_keys=False))
    refused = reload()
    assert refused["config"] == "rejected" and "tail_sampling" in refused["error"], refused


# --- A sampling policy as a Wasm plugin (the `sampler` world, wit/sampler) ---

# Absolute: a relative plugin path is read from the config file's folder (TRAILHEAD_BIN may be relative).
SAMPLER = (BINARY.parent.parent / "plugins" / "error-latency-sampler.wasm").resolve()


def plugin_policy(**config):
    return {"name": "custom", "type": "plugin", "plugin": {"path": str(SAMPLER), "config": config}}


def run_pair(tmp_path, start_trailhead, traces, theirs_config, ours_config):
    """Sends `traces` to the collector with `theirs_config` and to trailhead with
    `ours_config` (tail_sampling blocks); what each kept, and the trailhead."""
    with pair(tmp_path, start_trailhead, theirs_config, ours_config) as (both, trailhead):
        for url, sink in both:
            post_all(url, requests_of(traces))
        for _, sink in both:
            settle(sink)
        return kept(both[0][1]), kept(both[1][1]), trailhead


# The example plugin (ERROR span or longer than threshold_ms) keeps exactly what the
# collector's status_code [ERROR] and latency policies keep, trace for trace.
def test_plugin_policy_keeps_what_the_built_in_policies_keep(tmp_path, start_trailhead):
    built_in = dict(TAIL_SAMPLING, policies=[p for p in TAIL_SAMPLING["policies"] if p["name"] in ("errors", "slow")])
    plugin = dict(TAIL_SAMPLING, policies=[plugin_policy(threshold_ms=800)])
    traces = make_traces(400, seed=31)
    theirs, mine, trailhead = run_pair(tmp_path, start_trailhead, traces, built_in, plugin)
    print(f"\nkept by the collector: {len(theirs)} of {len(traces)}; by the plugin policy: {len(mine)}")
    assert 20 < len(theirs) < len(traces) - 20, len(theirs)
    assert mine == theirs, (sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine)))
    sampled = trailhead.metric("trailhead_tail_sampling_policy_decisions_total", processor="tail_sampling",
                               policy="custom", decision="sampled")
    assert sampled == len(theirs)


# A plugin that traps decides not_sampled for that trace, the failure is counted in the log,
# and trailhead keeps running and deciding the next traces on a rebuilt instance.
def test_trapping_plugin_is_not_sampled_and_counted(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"tail_sampling": {"decision_wait": "1s", "policies": [
        plugin_policy(threshold_ms=800, panic_on_span_named="op3")]}}
    config["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling"]
    trailhead = start_trailhead(config)
    traces = make_traces(200, seed=41)
    trapping = {t[0][1]["traceId"] for t in traces if any(s["name"] == "op3" for _, s in t)}
    errors = {t[0][1]["traceId"] for t in traces if any(s["status"]["code"] == 2 for _, s in t)}
    assert trapping and errors - trapping
    post_all(trailhead.url("otlp (http)"), requests_of(traces))
    settle(sink, 3.0)
    got = set(kept(sink))
    assert not got & trapping
    assert errors - trapping <= got
    failures = [line for line in trailhead.logs if "sampling plugin failed" in str(line.get("message"))]
    assert len(failures) == len(trapping), failures[:3]
    assert max(int(line.get("errors_total", 0)) for line in failures) >= len(trapping)
    assert requests.get(trailhead.url("metrics", "/metrics"), timeout=5).ok


# A plugin path that does not exist is refused by `trailhead validate` at the policy's line.
def test_bad_plugin_path_is_refused_in_place(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("""receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
processors:
  tail_sampling:
    policies:
      - name: custom
        type: plugin
        plugin:
          path: /nonexistent/sampler.wasm
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
""")
    checked = subprocess.run([str(BINARY), "validate", "--config", str(config)], capture_output=True, text=True)
    assert checked.returncode != 0
    message = checked.stdout + checked.stderr
    assert "bad.yaml:12:" in message and "cannot read plugin" in message, message


# --- ottl_condition, run natively on trailhead-ottl ---

def ottl(name, error_mode=None, **contexts):
    settings = dict(contexts)
    if error_mode:
        settings["error_mode"] = error_mode
    return {"name": name, "type": "ottl_condition", "ottl_condition": settings}


# 100 / level fails where a span has no env.level (nil is not a number), so these conditions
# error on most spans: what the error does is the collector's error_mode.
OTTL_ERRORS = [
    ottl("level-ignore", "ignore", span=['100 / attributes["env.level"] > 50']),
    {"name": "level-not", "type": "not", "not": {"not_sub_policy":
        ottl("level-low", "propagate", span=['100 / attributes["env.level"] < 50'])}},
    # A composite stops at a failing sub-policy; were the error read as "not sampled", the
    # second (every trace has an op0) would sample nearly everything.
    {"name": "level-first", "type": "composite", "composite": {
        "max_total_spans_per_second": 1000000,
        "composite_sub_policy": [ottl("level-high", "propagate", span=['100 / attributes["env.level"] > 50']),
                                 ottl("op0", span=['name == "op0"'])]}},
]
OTTL_POLICIES = [
    ottl("5xx", span=['attributes["http.status_code"] >= 500',
                      'status.code == STATUS_CODE_ERROR and resource.attributes["service.name"] == "api"']),
    ottl("slow-root", span=['IsRootSpan() and end_time - start_time > Duration("800ms")']),
    ottl("events", spanevent=['name == "exception" and attributes["exception.type"] == "Timeout"',
                              'span.name == "op2" and spanevent.name == "retry"']),
    {"name": "vip-server", "type": "and", "and": {"and_sub_policy": [
        ottl("vip", span=['IsMatch(attributes["customer"], "^vip-[0-9]+$")']),
        ottl("server", span=["kind == SPAN_KIND_SERVER", 'kind.string == "Consumer"'])]}},
    ottl("state", span=['trace_state["vendor"] == "keep"',
                        'instrumentation_scope.name == "t" and Len(events) > 2 and span.name != "op0"']),
] + OTTL_ERRORS


def with_kinds_and_events(traces, seed):
    """`traces` with each span given a kind and, for one span in four, 1-3 events
    (exception, retry, cache-miss)."""
    rng = random.Random(seed)
    out = []
    for trace in traces:
        spans = []
        for resource, span in trace:
            span = dict(span, kind=rng.choice([1, 2, 3, 5]))
            start = int(span["startTimeUnixNano"])
            span["events"] = [
                {"timeUnixNano": str(start + 1000), "name": name,
                 "attributes": kv({"exception.type": rng.choice(["Timeout", "IOError"])} if name == "exception" else {})}
                for name in rng.sample(["exception", "retry", "cache-miss"], rng.choice([0] * 9 + [1, 2, 3]))]
            spans.append((resource, span))
        out.append(spans)
    return out


# trailhead's ottl_condition keeps the same traces as the collector's: span and spanevent
# conditions over the contexts' paths (resource, scope, kind, status, times, trace_state,
# IsRootSpan, events), inside `and`, `not` and `composite`, and evaluation errors under each
# error_mode, alone ("errors") so no other policy hides their decisions.
@pytest.mark.parametrize("group", ["all", "errors"])
def test_ottl_condition_keeps_what_the_collector_keeps(tmp_path, start_trailhead, group):
    policies = OTTL_POLICIES if group == "all" else OTTL_ERRORS
    config = dict(TAIL_SAMPLING, policies=policies)
    traces = with_kinds_and_events(make_traces(400, seed=53), seed=54)
    theirs, mine, trailhead = run_pair(tmp_path, start_trailhead, traces, config, config)
    print(f"\n{group}: kept by the collector: {len(theirs)} of {len(traces)}; by trailhead: {len(mine)}")
    assert 20 < len(theirs) < len(traces) - 20, len(theirs)
    assert mine == theirs, (sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine)))
    if group == "errors":
        # The composite's op0 fallback was reached only where level-high decided without error.
        op0 = trailhead.metric("trailhead_tail_sampling_policy_decisions_total", processor="tail_sampling",
                               policy="level-first", decision="sampled")
        assert op0 < len(traces) // 2, op0


# A condition reading a path the span context lacks is refused by `trailhead validate` at
# the condition's own line, with the column in the condition.
def test_bad_ottl_condition_is_refused_in_place(tmp_path):
    message = validate_policies(tmp_path, """      - name: slow-checkout
        type: ottl_condition
        ottl_condition:
          span:
            - 'resource.attributes["service.name"] == "checkout"'
            - 'name == "GET" and duration > 5'
""")
    assert "bad.yaml:14:" in message, message
    assert "policies[0].ottl_condition.span[1]: column 19: unknown path `duration` in the span context" in message, message
