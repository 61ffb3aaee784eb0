"""The memory limiter (the collector's `memory_limiter` processor, same keys). Above its soft
limit, every receiver feeding a pipeline that lists it refuses new requests retryably
(HTTP 503 + Retry-After, gRPC UNAVAILABLE) before reading them. What was already accepted is
kept and delivered, and once memory is back under the limit, requests are accepted again."""

import pytest
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import requests
import yaml
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc
from opentelemetry.proto.logs.v1 import logs_pb2

from conftest import BINARY, gateway_config
from test_backpressure import SPANS_PER_REQUEST, big_request

MIB = 1024


def limited(config, limiter, pipelines=("traces",)):
    config["processors"] = {"memory_limiter": limiter}
    for name in pipelines:
        config["service"]["pipelines"][name]["processors"] = ["memory_limiter"]
    return config


def post_traces(trailhead, body):
    r = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=body,
                      headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    return r.status_code, r.headers.get("Retry-After"), r.text


# A small limit and a stalled sink: traces pile up in the queue until the heap passes the soft
# limit, then every traces request is refused before it is read, retryably and saying why, over
# HTTP, gRPC and Zipkin alike. The logs pipeline does not list the limiter and keeps accepting.
# Released, the sink gets every accepted span, and requests are accepted again.
def test_over_the_limit_refuses_before_reading(sink, start_trailhead):
    release = threading.Event()
    sink.behaviour = lambda signal, request, context: release.wait(60) and None if signal == "traces" else None
    config = gateway_config(sink.endpoint, timeout="60s", sending_queue={"queue_size": 1000},
                            batch={"send_batch_size": SPANS_PER_REQUEST, "timeout": "5ms"})
    trailhead = start_trailhead(limited(config, {"check_interval": "20ms", "limit_mib": 8, "spike_limit_mib": 2}))
    body = big_request().SerializeToString()
    accepted = 0
    for _ in range(200):
        status, retry_after, text = post_traces(trailhead, body)
        if status != 200:
            break
        accepted += 1
        time.sleep(0.03)  # past a check
    assert status == 503 and retry_after == "1" and "memory limit" in text, (status, text)
    assert 2 <= accepted <= 60, accepted
    zipkin = requests.post(trailhead.url("zipkin", "/api/v2/spans"), json=[], timeout=10)
    assert zipkin.status_code == 503 and "memory limit" in zipkin.text, zipkin.text

    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(trailhead.address("otlp (grpc)")))
    try:
        stub.Export(big_request(), timeout=10)
        raise AssertionError("accepted over the memory limit")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "memory limit" in error.details(), error.details()

    logs = logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        scope_logs=[logs_pb2.ScopeLogs(log_records=[logs_pb2.LogRecord(severity_number=9)])])])
    unlimited = requests.post(trailhead.url("otlp (http)", "/v1/logs"), data=logs.SerializeToString(),
                              headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert unlimited.status_code == 200
    assert sink.wait_for("logs", 1) == 1
    assert trailhead.metric("trailhead_memory_limiter_refused_requests_total") == 3
    assert trailhead.metric("trailhead_memory_limiter_used_bytes") >= 6 * MIB * 1024
    assert any("soft limit" in str(e.get("message")) for e in trailhead.logs)

    release.set()
    assert sink.wait_for("traces", accepted * SPANS_PER_REQUEST, timeout=60) == accepted * SPANS_PER_REQUEST
    deadline = time.time() + 10
    while time.time() < deadline and post_traces(trailhead, body)[0] != 200:
        time.sleep(0.1)
    assert post_traces(trailhead, body)[0] == 200, "still refusing after the queue drained"


# Memory fills while the sink stalls (the queue itself has room): the limiter starts refusing
# near its soft limit and RSS stays under the hard one. Released, the sink gets every span
# trailhead accepted, and once the queue has drained requests are accepted again.
@pytest.mark.serial
def test_fills_refuses_then_recovers(sink, start_trailhead):
    release = threading.Event()
    sink.behaviour = lambda signal, request, context: release.wait(120) and None
    config = gateway_config(sink.endpoint, timeout="120s",
                            sending_queue={"num_consumers": 2, "queue_size": 5000},
                            batch={"send_batch_size": SPANS_PER_REQUEST, "timeout": "5ms"})
    probe = start_trailhead(gateway_config(sink.endpoint))
    idle_mib = probe.rss_kib() // MIB
    probe.stop()
    soft_mib = idle_mib + 40
    trailhead = start_trailhead(limited(config, {"check_interval": "50ms", "limit_mib": soft_mib + 30,
                                                 "spike_limit_mib": 30}))
    body = big_request().SerializeToString()
    peak = 0

    def post(_):
        status, _, text = post_traces(trailhead, body)
        return status, text

    statuses = []
    with ThreadPoolExecutor(4) as pool:
        for status in pool.map(post, range(1200)):
            statuses.append(status)
            peak = max(peak, trailhead.rss_kib())
    accepted = sum(1 for s, _ in statuses if s == 200)
    refused = [text for s, text in statuses if s == 503]
    print(f"idle={idle_mib} MiB soft={soft_mib} MiB accepted={accepted} refused={len(refused)} peak={peak // MIB} MiB")
    assert accepted + len(refused) == len(statuses)
    assert refused and all("memory limit" in text for text in refused), refused[:1]
    # Each accepted request is ~250 KiB queued: refusals begin near the soft limit.
    assert 20 <= accepted <= 400, accepted
    assert peak < (soft_mib + 30) * MIB, f"peak RSS {peak // MIB} MiB"

    release.set()
    expected = accepted * SPANS_PER_REQUEST
    assert sink.wait_for("traces", expected, timeout=60) == expected
    deadline = time.time() + 10
    while time.time() < deadline and post(0)[0] != 200:
        time.sleep(0.1)
    assert post(0)[0] == 200, "still refusing after the queue drained"


# `trailhead validate` names the processor and the mistake.
def test_bad_settings_are_named(tmp_path):
    config = limited(gateway_config("127.0.0.1:4317"), {"limit_mib": 100, "spike_limit_mib": 200})
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    checked = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert checked.returncode == 1
    assert "memory_limiter" in checked.stderr and "must be below the limit" in checked.stderr, checked.stderr
