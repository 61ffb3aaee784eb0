"""The `prometheus` and `prometheusremotewrite` exporters, side by side with the collector's.

The same OTLP metrics (every kind: cumulative and delta sums, gauges, histograms, exponential
histograms, summaries) go into the collector peer (contrib v0.161.0's exporters) and into
trailhead, configured alike:
- `prometheus`: both endpoints are scraped and the families compared (HELP, TYPE, every
  sample line with its labels and value, sorted);
- `prometheusremotewrite`: both write to one scripted receiver, a faithful Remote Write 1.0
  endpoint (Mimir or Prometheus cannot run here): it undoes snappy, decodes prompb's
  WriteRequest with protobuf (the message declared from prometheus' remote.proto/types.proto)
  and answers as the test says. The series each sent (labels, samples, timestamps, native
  histograms) are compared, and its headers checked. Then trailhead alone: 5xx retried and
  delivered, 4xx (429 too, as in the collector) dropped once and counted, requests split
  under `max_batch_size_bytes`.
"""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cramjam
import pytest
import requests
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conftest import free_port, kv, run_collector

NOW = time.time_ns()
START = NOW - 10_000_000_000
RESOURCE = {"service.name": "checkout", "service.namespace": "shop", "service.instance.id": "pod-1",
            "host.name": "node-a", "k8s.pod.name": "checkout-1"}


def point(value, start=START, time_ns=NOW, **attributes):
    key = "asDouble" if isinstance(value, float) else "asInt"
    return {"attributes": kv(attributes), "startTimeUnixNano": str(start), "timeUnixNano": str(time_ns),
            key: value if isinstance(value, float) else str(value)}


def metrics_request():
    """One resource and scope with every kind the exporters translate."""
    histogram = {"attributes": kv({"http.route": "/pay"}), "startTimeUnixNano": str(START), "timeUnixNano": str(NOW),
                 "count": "6", "sum": 12.5, "bucketCounts": ["1", "2", "3"], "explicitBounds": [5.0, 250.0]}
    exponential = {"attributes": kv({"http.route": "/pay"}), "startTimeUnixNano": str(START), "timeUnixNano": str(NOW),
                   "count": "7", "sum": 3.5, "scale": 2, "zeroCount": "1",
                   "positive": {"offset": 0, "bucketCounts": ["1", "2", "0", "0", "0", "0", "3"]}}
    summary = {"attributes": kv({"queue": "a"}), "startTimeUnixNano": str(START), "timeUnixNano": str(NOW),
               "count": "4", "sum": 10.0,
               "quantileValues": [{"quantile": 0.5, "value": 2.0}, {"quantile": 0.99, "value": 4.5}]}
    cumulative, delta = 2, 1
    metrics = [
        {"name": "http.server.requests", "description": "Requests served.", "unit": "1",
         "sum": {"aggregationTemporality": cumulative, "isMonotonic": True,
                 "dataPoints": [point(42, method="GET", code=200), point(3, method="POST", code=500)]}},
        {"name": "process.memory.usage", "description": "Memory in use.", "unit": "By",
         "sum": {"aggregationTemporality": cumulative, "isMonotonic": False, "dataPoints": [point(1048576)]}},
        {"name": "cpu.utilization", "description": "CPU \"busy\" share\nper core.", "unit": "1",
         "gauge": {"dataPoints": [point(0.25, core="0"), point(1234567.5, core="1")]}},
        {"name": "queue.length", "description": "", "unit": "{items}", "gauge": {"dataPoints": [point(7)]}},
        {"name": "http.server.duration", "description": "Latency.", "unit": "ms",
         "histogram": {"aggregationTemporality": cumulative, "dataPoints": [histogram]}},
        {"name": "rpc.latency", "description": "Exponential latency.", "unit": "s",
         "exponentialHistogram": {"aggregationTemporality": cumulative, "dataPoints": [exponential]}},
        {"name": "gc.pause", "description": "GC pauses.", "unit": "s", "summary": {"dataPoints": [summary]}},
        {"name": "jobs.done", "description": "Jobs (delta).", "unit": "",
         "sum": {"aggregationTemporality": delta, "isMonotonic": True, "dataPoints": [point(5)]}},
    ]
    scope = {"name": "shop.instrumentation", "version": "1.2.0", "attributes": kv({"library.kind": "auto"})}
    return {"resourceMetrics": [{"resource": {"attributes": kv(RESOURCE)},
                                 "scopeMetrics": [{"scope": scope, "metrics": metrics}]}]}


def post_metrics(url, body):
    response = requests.post(url, json=body, timeout=5)
    assert response.status_code == 200, response.text


