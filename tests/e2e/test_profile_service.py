"""examples/profile-service, the Go service from the plan, built with the Go toolchain and run
against a local trailhead: its OpenTelemetry Go SDK traces and metrics come out of trailhead's
exporter, and pyroscope-go uploads its profiles, whose CPU samples carry the span ids (pprof
labels from otel-profiling-go) of spans the service exported.

Pyroscope's server is AGPL-licensed and not built here; conftest.FakePyroscope stands in."""

import gzip
import json
import re
import shutil
import signal
import subprocess
import threading
import time
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import urlparse

import pytest
import requests
import yaml

from conftest import REPO, FakePyroscope, kubernetes_validate
from test_dashboards import BY, dashboards, metric_names, queries

SERVICE = REPO / "examples" / "profile-service"
GO = shutil.which("go") or "/usr/local/go/bin/go"


def multipart(upload):
    """The named parts of a pyroscope-go /ingest upload."""
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + upload["headers"]["Content-Type"].encode() + b"\r\n\r\n" + upload["body"])
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    tests = subprocess.run(["go", "test", "./..."], cwd=SERVICE, capture_output=True, text=True)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    out = tmp_path_factory.mktemp("go") / "profile-service"
    built = subprocess.run(["go", "build", "-o", str(out), "."], cwd=SERVICE, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return out


def prometheus_names(metric):
    """The series names Mimir stores for an OTLP metric (the OTLP-to-Prometheus translation
    with unit and type suffixes, as Alloy's otelcol.exporter.prometheus and Mimir's OTLP
    endpoint do), with the data points' attribute names as labels."""
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", metric.name)
    unit = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}.get(metric.unit, "")
    if unit and not name.endswith("_" + unit):
        name += "_" + unit
    kind = metric.WhichOneof("data")
    points = getattr(metric, kind).data_points
    labels = {re.sub(r"[^a-zA-Z0-9_]", "_", a.key) for p in points for a in p.attributes}
    if kind == "histogram":
        return {name + "_bucket": labels | {"le"}, name + "_sum": labels, name + "_count": labels}
    if kind == "sum" and metric.sum.is_monotonic:
        return {name + "_total": labels}
    return {name: labels}


def start_service(binary, gateway, pyroscope):
    return subprocess.Popen([str(binary)], stderr=subprocess.PIPE, text=True, env={
        "PATH": "/usr/bin:/bin",
        "LISTEN_ADDR": "127.0.0.1:0",
        "OTEL_SERVICE_NAME": "profile-service",
        "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=mathtrail",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{gateway.address('otlp (grpc)')}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": "300",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "PYROSCOPE_SERVER_ADDRESS": pyroscope.url,
        "PYROSCOPE_UPLOAD_RATE": "1s",
        "POD_NAME": "profile-service-0",
        "POD_NAMESPACE": "mathtrail",
    })


