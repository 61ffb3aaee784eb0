"""Wasm processors in running pipelines: enrichment, the failure policy, and hot swap under
load with no restart and no lost span. Needs `make plugins` (target/plugins/)."""

import copy
import hashlib
import os
import shutil
import threading
import time
from pathlib import Path

import requests

from conftest import REPO, gateway_config

PLUGINS = REPO / "target" / "plugins"


def spans_body(n, tag):
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "lessons"}}]},
                               "scopeSpans": [{"spans": [
                                   {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"{tag:08x}{i:08x}", "name": f"s{i}"}
                                   for i in range(n)]}]}]}


def with_processor(sink, processor):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"plugin/under-test": processor}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["plugin/under-test"]
    return config


def resource_attributes(request):
    return {a.key: a.value.string_value for rs in request.resource_spans for a in rs.resource.attributes}


# A resource-only plugin enriches every span's resource; nothing set upstream is overwritten.
def test_resource_stamp_in_a_pipeline(sink, start_trailhead):
    trailhead = start_trailhead(with_processor(sink, {
        "plugin": str(PLUGINS / "resource-stamp.wasm"),
        "attributes": {"deployment.environment": "prod", "service.name": "not-this"}}))
    assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=spans_body(3, 1), timeout=5).status_code == 200
    assert sink.wait_for("traces", 3) == 3
    attributes = resource_attributes(sink.requests["traces"][0])
    assert attributes == {"service.name": "lessons", "deployment.environment": "prod"}
    assert trailhead.metric("trailhead_processor_calls_total", processor="plugin/under-test") >= 1


# TRAILHEAD_WASM_PERFMAP names plugin code for `perf`: the process's /tmp/perf-PID.map lists
# the plugin's functions once it is loaded; without the variable there is no map.
def test_perf_map_names_plugin_code(sink, start_trailhead):
    config = with_processor(sink, {"plugin": str(PLUGINS / "resource-stamp.wasm"), "attributes": {"team": "lessons"}})
    maps = []
    try:
        for env in ({"TRAILHEAD_WASM_PERFMAP": "1"}, {}):
            trailhead = start_trailhead(copy.deepcopy(config), extra_env=env)
            maps.append(Path(f"/tmp/perf-{trailhead.process.pid}.map"))
        named, unnamed = maps
        assert "wasm[0]::function[" in named.read_text()
        assert not unnamed.exists()
    finally:
        for perf_map in maps:
            perf_map.unlink(missing_ok=True)


# on_failure: pass forwards the batch untouched when the plugin fails; drop discards it and
# counts it. Either way trailhead keeps serving and classifies the failure.
def test_failure_policy(sink, start_trailhead):
    passing = start_trailhead(with_processor(sink, {"plugin": str(PLUGINS / "faults.wasm"), "fault": "panic", "on_failure": "pass"}))
    assert requests.post(passing.url("otlp (http)", "/v1/traces"), json=spans_body(4, 2), timeout=5).status_code == 200
    assert sink.wait_for("traces", 4) == 4
    assert all(not s.attributes for s in sink.spans())
    assert passing.metric("trailhead_processor_failures_total", processor="plugin/under-test", kind="panic") == 1
    assert any("panics as asked" in str(e.get("plugin_output")) for e in passing.logs)

    dropping = start_trailhead(with_processor(sink, {"plugin": str(PLUGINS / "faults.wasm"), "fault": "loop", "on_failure": "drop",
                                                     "limits": {"timeout_ms": 50}}))
    assert requests.post(dropping.url("otlp (http)", "/v1/traces"), json=spans_body(5, 3), timeout=5).status_code == 200
    time.sleep(0.5)
    assert sink.items("traces") == 4
    assert dropping.metric("trailhead_processor_failures_total", processor="plugin/under-test", kind="timeout") == 1
    assert dropping.metric("trailhead_processor_dropped_items_total", processor="plugin/under-test") == 5
    assert requests.get(dropping.url("health_check", "/"), timeout=5).status_code == 200


def atomic_copy(source, target):
    staging = target.with_suffix(".staging")
    shutil.copyfile(source, staging)
    os.replace(staging, target)


