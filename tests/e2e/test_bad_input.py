"""Bad input gets its documented status and a message naming what was wrong; trailhead keeps
serving afterwards and nothing reaches the exporter."""

import gzip
import json

import grpc
import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

TRACE_JSON = {"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "ok"}]}]}]}

# (name, server, method, path, headers, body, status, words the message must contain)
CASES = [
    ("garbage protobuf", "otlp (http)", "POST", "/v1/traces", {"Content-Type": "application/x-protobuf"}, b"\xff\xff\xff\xff garbage", 400, "invalid protobuf"),
    ("broken JSON", "otlp (http)", "POST", "/v1/traces", {"Content-Type": "application/json"}, b'{"resourceSpans": [', 400, "line 1"),
    ("JSON of the wrong shape", "otlp (http)", "POST", "/v1/logs", {"Content-Type": "application/json"}, b'{"resourceLogs": 5}', 400, "resourceLogs"),
    ("wrong content type", "otlp (http)", "POST", "/v1/traces", {"Content-Type": "text/plain"}, b"hello", 415, "text/plain"),
    ("missing content type", "otlp (http)", "POST", "/v1/metrics", {}, b"{}", 415, "Content-Type"),
    ("wrong method", "otlp (http)", "GET", "/v1/traces", {}, b"", 405, "POST"),
    ("oversize body", "otlp (http)", "POST", "/v1/traces", {"Content-Type": "application/x-protobuf"}, b"\x0a" * (21 << 20), 413, "limit"),
    ("gzip bomb", "otlp (http)", "POST", "/v1/traces", {"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"}, gzip.compress(b"\x00" * (64 << 20)), 413, "decompressed"),
    ("corrupt gzip", "otlp (http)", "POST", "/v1/traces", {"Content-Type": "application/json", "Content-Encoding": "gzip"}, b"not gzip at all", 400, "gzip"),
    ("unknown encoding", "otlp (http)", "POST", "/v1/traces", {"Content-Type": "application/json", "Content-Encoding": "br"}, b"{}", 400, "br"),
    ("zipkin body not an array", "zipkin", "POST", "/api/v2/spans", {"Content-Type": "application/json"}, b'{"traceId": "1"}', 400, "an array of spans"),
    ("zipkin broken JSON", "zipkin", "POST", "/api/v2/spans", {"Content-Type": "application/json"}, b"[{", 400, "Zipkin v2 JSON"),
    ("zipkin bad trace id", "zipkin", "POST", "/api/v2/spans", {"Content-Type": "application/json"}, b'[{"traceId": "zz", "id": "0000000000000001"}]', 400, "span[0]: traceId"),
    ("zipkin garbage protobuf", "zipkin", "POST", "/api/v2/spans", {"Content-Type": "application/x-protobuf"}, b"\xff\xff\xff", 400, "protobuf"),
    ("zipkin thrift", "zipkin", "POST", "/api/v1/spans", {"Content-Type": "application/x-thrift"}, b"\x00", 415, "thrift"),
    ("zipkin wrong method", "zipkin", "GET", "/api/v2/spans", {}, b"", 405, "POST"),
]


def rpc_status_message(response):
    """The message of the google.rpc.Status body, in whichever encoding came back."""
    if response.headers.get("Content-Type", "").startswith("application/x-protobuf"):
        from google.rpc import status_pb2
        status = status_pb2.Status()
        status.ParseFromString(response.content)
        return status.message
    if response.headers.get("Content-Type", "").startswith("application/json"):
        return json.loads(response.text)["message"]
    return response.text


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_request(case, gateway, sink):
    name, server, method, path, headers, body, status, words = case
    response = requests.request(method, gateway.url(server, path), headers=headers, data=body, timeout=30)
    assert response.status_code == status, response.text
    assert words in rpc_status_message(response), rpc_status_message(response)
    # Still serving, and good data still flows.
    good = requests.post(gateway.url("otlp (http)", "/v1/traces"), json=TRACE_JSON, timeout=5)
    assert good.status_code == 200
    assert sink.wait_for("traces", 1) == 1
    assert gateway.process.poll() is None


# Zero spans is a success that forwards nothing, in every receiver.
def test_zero_items(gateway, sink):
    assert requests.post(gateway.url("zipkin", "/api/v2/spans"), json=[], timeout=5).status_code == 202
    assert requests.post(gateway.url("otlp (http)", "/v1/traces"), json={}, timeout=5).status_code == 200
    assert requests.post(gateway.url("otlp (http)", "/v1/traces"), data=b"", headers={"Content-Type": "application/x-protobuf"}, timeout=5).status_code == 200
    assert gateway.metric("trailhead_exporter_sent_items_total") == 0
    assert sink.requests["traces"] == []


def grpc_stub(gateway):
    channel = grpc.insecure_channel(gateway.address("otlp (grpc)"), options=[("grpc.max_send_message_length", 64 << 20)])
    return trace_service_pb2_grpc.TraceServiceStub(channel)


# gRPC: a message over 4 MiB is RESOURCE_EXHAUSTED; garbage bytes are INVALID_ARGUMENT naming
# where the framing broke.
def test_grpc_limits_and_garbage(gateway, sink):
    stub = grpc_stub(gateway)
    big = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(scope_spans=[
        trace_pb2.ScopeSpans(spans=[trace_pb2.Span(name="x" * 1024) for _ in range(5000)])])])
    with pytest.raises(grpc.RpcError) as error:
        stub.Export(big, timeout=10)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.value

    raw = grpc.insecure_channel(gateway.address("otlp (grpc)")).unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as error:
        raw(b"\x0a\x04\x12\x02\x12\xff", timeout=5)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "resource_spans[0]" in error.value.details(), error.value.details()

    ok = trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(scope_spans=[
        trace_pb2.ScopeSpans(spans=[trace_pb2.Span(name="fine")])])])
    stub.Export(ok, timeout=5)
    assert sink.wait_for("traces", 1) == 1
    assert gateway.metric("trailhead_receiver_malformed_requests_total", signal="traces") == 1
