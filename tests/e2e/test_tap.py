"""`trailhead tap PIPELINE [--before|--after PROCESSOR]`: an operator sees live what a plugin
changes, streamed from the admin endpoint as a JSON line per batch (OTLP/JSON inside)."""

import json
import subprocess
import threading

import requests

from conftest import BINARY, gateway_config

SPANS = {"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b171", "name": "keep"},
    {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b172", "name": "drop-me"}]}]}]}


def start_tap(trailhead, *args):
    process = subprocess.Popen([str(BINARY), "tap", "traces", "--address", trailhead.address("metrics"), "--count", "1", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    header = json.loads(process.stdout.readline())  # the tap is in place once this arrives
    return process, header


def span_names(record):
    return sorted(s["name"] for rs in record["data"]["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"])


def test_tap_shows_what_a_processor_changes(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"filter/noise": {"traces": {"span": ['name == "drop-me"']}}}
    config["service"]["pipelines"]["traces"]["processors"] = ["filter/noise"]
    trailhead = start_trailhead(config)
    taps = {name: start_tap(trailhead, *args) for name, args in
            [("before", ["--before", "filter/noise"]), ("after", ["--after", "filter/noise"]), ("exporters", [])]}
    assert taps["before"][1] == {"pipeline": "traces", "point": "before filter/noise"}
    assert taps["exporters"][1]["point"] == "to the exporters"
    response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5)
    assert response.status_code == 200
    records = {}
    for name, (process, _) in taps.items():
        timer = threading.Timer(20, process.kill)
        timer.start()
        records[name] = json.loads(process.stdout.readline())
        assert process.wait() == 0, process.stderr.read()
        timer.cancel()
    assert span_names(records["before"]) == ["drop-me", "keep"] and records["before"]["items"] == 2
    assert span_names(records["after"]) == ["keep"] and records["after"]["items"] == 1
    assert span_names(records["exporters"]) == ["keep"]
    assert records["after"]["signal"] == "traces" and records["after"]["skipped_before"] == 0
    assert sink.wait_for("traces", 1) == 1


# A point that does not exist is named, with what does.
def test_tap_names_a_wrong_point(sink, start_trailhead):
    trailhead = start_trailhead(gateway_config(sink.endpoint))
    wrong = subprocess.run([str(BINARY), "tap", "traces", "--address", trailhead.address("metrics"), "--before", "k8sattributes"],
                           capture_output=True, text=True, timeout=20)
    assert wrong.returncode == 1
    assert "pipeline `traces` has no processor `k8sattributes`; it runs: []" in wrong.stderr, wrong.stderr
    unknown = subprocess.run([str(BINARY), "tap", "nope", "--address", trailhead.address("metrics")],
                             capture_output=True, text=True, timeout=20)
    assert "no pipeline `nope`; there are: logs, metrics, traces" in unknown.stderr, unknown.stderr