# Hot swap under load: a steady stream while the plugin file alternates between two versions
# with visibly different behaviour every second, with one corrupt file among them. Every span
# arrives, each changed by exactly one version; the process never restarts; the corrupt file is
# rejected while the previous version keeps serving.
def test_hot_swap_under_load(sink, start_trailhead, tmp_path):
    current = tmp_path / "current.wasm"
    shutil.copyfile(PLUGINS / "resource-stamp.wasm", current)
    # Both versions accept this config: resource-stamp stamps `stamp`, faults tags spans.
    trailhead = start_trailhead(with_processor(sink, {"plugin": str(current), "fault": "none", "attributes": {"stamp": "v1"}}))
    pid = trailhead.process.pid
    sent, stop = [], threading.Event()

    def stream():
        tag = 100
        while not stop.is_set():
            response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=spans_body(10, tag), timeout=5)
            assert response.status_code == 200, response.text
            sent.append(10)
            tag += 1
            time.sleep(0.02)

    sender = threading.Thread(target=stream)
    sender.start()
    versions = [PLUGINS / "faults.wasm", PLUGINS / "resource-stamp.wasm"] * 3
    try:
        for i, version in enumerate(versions):
            time.sleep(1.0)
            if i == 2:
                (tmp_path / "corrupt.wasm").write_bytes(b"\0asm this is not a component")
                atomic_copy(tmp_path / "corrupt.wasm", current)
                time.sleep(1.0)
            atomic_copy(version, current)
        time.sleep(1.5)
    finally:
        stop.set()
        sender.join()
    total = sum(sent)
    assert sink.wait_for("traces", total) == total
    stamped = tagged = 0
    for request in sink.requests["traces"]:
        for rs in request.resource_spans:
            is_stamped = any(a.key == "stamp" for a in rs.resource.attributes)
            for ss in rs.scope_spans:
                for span in ss.spans:
                    is_tagged = any(a.key == "touched" for a in span.attributes)
                    assert is_stamped != is_tagged, "exactly one version ran on each span"
                    stamped += is_stamped
                    tagged += is_tagged
    assert stamped > 0 and tagged > 0
    assert trailhead.process.pid == pid and trailhead.process.poll() is None
    assert trailhead.metric("trailhead_processor_swaps_total", result="rejected") >= 1
    assert trailhead.metric("trailhead_processor_swaps_total", result="applied") >= 5
    listed = requests.get(trailhead.url("metrics", "/plugins"), timeout=5).json()
    assert listed[0]["sha256"] == hashlib.sha256(current.read_bytes()).hexdigest()
    assert listed[0]["name"] == "resource-stamp"


# `trailhead validate` loads each plugin with its config, so a config the plugin rejects is
# reported before anything runs.
def test_validate_loads_plugins(tmp_path, sink):
    import subprocess
    import yaml
    from conftest import BINARY
    config = with_processor(sink, {"plugin": str(PLUGINS / "faults.wasm"), "fault": "explode"})
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "processor `plugin/under-test`" in result.stderr and "unknown fault" in result.stderr, result.stderr


def resource_stamps(sink):
    return [a.value.string_value for r in sink.requests["traces"] for rs in r.resource_spans
            for a in rs.resource.attributes if a.key == "env"]