def test_profile_service_reports_through_trailhead(binary, sink, gateway):
    pyroscope = FakePyroscope()
    service = start_service(binary, gateway, pyroscope)
    try:
        line = service.stderr.readline()
        address = re.search(r"listening on (\S+)", line)
        assert address, line
        base = f"http://{address.group(1)}"
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        for session in ("alice", "bob", "carol"):
            assert requests.get(f"{base}/problems/factoring", headers={"X-Session-Id": session, "traceparent": parent}).status_code == 200
        assert requests.post(f"{base}/answers/factoring", json={"question": "factor 12", "answer": "2 2 3"},
                             headers={"X-Session-Id": "alice"}).status_code == 200
        assert requests.post(f"{base}/answers/factoring", data="not json").status_code == 400
        assert requests.get(f"{base}/problems/geometry").status_code == 404

        deadline = time.time() + 30
        while time.time() < deadline and not (
                {"http.server.request.duration", "mathtrail.sessions.active"} <= received_metric_names(sink)
                and len(pyroscope.uploads) >= 2):
            time.sleep(0.2)
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0, service.stderr.read()

    # Traces: server spans named by route, joined to the caller's trace, from the service.
    sink.wait_for("traces", 9)
    spans = sink.spans()
    by_name = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    statuses = {}
    for span in by_name["GET /problems/{topic}"]:
        status = {a.key: a.value.int_value for a in span.attributes}["http.response.status_code"]
        statuses.setdefault(status, []).append(span)
    assert len(statuses[200]) == 3 and len(statuses[404]) == 1 and len(by_name["generate problem"]) == 3
    assert {s.trace_id.hex() for s in statuses[200]} == {"4bf92f3577b34da6a3ce929d0e0e4736"}
    attributes = {a.key: a.value for a in by_name["POST /answers/{topic}"][0].attributes}
    assert attributes["http.route"].string_value == "/answers/{topic}"
    resources = [{a.key: a.value.string_value for a in rs.resource.attributes}
                 for r in sink.requests["traces"] for rs in r.resource_spans]
    assert all(r["service.name"] == "profile-service" and r["service.namespace"] == "mathtrail" for r in resources)

    # Metrics: the session gauge counts distinct sessions per route.
    sessions = latest_points(sink, "mathtrail.sessions.active")
    assert sessions == {"/problems/{topic}": 3, "/answers/{topic}": 1}, sessions

    # Profiles: CPU samples and memory (heap sample types), as gzipped pprof, named after the
    # service and tagged with its pod.
    ingested = [dict(u, parts=multipart(u)) for u in pyroscope.uploads if u["path"] == "/ingest"]
    assert ingested and all(u["query"]["name"][0].startswith("profile-service{") for u in ingested), ingested
    assert all("namespace=mathtrail" in u["query"]["name"][0] and "pod=profile-service-0" in u["query"]["name"][0] for u in ingested)
    assert any(u["query"].get("units") == ["samples"] and u["query"].get("spyName") == ["gospy"] for u in ingested), "no CPU profile"
    heap = [json.loads(u["parts"]["sample_type_config"]) for u in ingested if "sample_type_config" in u["parts"]]
    assert any({"alloc_objects", "inuse_space"} & set(config) for config in heap), heap
    assert all(gzip.decompress(u["parts"]["profile"]) for u in ingested)

    # What the user-activity dashboard queries is what this service sends, by the names and
    # labels Mimir stores it under (job is the service).
    stored = {}
    for metric in received_metrics(sink):
        for name, labels in prometheus_names(metric).items():
            stored.setdefault(name, set()).update(labels | {"job"})
    (board,) = [b for _, _, b in dashboards() if b["uid"] == "mathtrail-user-activity"]
    for expr in queries(board):
        for metric in metric_names(expr):
            assert metric in stored, f"{metric} ({expr!r}) is not among {sorted(stored)}"
            used = {label.strip() for clause in BY.findall(expr) for label in clause.split(",")} | set(re.findall(r"(\w+)=~?\"", expr))
            assert used - {"le"} <= stored[metric], f"{expr!r}: {used - stored[metric]} not labels of {metric}"


