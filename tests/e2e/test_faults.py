"""Alloy failing the ways it can, under steady load: down for a minute, then back; slow. Each
test fails if an accepted span is lost or memory runs away. The other faults have their own
files: RESOURCE_EXHAUSTED with RetryInfo and permanent rejection (test_exporter), a stalled
sink (test_backpressure), SIGTERM under load (test_lifecycle), the API server gone
(test_kubernetes), a full disk and kill -9 (test_persistent_queue)."""

import threading
import time

import pytest
import requests
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import Sink, free_port, gateway_config

SPANS = 100


def request(number):
    spans = [trace_pb2.Span(trace_id=number.to_bytes(16, "big"), span_id=(i + 1).to_bytes(8, "big"), name="op")
             for i in range(SPANS)]
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]).SerializeToString()


class SteadyLoad:
    """Posts one request of 100 spans every `interval` seconds from a thread, as a service's SDK
    would (it drops what is refused; the test counts both)."""

    def __init__(self, trailhead, interval):
        self.url = trailhead.url("otlp (http)", "/v1/traces")
        self.interval = interval
        self.accepted, self.refused, self.other = [], 0, []
        self.unreachable = 0  # after a shutdown closed the receivers
        self.peak_rss_kib = 0
        self.trailhead = trailhead
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        number, next_send = 0, time.time()
        session = requests.Session()
        while not self.done.is_set():
            number += 1
            try:
                r = session.post(self.url, data=request(number), headers={"Content-Type": "application/x-protobuf"}, timeout=30)
            except requests.ConnectionError:
                self.unreachable += 1
                time.sleep(self.interval)
                continue
            if r.status_code == 200:
                self.accepted.append(number)
            elif r.status_code == 503 and r.headers.get("Retry-After"):
                self.refused += 1
            else:
                self.other.append((r.status_code, r.text))
            if number % 20 == 0 and self.trailhead.process.poll() is None:
                self.peak_rss_kib = max(self.peak_rss_kib, self.trailhead.rss_kib())
            next_send += self.interval
            time.sleep(max(0.0, next_send - time.time()))

    def stop(self):
        self.done.set()
        self.thread.join(60)


def test_sigterm_under_load(sink, start_trailhead):
    """SIGTERM while 100 requests a second arrive and Alloy is slowish (50 ms per export): the
    receivers close, what was accepted drains, trailhead exits 0, and every accepted span is
    delivered; requests after the close are refused or find no listener, never half-taken."""
    sink.behaviour = lambda signal, request, context: time.sleep(0.05)
    trailhead = start_trailhead(gateway_config(sink.endpoint, batch={"send_batch_size": 2000, "timeout": "100ms"}))
    load = SteadyLoad(trailhead, 0.01)
    time.sleep(3)
    trailhead.process.send_signal(15)
    code = trailhead.process.wait(30)
    time.sleep(0.5)
    load.stop()
    want = len(load.accepted) * SPANS
    print(f"accepted={len(load.accepted)} refused={load.refused} unreachable={load.unreachable} received_spans={sink.items('traces')}")
    assert code == 0
    assert not load.other, load.other[:3]
    assert len(load.accepted) > 100 and load.unreachable + load.refused > 0
    # A request cut off mid-answer by the close may have been delivered without its sender
    # hearing so; every accepted one must be.
    delivered = delivered_requests(sink)
    assert set(load.accepted) <= set(delivered) and set(delivered.values()) == {SPANS}
    assert sink.items("traces") >= want


def delivered_requests(sink):
    """The request numbers (trace ids) that arrived, with how many spans of each."""
    counts = {}
    for span in sink.spans():
        number = int.from_bytes(span.trace_id, "big")
        counts[number] = counts.get(number, 0) + 1
    return counts