# A config reload (POST /reload or SIGHUP) rebuilds the processors whose settings changed and
# the pipelines whose processor lists changed, without a restart. A config that does not
# load, or that changes what needs a restart, is refused and the running one keeps serving.
def test_config_reload(sink, start_trailhead):
    import signal
    import yaml
    config = with_processor(sink, {"plugin": str(PLUGINS / "resource-stamp.wasm"), "attributes": {"env": "a"}})
    trailhead = start_trailhead(config)
    pid = trailhead.process.pid
    send = lambda names: requests.post(trailhead.url("otlp (http)", "/v1/traces"), timeout=5, json={"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"{i:016x}", "name": n} for i, n in enumerate(names)]}]}]})

    def rewrite(change):
        written = yaml.safe_load(trailhead.config_path.read_text())
        change(written)
        trailhead.config_path.write_text(yaml.safe_dump(written, sort_keys=False))

    def reload():
        return requests.post(trailhead.url("metrics", "/reload"), timeout=30)

    assert send(["one"]).status_code == 200 and sink.wait_for("traces", 1) == 1
    assert resource_stamps(sink) == ["a"]

    # A processor's settings change: it is rebuilt.
    rewrite(lambda c: c["processors"]["plugin/under-test"]["attributes"].update(env="b"))
    response = reload()
    assert response.status_code == 200 and response.json()["config"] == "applied", response.text
    assert send(["two"]).status_code == 200 and sink.wait_for("traces", 2) == 2
    assert resource_stamps(sink) == ["a", "b"]

    # A pipeline gains a processor (the built-in filter), on SIGHUP.
    def add_filter(c):
        c["processors"]["filter"] = {"traces": {"span": ['name == "drop-me"']}}
        c["service"]["pipelines"]["traces"]["processors"].append("filter")
    rewrite(add_filter)
    trailhead.process.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while trailhead.metric("trailhead_config_reloads_total", result="applied") < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert send(["drop-me", "three"]).status_code == 200 and sink.wait_for("traces", 3) == 3
    time.sleep(0.3)
    assert sorted(s.name for s in sink.spans()) == ["one", "three", "two"]

    # A condition that does not parse: refused, with where; the filter keeps running.
    rewrite(lambda c: c["processors"]["filter"]["traces"].update(span=["name =="]))
    response = reload()
    assert response.status_code == 422 and "traces.span[0]: column 8" in response.json()["error"], response.text
    # Receivers cannot change without a restart: refused, with why.
    rewrite(lambda c: c["processors"]["filter"]["traces"].update(span=['name == "drop-me"']) or c["receivers"]["zipkin"].update(endpoint="127.0.0.1:1"))
    response = reload()
    assert response.status_code == 422 and "need a restart" in response.json()["error"], response.text
    assert send(["drop-me", "four"]).status_code == 200 and sink.wait_for("traces", 4) == 4
    time.sleep(0.3)
    assert sink.items("traces") == 4 and resource_stamps(sink)[-1] == "b"
    assert trailhead.metric("trailhead_config_reloads_total", result="rejected") == 2
    assert trailhead.process.pid == pid and trailhead.process.poll() is None
    listed = sorted(p["id"] for p in requests.get(trailhead.url("metrics", "/plugins"), timeout=5).json())
    assert listed == ["filter", "plugin/under-test"], listed



def spans_request(n, tag):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
    spans = [Span(trace_id=bytes.fromhex("5b8efff798038103d269b633813fc60c"), span_id=bytes.fromhex(f"{tag:08x}{i:08x}"),
                  name=f"s{i}") for i in range(n)]
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])


def post_protobuf(trailhead, request):
    answer = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=request.SerializeToString(),
                           headers={"Content-Type": "application/x-protobuf"}, timeout=5)
    assert answer.status_code == 200, answer.text
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
    return ExportTraceServiceResponse.FromString(answer.content)


# Items dropped after they were accepted (a panicking plugin under on_failure: drop) come back
# to the sender as OTLP partial_success with the count and the reason, over HTTP (protobuf and
# JSON) and gRPC. The Python SDK 1.45 reads that answer as a success and logs nothing (it does
# not look at partial_success); the collector's OTLP exporter logs it (test_collector_interop).
def test_partial_success_tells_the_sender(sink, start_trailhead, caplog):
    import logging

    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    trailhead = start_trailhead(with_processor(sink, {"plugin": str(PLUGINS / "faults.wasm"), "fault": "panic", "on_failure": "drop"}))
    partial = post_protobuf(trailhead, spans_request(10, 1)).partial_success
    assert partial.rejected_spans == 10
    assert "processor `plugin/under-test` failed: panic (on_failure: drop)" in partial.error_message
    answer = requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=spans_body(4, 2), timeout=5)
    assert answer.json()["partialSuccess"]["rejectedSpans"] == "4"
    with grpc.insecure_channel(trailhead.address("otlp (grpc)")) as channel:
        reply = trace_service_pb2_grpc.TraceServiceStub(channel).Export(spans_request(3, 3), timeout=5)
    assert reply.partial_success.rejected_spans == 3

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=trailhead.address("otlp (grpc)"), insecure=True)))
    with caplog.at_level(logging.DEBUG, logger="opentelemetry"):
        provider.get_tracer("t").start_span("dropped by the plugin").end()
        provider.shutdown()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert sink.items("traces") == 0
    assert trailhead.metric("trailhead_processor_dropped_items_total", processor="plugin/under-test") == 18


# A filter's intended drops are not rejections: the answer stays empty.
def test_filtered_items_are_not_rejections(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"filter": {"traces": {"span": ['name == "s0"']}}}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["filter"]
    trailhead = start_trailhead(config)
    assert not post_protobuf(trailhead, spans_request(3, 4)).HasField("partial_success")
    assert sink.wait_for("traces", 2) == 2