def pprof_labels(profile, tmp_path):
    """{label: set of values} on a pprof's samples, as `go tool pprof -tags` reads them."""
    path = tmp_path / "cpu.pb.gz"
    path.write_bytes(profile)
    ran = subprocess.run([GO, "tool", "pprof", "-tags", str(path)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    labels, current = {}, None
    for line in ran.stdout.splitlines():
        if header := re.match(r"\s*(\S+): Total ", line):
            current = labels.setdefault(header.group(1), set())
        elif value := re.match(r"\s*\S+ \(\s*[\d.]+%\): (\S.*)$", line):
            current.add(value.group(1))
    return labels


def cpu_labels(pyroscope, tmp_path):
    labels = {}
    for upload in list(pyroscope.uploads):
        if upload["path"] == "/ingest" and upload["query"].get("units") == ["samples"]:
            for key, values in pprof_labels(multipart(upload)["profile"], tmp_path).items():
                labels.setdefault(key, set()).update(values)
    return labels


# Span profiles: CPU samples taken while a request's span ran are labelled with that span's id,
# name and trace (the local root span's; the request's handler span here), and the span says so
# in pyroscope.profile.id, which Grafana's "Profiles for this span" looks up.
def test_cpu_samples_carry_the_span_ids(binary, sink, gateway, tmp_path):
    pyroscope = FakePyroscope()
    service = start_service(binary, gateway, pyroscope)
    try:
        address = re.search(r"listening on (\S+)", service.stderr.readline())
        assert address
        threading.Thread(target=service.stderr.read, daemon=True).start()
        session = requests.Session()
        # A request takes a few hundred microseconds of CPU and the profiler samples every 10 ms:
        # keep asking until a labelled sample has come (a few seconds here).
        deadline = time.time() + 30
        while time.time() < deadline and "span_id" not in cpu_labels(pyroscope, tmp_path):
            for _ in range(300):
                assert session.get(f"http://{address.group(1)}/problems/factoring").status_code == 200
    finally:
        service.send_signal(signal.SIGTERM)
        assert service.wait(20) == 0
    labels = cpu_labels(pyroscope, tmp_path)
    assert labels.get("span_id"), f"no CPU sample labelled with a span: {labels}"
    spans = {}
    deadline = time.time() + 10
    while time.time() < deadline and not labels["span_id"] <= set(spans):
        spans = {s.span_id.hex(): s for s in sink.spans() if s.name == "GET /problems/{topic}"}
        time.sleep(0.2)
    assert labels["span_id"] <= set(spans), f"{labels['span_id'] - set(spans)} are not spans the service exported"
    assert labels["span_name"] == {"GET /problems/{topic}"}
    assert labels["trace_id"] <= {s.trace_id.hex() for s in spans.values()}
    for span_id, span in spans.items():
        attributes = {a.key: a.value.string_value for a in span.attributes}
        assert attributes["pyroscope.profile.id"] == span_id


def received_metrics(sink):
    with sink.lock:
        return [m for r in sink.requests["metrics"] for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]


def received_metric_names(sink):
    return {m.name for m in received_metrics(sink)}


def latest_points(sink, name):
    latest = {}
    for metric in received_metrics(sink):
        if metric.name == name:
            for point in metric.gauge.data_points:
                route = {a.key: a.value.string_value for a in point.attributes}["http.route"]
                latest[route] = point.as_int
    return latest


def test_deployment_is_valid_and_wired_to_the_stack():
    kubernetes_validate(SERVICE / "deploy.yaml")
    deployment, service = yaml.safe_load_all((SERVICE / "deploy.yaml").read_text())
    dapr = yaml.safe_load((REPO / "deploy" / "stack" / "dapr" / "configuration.yaml").read_text())
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["dapr.io/enabled"] == "true"
    assert annotations["dapr.io/config"] == dapr["metadata"]["name"]
    assert deployment["metadata"]["namespace"] == dapr["metadata"]["namespace"]
    assert annotations["dapr.io/app-port"] == str(deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"])
    # The sidecar's metrics port is the one k8s-monitoring scrapes.
    stack = (REPO / "deploy" / "stack" / "k8s-monitoring.values.yaml").read_text()
    assert annotations["dapr.io/metrics-port"] == "9090" and "9090" in stack
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    trailhead_host = urlparse(dapr["spec"]["tracing"]["zipkin"]["endpointAddress"]).hostname
    assert urlparse(env["OTEL_EXPORTER_OTLP_ENDPOINT"]).netloc == f"{trailhead_host}:4317"
    assert urlparse(env["PYROSCOPE_SERVER_ADDRESS"]).netloc == "pyroscope.monitoring.svc.cluster.local:4040"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
