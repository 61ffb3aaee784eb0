"""The persistent sending queue (`extensions: file_storage` + `sending_queue: {storage: …}`, as in
the collector): a request is on disk before its sender gets 200, so it survives `kill -9` and is
sent after the restart; a full disk refuses new requests retryably and loses none it accepted."""

import signal
import subprocess
import time

import pytest
import requests

from conftest import Sink, free_port, gateway_config
from test_backpressure import SPANS_PER_REQUEST, big_request


def persistent(sink_endpoint, directory, **queue):
    config = gateway_config(sink_endpoint,
                            sending_queue={"storage": "file_storage/queue", **queue},
                            retry_on_failure={"initial_interval": "100ms", "max_interval": "500ms", "max_elapsed_time": "300s"},
                            batch={"send_batch_size": SPANS_PER_REQUEST, "timeout": "5ms"})
    config["extensions"]["file_storage/queue"] = {"directory": str(directory), "create_directory": True}
    config["service"]["extensions"].append("file_storage/queue")
    return config


def post(trailhead, body):
    r = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=body,
                      headers={"Content-Type": "application/x-protobuf"}, timeout=30)
    return r.status_code, r.headers.get("Retry-After"), r.text


def span_ids(sink):
    return [s.span_id for s in sink.spans()]


# Alloy is down; trailhead accepts 40 requests onto disk and is killed with SIGKILL. Started
# again with Alloy back, it sends all 40,000 spans, each once, and the queue is empty after.
def test_accepted_data_survives_kill_9(tmp_path, start_trailhead):
    port = free_port()  # Alloy's address, with nothing listening yet
    directory = tmp_path / "queue"
    config = persistent(f"127.0.0.1:{port}", directory)
    first = start_trailhead(config)
    body = big_request().SerializeToString()
    for _ in range(40):
        status, _, text = post(first, body)
        assert status == 200, text
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    assert any(directory.glob("exporter_otlp_sink_traces/*.log"))

    sink = Sink(port=port)
    try:
        second = start_trailhead(config)
        assert sink.wait_for("traces", 40 * SPANS_PER_REQUEST, timeout=60) == 40 * SPANS_PER_REQUEST
        time.sleep(0.5)
        ids = span_ids(sink)
        assert len(ids) == 40 * SPANS_PER_REQUEST  # nothing twice: none of it was delivered before
        assert any("from before the restart" in str(e.get("message")) for e in second.logs)
        deadline = time.time() + 10
        while second.metric("trailhead_exporter_queue_size", exporter="otlp/sink", signal="traces") and time.time() < deadline:
            time.sleep(0.05)
        assert second.metric("trailhead_exporter_queue_size", exporter="otlp/sink", signal="traces") == 0
    finally:
        sink.stop()