def collector_config(otlp_port, exporter_type, exporter):
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_port}"}}}},
        "exporters": {exporter_type: exporter},
        "service": {"pipelines": {"metrics": {"receivers": ["otlp"], "exporters": [exporter_type]}}},
    }


def trailhead_config(exporter_type, exporter):
    config = collector_config(0, exporter_type, exporter)
    config["receivers"]["otlp"]["protocols"]["http"]["endpoint"] = "127.0.0.1:0"
    return config


@pytest.fixture
def both(tmp_path, start_trailhead):
    """Starts the collector and trailhead with one exporter config each; yields a function
    returning (collector's OTLP/HTTP metrics URL, trailhead's)."""
    processes = []

    def start(exporter_type, collector_exporter, trailhead_exporter):
        otlp_port = free_port()
        processes.append(run_collector(collector_config(otlp_port, exporter_type, collector_exporter), tmp_path, otlp_port))
        trailhead = start_trailhead(trailhead_config(exporter_type, trailhead_exporter))
        return f"http://127.0.0.1:{otlp_port}/v1/metrics", trailhead.url("otlp (http)", "/v1/metrics"), trailhead

    yield start
    for process in processes:
        process.terminate()
        process.wait(10)


def exposition(url):
    """A scrape as (sorted HELP/TYPE lines, sorted samples as (name, sorted labels, value))."""
    text = requests.get(url, timeout=5).text
    meta, samples = [], []
    for line in text.splitlines():
        if line.startswith("#"):
            meta.append(line)
        elif line:
            samples.append(parse_sample(line))
    return sorted(meta), sorted(samples), text


def parse_sample(line):
    name, _, rest = line.partition("{")
    labels = []
    if rest:
        body, _, tail = rest.rpartition("}")
        labels = sorted(split_labels(body))
    else:
        name, _, tail = line.partition(" ")
    fields = tail.split()
    return name, tuple(labels), float(fields[0]), fields[1:]


def split_labels(body):
    labels, i = [], 0
    while i < len(body):
        eq = body.index("=", i)
        j, value = eq + 2, ""
        while body[j] != '"':
            if body[j] == "\\":
                value += body[j:j + 2]
                j += 2
            else:
                value += body[j]
                j += 1
        labels.append((body[i:eq], value))
        i = j + 2 if j + 1 < len(body) and body[j + 1] == "," else j + 1
    return labels


def wait_scrape(url, family):
    deadline = time.time() + 15
    while time.time() < deadline:
        scraped = exposition(url)
        if family in scraped[2]:
            return scraped
        time.sleep(0.1)
    raise AssertionError(f"{family} never appeared at {url}:\n{scraped[2]}")


# The same metrics scrape alike from both: HELP and TYPE lines, every series' labels and value,
# with the default settings; with namespace, const labels, timestamps and resource attributes
# as labels (and `add_metric_suffixes: false`, which the collector ignores); without suffixes
# and scope labels.
@pytest.mark.parametrize("settings", [
    {},
    {"namespace": "edge", "const_labels": {"region": "eu"}, "send_timestamps": True,
     "resource_to_telemetry_conversion": {"enabled": True}, "add_metric_suffixes": False},
    {"translation_strategy": "UnderscoreEscapingWithoutSuffixes", "without_scope_info": True,
     "metric_expiration": "1h"},
])
def test_scrape_matches_the_collector(both, settings):
    collector_port, trailhead_port = free_port(), free_port()
    collector_in, trailhead_in, trailhead = both(
        "prometheus", dict(settings, endpoint=f"127.0.0.1:{collector_port}"),
        dict(settings, endpoint=f"127.0.0.1:{trailhead_port}"))
    body = metrics_request()
    post_metrics(collector_in, body)
    post_metrics(trailhead_in, body)
    family = "gc_pause_seconds" if "translation_strategy" not in settings else "gc_pause"
    theirs = wait_scrape(f"http://127.0.0.1:{collector_port}/metrics", family)
    ours = wait_scrape(f"http://127.0.0.1:{trailhead_port}/metrics", family)
    assert ours[0] == theirs[0], f"\n{ours[2]}\n---- collector ----\n{theirs[2]}"
    assert ours[1] == theirs[1], f"\n{ours[2]}\n---- collector ----\n{theirs[2]}"
    # Not vacuous: every kind is there, the delta counter included.
    assert any(line.startswith("# TYPE") and "histogram" in line for line in ours[0])
    assert len(ours[1]) >= 20


