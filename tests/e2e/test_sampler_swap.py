"""A tail_sampling `plugin` policy swapped live (issue 20): the sampler's file is replaced while
traces flow and trailhead takes the new version without a restart, as it does a processor's.

The policy starts on `error-latency-sampler` (keeps ERROR traces and slow ones), is swapped to
`keep-all-sampler` (keeps every trace) by the file watcher, and then a broken file is refused on
`POST /reload` while the running version keeps deciding. The traces go in as OTLP/JSON over
HTTP (requests) and come out at a real OTLP/gRPC sink (grpcio).
"""

import json
import os
import random
import time

import requests

from conftest import BINARY, gateway_config, kv

PLUGINS = (BINARY.parent.parent / "plugins").resolve()
BASE = 1_700_000_000_000_000_000


def make_traces(count, rng):
    """`count` traces of 1-4 spans, 50 ms long: every other one has an ERROR span."""
    traces = []
    for n in range(count):
        trace_id = rng.randbytes(16).hex()
        spans = []
        for i in range(rng.randint(1, 4)):
            spans.append({"traceId": trace_id, "spanId": rng.randbytes(8).hex(), "name": f"op{i}",
                          "startTimeUnixNano": str(BASE), "endTimeUnixNano": str(BASE + 50_000_000),
                          "status": {"code": 2 if n % 2 and i == 0 else 0}, "attributes": kv({"n": n})})
        traces.append(spans)
    return traces


def post(trailhead, traces):
    body = {"resourceSpans": [{"resource": {"attributes": kv({"service.name": "swap"})},
                               "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]} for spans in traces]}
    response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=body, timeout=10)
    assert response.status_code == 200, response.text


def errors(traces):
    return [t for t in traces if any(s["status"]["code"] == 2 for s in t)]


def span_ids(traces):
    return {s["spanId"] for t in traces for s in t}


def arrived(sink):
    return [s.span_id.hex() for s in sink.spans()]


def wait_for_spans(sink, wanted, timeout=15):
    """Waits until every span in `wanted` reached the sink; returns those that did not."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        missing = wanted - set(arrived(sink))
        if not missing:
            return missing
        time.sleep(0.1)
    return wanted - set(arrived(sink))


def replace_file(path, data):
    """Writes the new version beside the old and renames it over, as a deploy would."""
    staged = path.with_suffix(".new")
    staged.write_bytes(data)
    os.replace(staged, path)


def logged(trailhead, message):
    return [line for line in trailhead.logs if line.get("message") == message]


def wait_logged(trailhead, message, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline and not logged(trailhead, message):
        time.sleep(0.1)
    return logged(trailhead, message)


# Decisions change with the file and no restart, no span is lost across the swap, and a broken
# file is refused with the reason while the running version keeps deciding.
def console_notes(trailhead, key):
    """The notes of component `key` in the console's first snapshot (`/console/events`)."""
    with requests.get(trailhead.url("metrics", "/console/events"), stream=True, timeout=10) as response:
        event = None
        for line in response.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: ") and event == "snapshot":
                return json.loads(line[len("data: "):])["notes"].get(key, [])
    raise AssertionError("the console stream ended before a snapshot")


def test_sampler_swaps_live_and_refuses_a_broken_file(tmp_path, sink, start_trailhead):
    sampler = tmp_path / "sampler.wasm"
    sampler.write_bytes((PLUGINS / "error-latency-sampler.wasm").read_bytes())
    config = gateway_config(sink.endpoint)
    config["processors"] = {"tail_sampling": {"decision_wait": "500ms", "policies": [
        {"name": "custom", "type": "plugin",
         "plugin": {"path": str(sampler), "config": {"threshold_ms": 100}, "limits": {"timeout_ms": 200}}}]}}
    config["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling"]
    trailhead = start_trailhead(config)
    pid = trailhead.process.pid
    rng = random.Random(20)

    # The first version keeps the ERROR traces only.
    first = make_traces(40, rng)
    post(trailhead, first)
    assert not wait_for_spans(sink, span_ids(errors(first)))
    time.sleep(1.5)  # past another decision round: nothing else of `first` may come
    assert sorted(arrived(sink)) == sorted(span_ids(errors(first)))

    # Swapped by the file watcher while traces keep coming: those sent before the swap is
    # logged may be decided by either version; every ERROR trace is kept whole either way.
    during = make_traces(20, rng)
    post(trailhead, during[:10])
    replace_file(sampler, (PLUGINS / "keep-all-sampler.wasm").read_bytes())
    post(trailhead, during[10:])
    swapped = wait_logged(trailhead, "sampling plugin swapped")
    assert swapped and swapped[0]["policy"] == "custom", trailhead.logs[-5:]
    after = make_traces(40, rng)
    post(trailhead, after)
    assert not wait_for_spans(sink, span_ids(after) | span_ids(errors(during)))

    # A broken file: POST /reload says why per policy, and the running version stays.
    replace_file(sampler, b"\0asm not a component")
    answer = requests.post(trailhead.url("metrics", "/reload"), timeout=30).json()
    entry = [p for p in answer["plugins"] if p.get("policy") == "custom"]
    assert len(entry) == 1 and "not a valid component" in entry[0]["error"], answer
    assert entry[0]["processor"] == "tail_sampling"
    last = make_traces(40, rng)
    post(trailhead, last)
    assert not wait_for_spans(sink, span_ids(last))

    # The same process all along; nothing held was lost and no decision failed.
    assert trailhead.process.poll() is None and trailhead.process.pid == pid
    assert logged(trailhead, "sampling plugin's new version refused; the running one keeps deciding")
    assert trailhead.metric("trailhead_tail_sampling_lost_spans_total") == 0
    failures = trailhead.metric("trailhead_tail_sampling_plugin_failures_total", policy="custom")
    assert failures == 0
    assert 'trailhead_tail_sampling_plugin_failures_total{processor="tail_sampling",policy="custom",kind="trap"}' \
        in trailhead.metrics()
    listed = requests.get(trailhead.url("metrics", "/plugins"), timeout=5).json()
    running = [p for p in listed if p.get("policy") == "custom"]
    assert running and running[0]["previous_sha256"], listed
    # The console's swap history shows both, under the processor, naming the policy.
    notes = console_notes(trailhead, "processor/tail_sampling")
    outcomes = [(n["outcome"], n["detail"].split(":")[0]) for n in notes]
    assert ("applied", "policy custom") in outcomes and ("rejected", "policy custom") in outcomes, notes
    sent = span_ids(first + during + after + last)
    got = arrived(sink)
    assert len(got) == len(set(got)), "a span arrived twice"
    assert set(got) <= sent
