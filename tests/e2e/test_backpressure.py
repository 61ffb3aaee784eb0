"""A downstream that stalls makes trailhead refuse (503 + Retry-After, gRPC UNAVAILABLE)
instead of growing memory; once it recovers, everything trailhead accepted arrives."""

import pytest
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import gateway_config

SPANS_PER_REQUEST = 1000


def big_request():
    """~250 KiB: 1000 spans with a few attributes each."""
    attributes = [common_pb2.KeyValue(key=f"attr.{i}", value=common_pb2.AnyValue(string_value="v" * 32)) for i in range(5)]
    spans = [trace_pb2.Span(trace_id=bytes(16), span_id=i.to_bytes(8, "big"), name="op", attributes=attributes)
             for i in range(1, SPANS_PER_REQUEST + 1)]
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])])


# 400 MiB offered against a stalled sink: RSS stays bounded, refusals are retryable and say
# when to retry, and after the sink recovers every accepted span is delivered exactly once.
@pytest.mark.serial
def test_stalled_downstream_refuses_and_loses_nothing(sink, start_trailhead):
    release = threading.Event()

    def stall(signal, request, context):
        release.wait(120)
        return None
    sink.behaviour = stall
    config = gateway_config(sink.endpoint, timeout="120s",
                            sending_queue={"num_consumers": 2, "queue_size": 20},
                            batch={"send_batch_size": SPANS_PER_REQUEST, "timeout": "5ms"})
    trailhead = start_trailhead(config)
    body = big_request().SerializeToString()
    url = trailhead.url("otlp (http)", "/v1/traces")
    statuses = []
    peak_rss = 0

    def post(_):
        response = requests.post(url, data=body, headers={"Content-Type": "application/x-protobuf"}, timeout=30)
        return response.status_code, response.headers.get("Retry-After")

    with ThreadPoolExecutor(4) as pool:
        for status in pool.map(post, range(1600)):
            statuses.append(status)
            if len(statuses) % 100 == 0:
                peak_rss = max(peak_rss, trailhead.rss_kib())
    accepted = sum(1 for s, _ in statuses if s == 200)
    refused = [s for s in statuses if s[0] == 503]
    print(f"accepted={accepted} refused={len(refused)} peak_rss_kib={peak_rss}")
    assert accepted + len(refused) == len(statuses), set(statuses)
    assert refused and all(retry_after == "1" for _, retry_after in refused)
    # The queue holds 20 requests and each sender one batch: ~22 × 250 KiB in flight at most.
    assert accepted <= 30, accepted
    assert peak_rss < 96 * 1024, f"RSS {peak_rss} KiB"

    # gRPC senders are refused the same way, retryably.
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(trailhead.address("otlp (grpc)")))
    try:
        stub.Export(big_request(), timeout=10)
        grpc_code = grpc.StatusCode.OK
    except grpc.RpcError as error:
        grpc_code = error.code()
    assert grpc_code == grpc.StatusCode.UNAVAILABLE
    refused_metric = trailhead.metric("trailhead_receiver_refused_items_total", signal="traces")
    assert refused_metric == (len(refused) + 1) * SPANS_PER_REQUEST

    release.set()
    expected = accepted * SPANS_PER_REQUEST
    assert sink.wait_for("traces", expected, timeout=60) == expected
    time.sleep(0.5)
    assert sink.items("traces") == expected
    assert trailhead.metric("trailhead_receiver_accepted_items_total", signal="traces") == expected