# A delta monotonic sum is added up across adjacent windows, as the collector does.
def test_delta_sums_accumulate_like_the_collector(both):
    collector_port, trailhead_port = free_port(), free_port()
    collector_in, trailhead_in, _ = both("prometheus", {"endpoint": f"127.0.0.1:{collector_port}"},
                                         {"endpoint": f"127.0.0.1:{trailhead_port}"})
    for window in range(3):
        start, end = START + window * 1_000_000_000, START + (window + 1) * 1_000_000_000
        body = {"resourceMetrics": [{"resource": {"attributes": kv({"service.name": "jobs"})}, "scopeMetrics": [
            {"metrics": [{"name": "jobs.done", "sum": {"aggregationTemporality": 1, "isMonotonic": True,
                                                        "dataPoints": [point(5 + window, start=start, time_ns=end)]}}]}]}]}
        post_metrics(collector_in, body)
        post_metrics(trailhead_in, body)
        time.sleep(0.2)  # in order: each window must follow the last one
    theirs = wait_scrape(f"http://127.0.0.1:{collector_port}/metrics", "jobs_done_total")
    ours = wait_scrape(f"http://127.0.0.1:{trailhead_port}/metrics", "jobs_done_total")
    value = lambda scraped: [s[2] for s in scraped[1] if s[0] == "jobs_done_total"]
    assert value(ours) == value(theirs) == [18.0], (ours[2], theirs[2])


# ---- Remote Write ----

def prompb_classes():
    """prompb's WriteRequest as protobuf classes, declared from remote.proto and types.proto."""
    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="prompb_e2e.proto", package="prometheus", syntax="proto3")

    def message(name, *fields):
        m = file.message_type.add(name=name)
        for field_name, number, kind, repeated, type_name in fields:
            f = m.field.add(name=field_name, number=number, type=kind,
                            label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL)
            if type_name:
                f.type_name = ".prometheus." + type_name

    message("WriteRequest", ("timeseries", 1, F.TYPE_MESSAGE, True, "TimeSeries"))
    message("TimeSeries", ("labels", 1, F.TYPE_MESSAGE, True, "Label"), ("samples", 2, F.TYPE_MESSAGE, True, "Sample"),
            ("exemplars", 3, F.TYPE_MESSAGE, True, "Exemplar"), ("histograms", 4, F.TYPE_MESSAGE, True, "Histogram"))
    message("Label", ("name", 1, F.TYPE_STRING, False, None), ("value", 2, F.TYPE_STRING, False, None))
    message("Sample", ("value", 1, F.TYPE_DOUBLE, False, None), ("timestamp", 2, F.TYPE_INT64, False, None))
    message("Exemplar", ("labels", 1, F.TYPE_MESSAGE, True, "Label"), ("value", 2, F.TYPE_DOUBLE, False, None),
            ("timestamp", 3, F.TYPE_INT64, False, None))
    message("BucketSpan", ("offset", 1, F.TYPE_SINT32, False, None), ("length", 2, F.TYPE_UINT32, False, None))
    message("Histogram", ("count_int", 1, F.TYPE_UINT64, False, None), ("sum", 3, F.TYPE_DOUBLE, False, None),
            ("schema", 4, F.TYPE_SINT32, False, None), ("zero_threshold", 5, F.TYPE_DOUBLE, False, None),
            ("zero_count_int", 6, F.TYPE_UINT64, False, None), ("negative_spans", 8, F.TYPE_MESSAGE, True, "BucketSpan"),
            ("negative_deltas", 9, F.TYPE_SINT64, True, None), ("positive_spans", 11, F.TYPE_MESSAGE, True, "BucketSpan"),
            ("positive_deltas", 12, F.TYPE_SINT64, True, None), ("reset_hint", 14, F.TYPE_INT32, False, None),
            ("timestamp", 15, F.TYPE_INT64, False, None))
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest = prompb_classes()


