"""The otlp exporter against a downstream that misbehaves the ways Alloy can: retryable codes
are retried (RESOURCE_EXHAUSTED only with RetryInfo, after the delay it asks for), permanent
errors are counted and not retried, partial success is counted, headers and compression reach
the peer."""

import time

import grpc
import requests
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from conftest import gateway_config

SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"eee19b7ec3c1b17{i}", "name": f"s{i}"} for i in range(3)]}]}]}

FAST_RETRY = {"retry_on_failure": {"initial_interval": "50ms", "max_interval": "100ms", "max_elapsed_time": "10s"}}


def post_spans(trailhead):
    response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5)
    assert response.status_code == 200, response.text


def failing(times, code, retry_delay=None):
    """A sink behaviour failing the first `times` calls with `code`."""
    calls = {"n": 0}

    def behaviour(signal, request, context):
        calls["n"] += 1
        if calls["n"] <= times:
            status = status_pb2.Status(code=code, message="simulated")
            if retry_delay is not None:
                detail = any_pb2.Any()
                detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=0, nanos=int(retry_delay * 1e9))))
                status.details.append(detail)
            context.abort_with_status(rpc_status.to_status(status))
        return None
    behaviour.calls = calls
    return behaviour


def wait_metric(trailhead, name, want, timeout=15, **labels):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if trailhead.metric(name, **labels) >= want:
            break
        time.sleep(0.05)
    return trailhead.metric(name, **labels)


# UNAVAILABLE twice, then success: delivered once, two retries counted.
def test_retries_unavailable(sink, start_trailhead):
    sink.behaviour = failing(2, code_pb2.UNAVAILABLE)
    trailhead = start_trailhead(gateway_config(sink.endpoint, **FAST_RETRY))
    post_spans(trailhead)
    assert sink.wait_for("traces", 3) == 3
    assert trailhead.metric("trailhead_exporter_retries_total", signal="traces") == 2
    assert sink.behaviour.calls["n"] == 3


# RESOURCE_EXHAUSTED with RetryInfo is retried after the delay the peer asked for.
def test_resource_exhausted_with_retry_info(sink, start_trailhead):
    sink.behaviour = failing(1, code_pb2.RESOURCE_EXHAUSTED, retry_delay=0.3)
    trailhead = start_trailhead(gateway_config(sink.endpoint, **FAST_RETRY))
    started = time.time()
    post_spans(trailhead)
    assert sink.wait_for("traces", 3) == 3
    assert time.time() - started >= 0.3


# RESOURCE_EXHAUSTED without RetryInfo, and INVALID_ARGUMENT, are permanent: counted as
# failed, logged, and not retried.
def test_permanent_errors_are_not_retried(sink, start_trailhead):
    sink.behaviour = failing(100, code_pb2.INVALID_ARGUMENT)
    trailhead = start_trailhead(gateway_config(sink.endpoint, **FAST_RETRY))
    post_spans(trailhead)
    assert wait_metric(trailhead, "trailhead_exporter_send_failed_items_total", 3, signal="traces") == 3
    time.sleep(0.3)
    assert sink.behaviour.calls["n"] == 1
    assert trailhead.metric("trailhead_exporter_retries_total") == 0
    assert any("rejected it permanently" in str(entry.get("message")) for entry in trailhead.logs)


# A partial success is a success; the rejected count is recorded.
def test_partial_success_is_counted(sink, start_trailhead):
    def partial(signal, request, context):
        return trace_service_pb2.ExportTraceServiceResponse(
            partial_success=trace_service_pb2.ExportTracePartialSuccess(rejected_spans=1, error_message="span too old"))
    sink.behaviour = partial
    trailhead = start_trailhead(gateway_config(sink.endpoint))
    post_spans(trailhead)
    assert sink.wait_for("traces", 3) == 3
    assert wait_metric(trailhead, "trailhead_exporter_peer_rejected_items_total", 1) == 1
    assert trailhead.metric("trailhead_exporter_sent_items_total", signal="traces") == 2


# Configured headers and the send deadline reach the peer as gRPC metadata, gzip-compressed and
# not (each takes its own path through the exporter). (grpcio has no zstd; the collector interop
# test covers zstd.)
def test_headers_and_compression(sink, start_trailhead):
    for compression in ["gzip", "none"]:
        sink.requests["traces"].clear()
        trailhead = start_trailhead(gateway_config(sink.endpoint, headers={"authorization": "Bearer t0ken", "x-scope-orgid": "mathtrail"},
                                                   compression=compression, timeout="2s"))
        post_spans(trailhead)
        assert sink.wait_for("traces", 3) == 3
        assert sink.metadata[-1]["authorization"] == "Bearer t0ken"
        assert sink.metadata[-1]["x-scope-orgid"] == "mathtrail"
        assert 1.0 < sink.deadlines[-1] <= 2.0, (compression, sink.deadlines[-1])
        trailhead.stop()


# Requests are merged into batches up to send_batch_size.
def test_batching_merges_requests(sink, start_trailhead):
    trailhead = start_trailhead(gateway_config(sink.endpoint, batch={"send_batch_size": 30, "timeout": "5s"}))
    for _ in range(10):
        post_spans(trailhead)
    assert sink.wait_for("traces", 30) == 30
    assert len(sink.requests["traces"]) == 1
