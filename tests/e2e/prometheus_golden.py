"""Shared by tests/e2e/test_prometheus.py and tests/fixtures/prometheus/regenerate.py: fixed
exposition inputs served over HTTP, the `prometheus` receiver config that scrapes them (one job
per input), and the normalisation that makes two scrapers' OTLP comparable.

What normalisation removes, and why: data point and exemplar `timeUnixNano` (the scrape time),
the value of `scrape_duration_seconds` (how long the scrape took), the port in
`service.instance.id`/`server.port` (picked at run time) and the receiver's own scope
version (the collector's build says "test", trailhead says its own). Order is made canonical (metrics by
name, points by attributes) because the collector builds its output from Go maps, whose order
is random. Everything else, start timestamps from `_created` included, must match."""

import http.server
import json
import threading
from pathlib import Path

from google.protobuf.json_format import MessageToDict

INPUTS = Path(__file__).resolve().parents[1] / "fixtures" / "prometheus" / "inputs"
GOLDENS = INPUTS.parent / "golden"
RECEIVER_SCOPE = "github.com/open-telemetry/opentelemetry-collector-contrib/receiver/prometheusreceiver"
CONTENT_TYPES = {
    ".prom": "text/plain; version=0.0.4; charset=utf-8",
    ".om": "application/openmetrics-text; version=1.0.0; charset=utf-8",
}


def inputs():
    """{job name: (content type, exposition bytes)}, one per input file."""
    return {p.stem: (CONTENT_TYPES[p.suffix], p.read_bytes()) for p in sorted(INPUTS.iterdir())}


class ExpositionServer:
    """Serves each input at /<job name> with its Content-Type, on a port picked now."""

    def __init__(self):
        served = inputs()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                content_type, body = served.get(self.path.strip("/").split("?")[0], (None, None))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


# Besides one job per input: `honored` scrapes text.prom with `honor_labels: true`, and
# `missing` a path that answers 404 (a failed scrape: `up` 0).
EXTRA_JOBS = {"honored": ("/text", True), "missing": ("/missing", False)}


def jobs():
    """Every job's name."""
    return list(inputs()) + list(EXTRA_JOBS)


def receiver_config(port):
    """The prometheus receiver scraping every input every second, with target labels, a
    metric relabeling that drops one metric and one that renames a label."""
    paths = {job: (f"/{job}", False) for job in inputs()} | EXTRA_JOBS
    jobs = []
    for job, (path, honor_labels) in paths.items():
        jobs.append({
            "job_name": job,
            "scrape_interval": "1s",
            "metrics_path": path,
            "honor_labels": honor_labels,
            "static_configs": [{"targets": [f"127.0.0.1:{port}"], "labels": {"team": "core"}}],
            "metric_relabel_configs": [
                {"source_labels": ["__name__"], "regex": "dropped_by_relabel", "action": "drop"},
                {"source_labels": ["room"], "regex": "b", "target_label": "room_kind", "replacement": "second"},
            ],
        })
    return {"config": {"scrape_configs": jobs}}


def first_scrape(requests, job):
    """The first ResourceMetrics of `job` among export requests, normalised; None if none yet."""
    for request in requests:
        for resource_metrics in request.resource_metrics:
            found = MessageToDict(resource_metrics)
            attributes = {a["key"]: a["value"].get("stringValue") for a in found["resource"]["attributes"]}
            if attributes.get("service.name") == job:
                return normalise(found)
    return None


def normalise(resource_metrics):
    for attribute in resource_metrics["resource"]["attributes"]:
        if attribute["key"] in ("server.port", "service.instance.id"):
            attribute["value"] = {"stringValue": "<port>" if attribute["key"] == "server.port" else "127.0.0.1:<port>"}
    resource_metrics["resource"]["attributes"].sort(key=lambda a: a["key"])
    for scope_metrics in resource_metrics.get("scopeMetrics", []):
        if scope_metrics["scope"]["name"] == RECEIVER_SCOPE:
            scope_metrics["scope"].pop("version", None)
        for metric in scope_metrics["metrics"]:
            for kind in ("gauge", "sum", "histogram", "summary"):
                if kind not in metric:
                    continue
                for point in metric[kind]["dataPoints"]:
                    point.pop("timeUnixNano", None)
                    for exemplar in point.get("exemplars", []):
                        exemplar.pop("timeUnixNano", None)
                    point.get("attributes", []).sort(key=lambda a: a["key"])
                    if metric["name"] == "scrape_duration_seconds":
                        point.pop("asDouble", None)
                metric[kind]["dataPoints"].sort(key=lambda p: json.dumps(p.get("attributes", []), sort_keys=True))
        scope_metrics["metrics"].sort(key=lambda m: m["name"])
    resource_metrics.get("scopeMetrics", []).sort(key=lambda s: s["scope"]["name"])
    return resource_metrics