class RemoteWriteReceiver:
    """A Remote Write 1.0 endpoint: each POST's path, headers and decoded WriteRequest are
    kept; `answer(path, call)` gives the status (200 when None)."""

    def __init__(self, answer=None):
        self.requests = []
        self.calls = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    call = receiver.calls[self.path] = receiver.calls.get(self.path, 0) + 1
                status = (answer and answer(self.path, call)) or 200
                if status == 200:
                    raw = bytes(cramjam.snappy.decompress_raw(body))
                    request = WriteRequest.FromString(raw)
                    with receiver.lock:
                        receiver.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                                  "request": request,
                                                  "size": sum(ts.ByteSize() for ts in request.timeseries)})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    def series(self, path):
        """What was delivered to `path`: {sorted labels: (samples, histograms)}."""
        out = {}
        with self.lock:
            delivered = [r["request"] for r in self.requests if r["path"] == path]
        for request in delivered:
            for ts in request.timeseries:
                labels = tuple(sorted((l.name, l.value) for l in ts.labels))
                samples, histograms = out.setdefault(labels, ([], []))
                samples.extend((s.value, s.timestamp) for s in ts.samples)
                histograms.extend(str(h) for h in ts.histograms)
        return out

    def wait(self, path, count=1, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if sum(r["path"] == path for r in self.requests) >= count:
                    return
            time.sleep(0.05)
        raise AssertionError(f"nothing reached {path}: {self.calls}")

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def receiver():
    r = RemoteWriteReceiver()
    yield r
    r.stop()


FAST_RETRY = {"initial_interval": "50ms", "max_interval": "100ms", "max_elapsed_time": "10s"}


# The series both send are the same (names, labels, samples, timestamps, native histograms),
# under the protocol's headers; the delta sum is dropped by both.
@pytest.mark.parametrize("settings", [
    {},
    {"namespace": "edge", "external_labels": {"cluster": "c1"}, "add_metric_suffixes": False,
     "resource_to_telemetry_conversion": {"enabled": True}, "headers": {"X-Scope-OrgID": "tenant-1"}},
])
def test_remote_write_matches_the_collector(both, receiver, settings):
    collector_in, trailhead_in, _ = both(
        "prometheusremotewrite", dict(settings, endpoint=receiver.url("/collector")),
        dict(settings, endpoint=receiver.url("/trailhead")))
    body = metrics_request()
    post_metrics(collector_in, body)
    post_metrics(trailhead_in, body)
    receiver.wait("/collector")
    receiver.wait("/trailhead")
    theirs, ours = receiver.series("/collector"), receiver.series("/trailhead")
    assert sorted(ours) == sorted(theirs), "\n".join(map(str, sorted(set(ours) ^ set(theirs))))
    assert ours == theirs
    names = {dict(labels)["__name__"] for labels in ours}
    assert not any("jobs_done" in name for name in names), names
    assert any(histograms for _, histograms in ours.values())
    sent = next(r["headers"] for r in receiver.requests if r["path"] == "/trailhead")
    assert sent["content-encoding"] == "snappy"
    assert sent["content-type"] == "application/x-protobuf"
    assert sent["x-prometheus-remote-write-version"] == "0.1.0"
    if "headers" in settings:
        assert sent["x-scope-orgid"] == "tenant-1"


def remote_write_only(receiver, path, **settings):
    return trailhead_config("prometheusremotewrite", dict({"endpoint": receiver.url(path)}, **settings))


# 5xx are retried until delivered; 4xx, 429 included (the collector's default), is dropped at
# once and counted as failed.
@pytest.mark.parametrize("refusal", [400, 429])
def test_remote_write_retries_5xx_and_drops_4xx(start_trailhead, refusal):
    answers = {"/flaky": [503, 500, 502], "/bad": [refusal] * 3}
    receiver = RemoteWriteReceiver(lambda path, call: answers[path][call - 1] if call <= 3 else None)
    try:
        for path in answers:
            trailhead = start_trailhead(remote_write_only(receiver, path, retry_on_failure=FAST_RETRY))
            post_metrics(trailhead.url("otlp (http)", "/v1/metrics"), metrics_request())
            if path == "/flaky":
                receiver.wait(path)
                assert receiver.calls[path] == 4
            else:
                deadline = time.time() + 10
                while time.time() < deadline and trailhead.metric("trailhead_exporter_send_failed_items_total") == 0:
                    time.sleep(0.05)
                assert trailhead.metric("trailhead_exporter_send_failed_items_total") > 0
                assert receiver.calls[path] == 1 and not receiver.series(path)
    finally:
        receiver.stop()


# A request over max_batch_size_bytes is cut into several, none lost, each one's series under
# the bound (the collector measures the series, not the request's framing around them).
def test_remote_write_splits_under_max_batch_size(start_trailhead, receiver):
    trailhead = start_trailhead(remote_write_only(receiver, "/split", max_batch_size_bytes=1000))
    points = [point(i, series=str(i)) for i in range(200)]
    body = {"resourceMetrics": [{"resource": {"attributes": kv({"service.name": "s"})}, "scopeMetrics": [
        {"metrics": [{"name": "many", "gauge": {"dataPoints": points}}]}]}]}
    post_metrics(trailhead.url("otlp (http)", "/v1/metrics"), body)
    receiver.wait("/split", count=2)
    deadline = time.time() + 10
    while time.time() < deadline and len(receiver.series("/split")) < 200:
        time.sleep(0.05)
    sizes = [r["size"] for r in receiver.requests if r["path"] == "/split"]
    assert len(receiver.series("/split")) == 200
    assert len(sizes) > 5 and max(sizes) < 1000, sizes
