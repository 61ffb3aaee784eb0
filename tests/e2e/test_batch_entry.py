"""The collector's `batch` processor as a pipeline entry: accepted with its keys, mapped onto the
exporters' own batching (said in one line at start), and every span delivered."""

import subprocess

import requests
import yaml

from conftest import BINARY, gateway_config

def batched_config(sink, **batch):
    """The gateway with `processors: [batch]` on traces, and an exporter with no batch keys of
    its own, so the processor's settings are the ones it batches with."""
    config = gateway_config(sink.endpoint)
    del config["exporters"]["otlp/sink"]["batch"]
    config["processors"] = {"batch": batch}
    config["service"]["pipelines"]["traces"]["processors"] = ["batch"]
    return config


def spans_request(count, start):
    """An OTLP/JSON traces request of `count` spans."""
    spans = [{"traceId": f"{start + i:032x}", "spanId": f"{start + i + 1:016x}", "name": f"s{start + i}",
              "startTimeUnixNano": "1", "endTimeUnixNano": "2"} for i in range(count)]
    return {"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": spans}]}]}


# A collector config with `processors: [batch]` (send_batch_size 1000, timeout 50ms) passes
# `trailhead validate`, runs, logs how the batch processor maps onto the exporter, and delivers
# every span, a remainder on the timer; with send_batch_max_size 1000 no request to the sink holds more than 1000 spans
# (the exporter's own default would merge the 3000 sent at once into larger ones), while
# requests are still merged.
def test_batch_entry_maps_onto_the_exporter(tmp_path, sink, start_trailhead):
    config = batched_config(sink, send_batch_size=1000, send_batch_max_size=1000, timeout="50ms")
    path = tmp_path / "batched.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    validated = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stdout + validated.stderr

    trailhead = start_trailhead(config)
    lines = [e.get("message", "") for e in trailhead.logs if e.get("processor") == "batch"]
    assert lines == [
        "processor batch: batching moves to exporter otlp/sink (send_batch_size 1000 → min_size 1000 items, "
        "timeout 50ms → flush_timeout, send_batch_max_size 1000 → max_size 1000 items; "
        "requests stay under max_request_bytes 3.5 MiB)"
    ], trailhead.logs

    url = trailhead.url("otlp (http)", "/v1/traces")
    for n in range(30):
        response = requests.post(url, json=spans_request(100, n * 100), timeout=5)
        assert response.status_code == 200, response.text
    # A remainder below send_batch_size leaves on the timer.
    response = requests.post(url, json=spans_request(50, 3000), timeout=5)
    assert response.status_code == 200, response.text
    expected = 3050
    assert sink.wait_for("traces", expected) == expected
    sizes = [sum(len(ss.spans) for rs in r.resource_spans for ss in rs.scope_spans) for r in sink.requests["traces"]]
    assert max(sizes) <= 1000, sizes
    assert max(sizes) > 100, f"requests were not merged: {sizes}"


# What the exporters' batching cannot do is refused at validate, naming the key and the
# processor: `metadata_keys` (batching per client), and a send_batch_max_size below
# send_batch_size (the collector's own check and message).
def test_batch_entry_refusals(tmp_path, sink):
    for batch, message in [
        ({"metadata_keys": ["tenant"]}, "processor `batch`: metadata_keys (`tenant`) is not supported"),
        ({"send_batch_size": 100, "send_batch_max_size": 10},
         "processor `batch`: send_batch_max_size must be greater or equal to send_batch_size"),
        ({"send_batch_sise": 100}, "processor `batch`: unknown field `send_batch_sise`"),
    ]:
        path = tmp_path / "refused.yaml"
        path.write_text(yaml.safe_dump(batched_config(sink, **batch), sort_keys=False))
        refused = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
        assert refused.returncode != 0, batch
        assert message in refused.stderr + refused.stdout, refused.stderr


# A reload that changes the batch processor is refused as needing a restart (exporters, and
# so their batching, are built at start), never applied halfway or silently ignored.
def test_batch_change_on_reload_needs_a_restart(sink, start_trailhead):
    config = batched_config(sink, send_batch_size=1000, timeout="50ms")
    trailhead = start_trailhead(config)
    config["processors"]["batch"]["timeout"] = "1s"
    trailhead.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    response = requests.post(trailhead.url("metrics", "/reload"), timeout=10)
    assert response.status_code == 422, response.text
    assert "the exporters' batching" in response.json()["error"], response.text
