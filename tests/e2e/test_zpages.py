"""The `zpages` extension (issue 21): the collector's debug pages, served from what trailhead
runs. Each page is fetched with `requests` and must name the component ids the test's own
config wrote, so a page that shows nothing (or another config) fails."""

import subprocess

import requests

from conftest import BINARY, REPO

PAGES = ["servicez", "pipelinez", "extensionz", "featurez", "tracez"]


def zpages_config(sink_endpoint, expvar):
    return {
        "receivers": {
            "otlp/front": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}},
            "zipkin/legacy": {"endpoint": "127.0.0.1:0"},
        },
        "processors": {"batch/small": {"timeout": "10ms"}},
        "exporters": {"otlp/backend": {"endpoint": sink_endpoint, "tls": {"insecure": True}},
                      "debug/quiet": {}},
        "extensions": {"zpages/ops": {"endpoint": "127.0.0.1:0", "expvar": {"enabled": expvar}},
                       "health_check/probe": {"endpoint": "127.0.0.1:0"}},
        "service": {
            "extensions": ["zpages/ops", "health_check/probe"],
            "pipelines": {
                "traces/edge": {"receivers": ["otlp/front", "zipkin/legacy"],
                                "processors": ["batch/small"], "exporters": ["otlp/backend"]},
                "logs/audit": {"receivers": ["otlp/front"], "exporters": ["debug/quiet"]},
            },
        },
    }


def fetch(trailhead, page):
    response = requests.get(trailhead.url("zpages/ops", f"/debug/{page}"), timeout=5)
    assert response.status_code == 200, (page, response.status_code)
    assert response.headers["content-type"].startswith("text/html"), page
    return response.text


def test_pages_show_the_running_config(sink, start_trailhead):
    trailhead = start_trailhead(zpages_config(sink.endpoint, expvar=False))
    pages = {page: fetch(trailhead, page) for page in PAGES}
    pipelinez = pages["pipelinez"]
    for pipeline in ["traces/edge", "logs/audit"]:
        assert f"<td>{pipeline}</td>" in pipelinez, pipelinez
    assert "<td>otlp/front → zipkin/legacy</td><td>batch/small</td><td>otlp/backend</td>" in pipelinez
    assert "<td>otlp/front</td><td></td><td>debug/quiet</td>" in pipelinez
    assert "<td>zpages/ops</td><td>zpages</td>" in pages["extensionz"]
    assert "<td>health_check/probe</td><td>health_check</td>" in pages["extensionz"]
    assert str(trailhead.config_path) in pages["servicez"]
    assert "no feature gates" in pages["featurez"]
    assert "keeps no recent spans" in pages["tracez"]
    # expvarz answers only when enabled, as in the collector.
    off = requests.get(trailhead.url("zpages/ops", "/debug/expvarz"), timeout=5)
    assert off.status_code == 404


def test_expvarz_when_enabled(sink, start_trailhead):
    trailhead = start_trailhead(zpages_config(sink.endpoint, expvar=True))
    expvar = requests.get(trailhead.url("zpages/ops", "/debug/expvarz"), timeout=5).json()
    assert str(trailhead.config_path) in expvar["cmdline"]


def test_corpus_config_with_zpages_validates():
    # Refused before only for `zpages` (its body is `{}`: the collector's defaults).
    config = REPO / "tests" / "drop_in" / "configs" / "21-collector-k8s-agent.yaml"
    checked = subprocess.run([str(BINARY), "validate", "--config", str(config)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_refused_keys_name_the_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("extensions:\n  zpages:\n    endpoint: 127.0.0.1:0\n    tls: {cert_file: x}\n"
                      "receivers:\n  otlp:\n    protocols: {grpc: {endpoint: 127.0.0.1:0}}\n"
                      "exporters:\n  debug:\nservice:\n  extensions: [zpages]\n"
                      "  pipelines:\n    traces: {receivers: [otlp], exporters: [debug]}\n")
    checked = subprocess.run([str(BINARY), "validate", "--config", str(config)],
                             capture_output=True, text=True)
    assert checked.returncode != 0
    assert "zpages" in checked.stderr and "`tls` is not supported" in checked.stderr, checked.stderr