# SIGTERM while Alloy is down: what cannot be delivered within the shutdown deadline stays on
# disk, is not counted as dropped, and is delivered by the next start.
def test_sigterm_with_the_peer_down_keeps_the_queue(tmp_path, start_trailhead):
    port = free_port()
    directory = tmp_path / "queue"
    config = persistent(f"127.0.0.1:{port}", directory)
    config["service"]["shutdown_timeout"] = "1s"
    first = start_trailhead(config)
    body = big_request().SerializeToString()
    for _ in range(5):
        assert post(first, body)[0] == 200
    first.stop()
    assert any("kept in the persistent queue" in str(e.get("message")) for e in first.logs), first.logs[-5:]
    sink = Sink(port=port)
    try:
        start_trailhead(config)
        assert sink.wait_for("traces", 5 * SPANS_PER_REQUEST, timeout=30) == 5 * SPANS_PER_REQUEST
    finally:
        sink.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs: a disk that really fills up (the tests run as root, as CI does)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.fail(f"this test fills a real disk and needs to mount a tmpfs (root): {mounted.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


# The disk fills up while Alloy is down: requests are refused with 503 + Retry-After naming the
# full disk, nothing crashes, and memory stays flat. Alloy back, every accepted span arrives, the
# disk space comes back, and new requests are accepted again.
def test_disk_full_refuses_and_loses_nothing(small_disk, start_trailhead):
    port = free_port()
    trailhead = start_trailhead(persistent(f"127.0.0.1:{port}", small_disk))
    body = big_request().SerializeToString()  # ~250 KiB
    accepted, refused = 0, []
    for _ in range(30):
        status, retry_after, text = post(trailhead, body)
        if status == 200:
            accepted += 1
        else:
            refused.append((status, retry_after, text))
    print(f"accepted={accepted} refused={len(refused)} rss_kib={trailhead.rss_kib()}")
    assert 5 <= accepted <= 12, accepted  # 3 MiB / 250 KiB
    assert refused and all(s == 503 and r == "1" for s, r, _ in refused), refused[:2]
    assert "No space left on device" in refused[0][2] and "otlp/sink" in refused[0][2], refused[0][2]
    assert trailhead.process.poll() is None
    assert trailhead.rss_kib() < 64 * 1024

    sink = Sink(port=port)
    try:
        assert sink.wait_for("traces", accepted * SPANS_PER_REQUEST, timeout=60) == accepted * SPANS_PER_REQUEST
        deadline = time.time() + 10
        while post(trailhead, body)[0] != 200:
            assert time.time() < deadline, "the drained queue did not give its disk space back"
            time.sleep(0.1)
        assert sink.wait_for("traces", (accepted + 1) * SPANS_PER_REQUEST) == (accepted + 1) * SPANS_PER_REQUEST
    finally:
        sink.stop()


# A queue with `sizer: bytes` refuses past its size on disk, before the disk itself is full.
def test_queue_size_in_bytes_bounds_the_disk(tmp_path, start_trailhead):
    port = free_port()
    config = persistent(f"127.0.0.1:{port}", tmp_path / "queue", sizer="bytes", queue_size=1 << 20)
    # Nothing listens at the sink: the stop would retry the disk's requests for the default
    # 30 s before leaving them for the next start; this test has no next start to wait for.
    config["service"]["shutdown_timeout"] = "1s"
    trailhead = start_trailhead(config)
    body = big_request().SerializeToString()
    statuses = [post(trailhead, body) for _ in range(8)]
    accepted = sum(1 for s, _, _ in statuses if s == 200)
    assert accepted == (1 << 20) // (len(body) + 12), statuses
    assert "persistent queue is full" in next(t for s, _, t in statuses if s == 503)


# Misconfigured storage is named with its line, before anything starts.
def test_storage_mistakes_are_named(tmp_path, start_trailhead):
    from conftest import BINARY
    import yaml
    config = persistent("127.0.0.1:1", tmp_path / "queue")
    config["service"]["extensions"].remove("file_storage/queue")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    checked = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert checked.returncode != 0
    assert "sending_queue.storage `file_storage/queue` is not listed in service.extensions" in checked.stderr, checked.stderr
    config = gateway_config("127.0.0.1:1", sending_queue={"sizer": "bytes"})
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    checked = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert "sizer `bytes` needs a persistent queue" in checked.stderr, checked.stderr


# What a persistent queue does not cover, said and shown: traces waiting in tail_sampling for a
# decision are in memory only. Killed with SIGKILL before the decision, trailhead loses them
# (none arrive after the restart), and its log said so at start. A sampled trace released
# before the kill is on disk and arrives.
def test_a_crash_loses_traces_waiting_in_tail_sampling_as_the_log_says(tmp_path, start_trailhead):
    port = free_port()
    config = persistent(f"127.0.0.1:{port}", tmp_path / "queue")
    config["processors"] = {"tail_sampling": {"decision_wait": "1s", "policies": [
        {"name": "all", "type": "always_sample"}]}}
    config["service"]["pipelines"]["traces"]["processors"] = ["tail_sampling"]
    first = start_trailhead(config)
    assert any("held in memory only: a crash" in str(e.get("message")) for e in first.logs), first.logs
    early = one_trace(1)
    assert post(first, early)[0] == 200
    deadline = time.time() + 10  # the early traces are decided and on disk
    while first.metric("trailhead_exporter_queue_size", exporter="otlp/sink", signal="traces") == 0 \
            and time.time() < deadline:
        time.sleep(0.1)
    late = one_trace(2)
    assert post(first, late)[0] == 200  # waiting for its decision, a second from now
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)

    sink = Sink(port=port)
    try:
        start_trailhead(config)
        assert sink.wait_for("traces", SPANS_PER_REQUEST, timeout=30) == SPANS_PER_REQUEST
        time.sleep(3)  # past the late traces' decision, had they survived
        assert sink.items("traces") == SPANS_PER_REQUEST
    finally:
        sink.stop()


def one_trace(number):
    """big_request's spans, all in the trace whose ID is `number`."""
    request = big_request()
    for span in request.resource_spans[0].scope_spans[0].spans:
        span.trace_id = number.to_bytes(16, "big")
    return request.SerializeToString()
