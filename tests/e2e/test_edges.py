"""Nothing lost at the edges: a downstream with gRPC's (and Alloy's) default 4 MiB receive limit
gets every span of big requests, split at resource, scope and span boundaries; only a span too
large on its own is dropped, counted and logged; `max_elapsed_time: 0` rides out an outage."""

import copy
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import Sink, free_port, gateway_config

GRPC_DEFAULT_LIMIT = 4 << 20


def request(spans, attribute_bytes, service="checkout"):
    """An export request of `spans` HTTP spans, each with a `url.full` of `attribute_bytes`."""
    message = trace_service_pb2.ExportTraceServiceRequest()
    rs = message.resource_spans.add()
    rs.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value=service))
    ss = rs.scope_spans.add()
    ss.scope.name = "io.opentelemetry.http"
    for i in range(spans):
        span = ss.spans.add(trace_id=bytes(range(16)), span_id=i.to_bytes(8, "big"), name=f"GET /{i}",
                            kind=trace_pb2.Span.SPAN_KIND_SERVER)
        span.attributes.add(key="url.full", value=common_pb2.AnyValue(string_value="https://mathtrail.example/?q=" + "x" * attribute_bytes))
    return message


def plan_config(sink_endpoint, **exporter):
    """The plan's pipeline: no batch settings on the exporter at all."""
    config = gateway_config(sink_endpoint, **exporter)
    del config["exporters"]["otlp/sink"]["batch"]
    return config


def post(trailhead, message):
    response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=message.SerializeToString(),
                             headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    assert response.status_code == 200, response.text


def settle(trailhead, sink, want, timeout=30):
    """Waits until `want` spans reached the sink, or nothing moves any more."""
    deadline = time.time() + timeout
    while time.time() < deadline and sink.items("traces") < want:
        time.sleep(0.1)
    time.sleep(0.5)
    return sink.items("traces")


@pytest.fixture
def limited_sink():
    s = Sink(max_receive=None)
    yield s
    s.stop()


# The case: 20 requests of 500 spans with ~900-byte URLs would merge into one 8.3 MB
# request under the default send_batch_size. Each send stays under the limit; none is lost.
def test_default_batching_fits_a_4_mib_peer(limited_sink, start_trailhead):
    trailhead = start_trailhead(plan_config(limited_sink.endpoint))
    for i in range(20):
        post(trailhead, request(500, 900, service=f"svc{i}"))
    assert settle(trailhead, limited_sink, 10_000) == 10_000
    assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0
    sizes = [r.ByteSize() for r in limited_sink.requests["traces"]]
    assert max(sizes) <= GRPC_DEFAULT_LIMIT and len(sizes) >= 3, sizes
    # The spans arrive whole, each under the resource it was sent with.
    services = {rs.resource.attributes[0].value.string_value: sum(len(ss.spans) for ss in rs.scope_spans)
                for r in limited_sink.requests["traces"] for rs in r.resource_spans}
    assert len(services) == 20


# S8's 5,000-byte attributes at 512 spans a request (2.6 MB each), then one 6 MiB request
# that is larger than the peer's limit alone: all of it arrives, split inside the scope.
def test_big_spans_and_a_6_mib_request_arrive_whole(limited_sink, start_trailhead):
    trailhead = start_trailhead(plan_config(limited_sink.endpoint))
    for _ in range(4):
        post(trailhead, request(512, 5000))
    big = request(1200, 5200)
    assert big.ByteSize() > 6 << 20
    post(trailhead, big)
    want = 4 * 512 + 1200
    assert settle(trailhead, limited_sink, want) == want
    assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0
    names = sorted(s.name for s in limited_sink.spans())
    assert names == sorted([f"GET /{i}" for i in range(512)] * 4 + [f"GET /{i}" for i in range(1200)])


# With the byte bound lifted, the peer's own refusal is what splits: RESOURCE_EXHAUSTED for
# size is split in halves, not dropped. A single 5 MiB span is more than the peer takes at
# all: it alone is dropped, counted, and logged with its size and the peer's limit.
def test_size_refusals_split_and_an_oversized_span_is_dropped(limited_sink, start_trailhead):
    trailhead = start_trailhead(gateway_config(limited_sink.endpoint, batch={"max_request_bytes": 0, "timeout": "200ms"}))
    for _ in range(6):
        post(trailhead, request(500, 2000))
    post(trailhead, request(1, 5 << 20))
    assert settle(trailhead, limited_sink, 3000) == 3000
    deadline = time.time() + 10
    while time.time() < deadline and trailhead.metric("trailhead_exporter_send_failed_items_total") < 1:
        time.sleep(0.1)
    assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 1
    assert trailhead.metric("trailhead_exporter_size_splits_total") >= 1
    dropped = [e for e in trailhead.logs if "too large on its own" in e.get("message", "")]
    assert dropped and "larger than max" in dropped[0]["error"] and "4194304" in dropped[0]["error"], dropped
    assert f"{request(1, 5 << 20).ByteSize()} bytes" in dropped[0]["error"]


# `max_elapsed_time: 0` is the collector's "retry for ever": a 10 s outage loses nothing.
def test_zero_max_elapsed_time_rides_out_an_outage(start_trailhead):
    port = free_port()
    retry = {"retry_on_failure": {"initial_interval": "500ms", "max_interval": "1s", "max_elapsed_time": 0}}
    trailhead = start_trailhead(gateway_config(f"127.0.0.1:{port}", **retry))
    post(trailhead, request(10, 100))
    time.sleep(10)
    assert trailhead.metric("trailhead_exporter_retries_total") >= 5
    sink = Sink(port=port)
    try:
        assert sink.wait_for("traces", 10) == 10, trailhead.logs[-20:]
        assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0
    finally:
        sink.stop()