# 20 requests a second; Alloy goes away for 60 s and comes back. The in-memory queue (200
# requests) fills, then trailhead refuses retryably; memory stays bounded. Once Alloy is back,
# every accepted span arrives, within seconds.
@pytest.mark.serial
def test_alloy_down_for_a_minute(start_trailhead):
    port = free_port()
    sink = Sink(port=port)
    config = gateway_config(f"127.0.0.1:{port}", sending_queue={"queue_size": 200},
                            retry_on_failure={"initial_interval": "200ms", "max_interval": "2s", "max_elapsed_time": "600s"})
    trailhead = start_trailhead(config)
    load = SteadyLoad(trailhead, 0.05)
    try:
        time.sleep(3)
        assert sink.items("traces") > 0
        sink.stop()
        before = delivered_requests(sink)
        down_at = time.time()
        time.sleep(60)
        sink = Sink(port=port)
        back_at = time.time()
        backlog = len(load.accepted) * SPANS - sum(before.values())  # accepted while Alloy was away
        sink.wait_for("traces", backlog, timeout=60)
        recovered = time.time() - back_at
        time.sleep(3)
    finally:
        load.stop()
    want = len(load.accepted) * SPANS
    got = sink.wait_for("traces", want - sum(before.values()), timeout=60) + sum(before.values())
    after = delivered_requests(sink)
    sink.stop()
    print(f"accepted={len(load.accepted)} refused={load.refused} received_spans={got} "
          f"peak_rss_kib={load.peak_rss_kib} recovery_s={recovered:.1f} down_s={back_at - down_at:.0f}")
    assert not load.other, load.other[:3]
    assert load.refused > 0  # the queue filled during the outage
    # At least once: a request in flight when Alloy went away may have reached it and be sent
    # again; every accepted request arrives whole, and nothing else does.
    assert got >= want
    assert set(before) | set(after) == set(load.accepted) and set(after.values()) <= {SPANS}
    assert load.peak_rss_kib < 100 * 1024, load.peak_rss_kib


# Alloy takes 300 ms per export with two senders: trailhead takes what it can carry, refuses the
# rest retryably, and delivers everything it accepted; memory stays bounded.
@pytest.mark.serial
def test_alloy_slow(sink, start_trailhead):
    def slow(signal, request, context):
        time.sleep(0.3)
        return None
    sink.behaviour = slow
    config = gateway_config(sink.endpoint, timeout="10s", sending_queue={"num_consumers": 2, "queue_size": 50},
                            batch={"send_batch_size": 500, "timeout": "50ms"})
    trailhead = start_trailhead(config)
    load = SteadyLoad(trailhead, 0.005)
    time.sleep(20)
    load.stop()
    want = len(load.accepted) * SPANS
    got = sink.wait_for("traces", want, timeout=60)
    print(f"accepted={len(load.accepted)} refused={load.refused} received_spans={got} peak_rss_kib={load.peak_rss_kib}")
    assert not load.other, load.other[:3]
    assert load.refused > 0 and len(load.accepted) > 100
    assert got == want
    assert set(delivered_requests(sink).values()) == {SPANS}
    assert load.peak_rss_kib < 100 * 1024, load.peak_rss_kib


def wait_exit(trailhead, timeout=20):
    try:
        return trailhead.process.wait(timeout)
    except Exception:
        raise AssertionError("trailhead kept running with a dead task:\n" + "\n".join(map(str, trailhead.logs[-20:])))


# No half-alive process: when a long-lived task dies (injected through the test-only
# TRAILHEAD_TEST_FAULT switch), trailhead logs which, turns health 503, drains what it
# accepted, and exits non-zero so Kubernetes restarts it.
@pytest.mark.parametrize("task", ["server otlp (http)", "server zipkin", "exporter otlp/sink/traces",
                                  "exporter otlp/sink/logs", "reload poller", "memory limiter"])
def test_a_dead_task_ends_the_process(task, sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"memory_limiter": {"check_interval": "100ms", "limit_mib": 512}}
    config["service"]["pipelines"]["traces"]["processors"] = ["memory_limiter"]
    trailhead = start_trailhead(config, extra_env={"TRAILHEAD_TEST_FAULT": f"{task}@1500"})
    assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=request(1),
                         headers={"Content-Type": "application/x-protobuf"}, timeout=5).status_code == 200
    assert wait_exit(trailhead) == 1
    assert sink.items("traces") == SPANS  # accepted before the fault, drained after it
    stopped = [e for e in trailhead.logs if e.get("message", "").startswith("a long-lived task stopped")]
    assert stopped and stopped[0]["task"] == task and stopped[0]["how"] == "panicked", trailhead.logs[-10:]
    failed = [e for e in trailhead.logs if e.get("message") == "trailhead failed"]
    assert failed and f"task `{task}` panicked" in failed[0]["error"], trailhead.logs[-10:]


# While it drains after such a failure, health answers 503 (here the next hop is down, so the
# drain lasts the whole shutdown_timeout).
def test_health_is_503_while_a_failed_process_drains(start_trailhead):
    config = gateway_config(f"127.0.0.1:{free_port()}", retry_on_failure={"max_elapsed_time": 0})
    config["service"]["shutdown_timeout"] = "4s"
    trailhead = start_trailhead(config, extra_env={"TRAILHEAD_TEST_FAULT": "server zipkin@500"})
    health = trailhead.url("health_check", "/")
    assert requests.get(health, timeout=2).status_code == 200
    assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=request(2),
                         headers={"Content-Type": "application/x-protobuf"}, timeout=5).status_code == 200
    time.sleep(1.5)
    assert requests.get(health, timeout=2).status_code == 503
    assert wait_exit(trailhead) == 1
