"""Operating trailhead: validate, health, metrics, and SIGTERM that drains what it accepted."""

import subprocess
import threading
import time

import requests

from conftest import BINARY, REPO, gateway_config

SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"00000000000000{i:02x}", "name": f"s{i}"} for i in range(1, 11)]}]}]}


# `validate` checks without starting: 0 for a good config, 1 with file:line:column for a bad one.
def test_validate_command(tmp_path):
    # The examples, the original plan's config among them (its k8sattributes is built in).
    for example in sorted((REPO / "config" / "examples").glob("*.yaml")):
        good = subprocess.run([str(BINARY), "validate", "--config", str(example)], capture_output=True, text=True)
        assert good.returncode == 0, good.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("receivers:\n  otlp:\nexporters:\n  debug:\n    verbosity: loud\nservice:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [debug]\n")
    result = subprocess.run([str(BINARY), "validate", "--config", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{bad}:5:16: exporters.debug.verbosity: unknown variant `loud`" in result.stderr, result.stderr


# Health answers 200 while serving; /metrics names every core counter per component.
def test_health_and_metrics(gateway, sink):
    assert requests.get(gateway.url("health_check", "/"), timeout=5).status_code == 200
    requests.post(gateway.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5)
    assert sink.wait_for("traces", 10) == 10
    names = {key.split("{")[0] for key in gateway.metrics()}
    for name in ["trailhead_receiver_accepted_items_total", "trailhead_receiver_refused_items_total",
                 "trailhead_receiver_malformed_requests_total", "trailhead_exporter_sent_items_total",
                 "trailhead_exporter_send_failed_items_total", "trailhead_exporter_queue_size",
                 "trailhead_exporter_queue_capacity", "trailhead_exporter_batch_items_count"]:
        assert name in names, name
    assert gateway.metric("trailhead_exporter_queue_capacity", exporter="otlp/sink", signal="traces") == 1000


# SIGTERM while data waits in the batcher and the sink is slow: health turns 503, the data is
# still delivered, and trailhead exits 0.
def test_sigterm_drains(sink, start_trailhead):
    release = threading.Event()
    sink.behaviour = lambda signal, request, context: release.wait(30) and None
    trailhead = start_trailhead(gateway_config(sink.endpoint, batch={"send_batch_size": 100000, "timeout": "1h"}))
    for _ in range(5):
        assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5).status_code == 200
    trailhead.process.send_signal(15)
    deadline = time.time() + 10
    health = None
    while time.time() < deadline:
        health = requests.get(trailhead.url("health_check", "/"), timeout=5).status_code
        if health == 503:
            break
        time.sleep(0.02)
    assert health == 503
    release.set()
    assert trailhead.process.wait(30) == 0
    assert sink.items("traces") == 50


# A downstream that never answers cannot hold shutdown past its deadline; the loss is reported.
def test_shutdown_deadline(sink, start_trailhead):
    sink.behaviour = lambda signal, request, context: time.sleep(30)
    config = gateway_config(sink.endpoint, timeout="60s")
    config["service"]["shutdown_timeout"] = "1s"
    trailhead = start_trailhead(config)
    requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5)
    time.sleep(0.2)
    started = time.time()
    code = trailhead.stop()
    assert time.time() - started < 10
    assert code == 3
    assert any("shutdown deadline passed" in str(entry.get("message")) for entry in trailhead.logs), trailhead.logs
