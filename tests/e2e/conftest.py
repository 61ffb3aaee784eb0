"""Fixtures for trailhead's end-to-end tests: the trailhead binary on a generated config, and a
real OTLP/gRPC sink (grpcio with the opentelemetry-proto services) standing in for Alloy.

Everything listens on 127.0.0.1 with ports the kernel picks: trailhead reports the addresses it
bound in its JSON logs, and the sink reports its own.
"""

import gzip
import json
import os
import signal
import socket
import subprocess
import threading
import time
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import grpc
import pytest
import requests
import yaml
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("TRAILHEAD_BIN", REPO / "target" / "release" / "trailhead"))


class Sink:
    """An OTLP/gRPC server that records every export request it gets.

    `behaviour` decides each reply: None accepts; a callable gets (signal, request, context) and
    may abort the call or return a response (for partial success)."""

    def __init__(self, credentials=None, port=0, max_receive=64 << 20):
        self.requests = {"traces": [], "metrics": [], "logs": []}
        self.metadata = []
        # Seconds each call had left of its deadline (grpc-timeout) when it arrived.
        self.deadlines = []
        self.behaviour = None
        self.lock = threading.Lock()
        # max_receive=None keeps gRPC's own 4 MiB default, which Alloy's OTLP receiver has too.
        options = [] if max_receive is None else [("grpc.max_receive_message_length", max_receive)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=options)
        sink = self

        def handler(signal_name, response_type):
            def export(self, request, context):
                with sink.lock:
                    sink.metadata.append(dict(context.invocation_metadata()))
                    sink.deadlines.append(context.time_remaining())
                behaviour = sink.behaviour
                if behaviour is not None:
                    response = behaviour(signal_name, request, context)
                    if response is not None:
                        with sink.lock:
                            sink.requests[signal_name].append(request)
                        return response
                with sink.lock:
                    sink.requests[signal_name].append(request)
                return response_type()
            return export

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(
            type("T", (trace_service_pb2_grpc.TraceServiceServicer,), {"Export": handler("traces", trace_service_pb2.ExportTraceServiceResponse)})(), self.server)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(
            type("M", (metrics_service_pb2_grpc.MetricsServiceServicer,), {"Export": handler("metrics", metrics_service_pb2.ExportMetricsServiceResponse)})(), self.server)
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(
            type("L", (logs_service_pb2_grpc.LogsServiceServicer,), {"Export": handler("logs", logs_service_pb2.ExportLogsServiceResponse)})(), self.server)
        if credentials is None:
            self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        else:
            self.port = self.server.add_secure_port(f"127.0.0.1:{port}", credentials)
        self.server.start()

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def items(self, signal_name):
        """Spans, data points or log records received so far."""
        with self.lock:
            return sum(count_items(signal_name, r) for r in self.requests[signal_name])

    def spans(self):
        with self.lock:
            return [s for r in self.requests["traces"] for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def wait_for(self, signal_name, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.items(signal_name) >= count:
                return self.items(signal_name)
            time.sleep(0.05)
        return self.items(signal_name)

    def stop(self):
        self.server.stop(0)


def kv(attributes):
    """A dict as OTLP/JSON attributes: bools, ints (as strings, as OTLP/JSON has int64), floats
    and strings."""
    out = []
    for key, value in attributes.items():
        if isinstance(value, bool):
            out.append({"key": key, "value": {"boolValue": value}})
        elif isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        elif isinstance(value, float):
            out.append({"key": key, "value": {"doubleValue": value}})
        else:
            out.append({"key": key, "value": {"stringValue": value}})
    return out


def free_port():
    """A port nothing listens on now: where a downstream that is down "is"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def count_items(signal_name, request):
    if signal_name == "traces":
        return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    if signal_name == "logs":
        return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    total = 0
    for rm in request.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                total += len(getattr(m, kind).data_points) if kind else 0
    return total


class FakePyroscope:
    """Grafana Pyroscope's two upload calls, recorded and answered 200 as Pyroscope does:
    `POST /ingest` (pyroscope-go: a multipart pprof, the name in the query) and
    `POST /push.v1.PusherService/Push` (the Rust agent: a gzip'd push.v1.PushRequest). Pyroscope
    itself is AGPL-licensed and not built here. Each upload: path, query, headers (case-insensitive) and body (with
    a gzip Content-Encoding undone)."""

    PATHS = {"/ingest", "/push.v1.PusherService/Push"}

    def __init__(self):
        self.uploads = []
        uploads = self.uploads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                url = urlparse(self.path)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                uploads.append({"path": url.path, "query": parse_qs(url.query), "headers": self.headers, "body": body})
                self.send_response(200 if url.path in FakePyroscope.PATHS else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self):
        self.server.shutdown()


class Trailhead:
    """trailhead running on a config; `address(name)` is where a server of it listens."""

    def __init__(self, tmp_path, config, extra_env=None, ready_timeout=20):
        self.config_path = tmp_path / "trailhead.yaml"
        config.setdefault("service", {}).setdefault("telemetry", {})
        config["service"]["telemetry"].setdefault("logs", {"level": "info", "encoding": "json"})
        config["service"]["telemetry"].setdefault("metrics", {"address": "127.0.0.1:0"})
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = dict(os.environ, **(extra_env or {}))
        env.pop("RUST_LOG", None)
        self.process = subprocess.Popen([str(BINARY), "run", "--config", str(self.config_path)],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.logs = []
        self.stdout = []
        self.addresses = {}
        self._ready = threading.Event()
        threading.Thread(target=self._read_logs, daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if not self._ready.wait(ready_timeout):
            self.process.kill()
            raise RuntimeError("trailhead did not start:\n" + "\n".join(map(str, self.logs)))

    def _read_logs(self):
        for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip()
            try:
                entry = json.loads(line)
            except ValueError:
                entry = {"message": line}
            self.logs.append(entry)
            if entry.get("message") == "listening":
                self.addresses[entry["server"]] = entry["address"]
            if entry.get("message") == "trailhead is running":
                self._ready.set()
        self._ready.set()

    def _read_stdout(self):
        for raw in self.process.stdout:
            self.stdout.append(raw.decode(errors="replace"))

    def address(self, name):
        if name not in self.addresses:
            # Say why (it exited, or never listened there) instead of a bare KeyError.
            tail = "\n".join(map(str, self.logs[-20:]))
            raise AssertionError(f"trailhead has no `{name}` server (exit code {self.process.poll()}):\n{tail}")
        return self.addresses[name]

    def url(self, name, path=""):
        return f"http://{self.address(name)}{path}"

    def metrics(self):
        """trailhead's own metrics as {'name{labels}': value}."""
        text = requests.get(self.url("metrics", "/metrics"), timeout=5).text
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, value = line.rsplit(" ", 1)
                values[key] = float(value)
        return values

    def metric(self, name, **labels):
        want = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return sum(v for k, v in self.metrics().items() if k.split("{")[0] == name and want in k)

    def rss_kib(self, field="VmRSS"):
        """Resident memory from /proc/PID/status: all of it, or one part (`RssAnon`: heap and
        stacks, without the binary's file-backed code pages)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        return 0

    def stop(self, timeout=60):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


KUBERNETES = "1.33"
COLLECTOR = Path(os.environ.get("OTELCOL_BIN", REPO / "tests" / "peers" / "bin" / "otelcol-peer"))


def run_collector(config, workdir, http_port, env=None):
    """Starts the collector peer on `config` and waits until its OTLP/HTTP receiver on
    `http_port` answers. The caller terminates the process."""
    if not COLLECTOR.exists():
        pytest.fail(f"{COLLECTOR} is missing: run `make peers`")
    config.setdefault("service", {}).setdefault("telemetry", {"metrics": {"level": "none"}, "logs": {"level": "warn"}})
    path = workdir / "collector.yaml"
    path.write_text(yaml.safe_dump(config))
    log = workdir / "collector.log"
    process = subprocess.Popen([str(COLLECTOR), "--config", str(path)], stdout=subprocess.DEVNULL,
                               stderr=open(log, "w"), env=dict(os.environ, **(env or {})))
    deadline = time.time() + 60
    while True:
        try:
            requests.post(f"http://127.0.0.1:{http_port}/v1/traces", json={}, timeout=1)
            return process
        except requests.ConnectionError:
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                raise RuntimeError("the collector did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.1)


def kubernetes_validate(path):
    """Validates manifests offline against Kubernetes' schemas, refusing unknown fields."""
    checked = subprocess.run([str(REPO / ".venv" / "bin" / "kubernetes-validate"), "-k", KUBERNETES, "--strict", str(path)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def gateway_config(sink_endpoint, **exporter):
    """OTLP (gRPC + HTTP) and Zipkin in, the sink out, all on ports picked at run time."""
    return {
        "receivers": {
            "otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}},
            "zipkin": {"endpoint": "127.0.0.1:0"},
        },
        "exporters": {"otlp/sink": {"endpoint": sink_endpoint, "tls": {"insecure": True},
                                    "batch": {"timeout": "20ms"}, **exporter}},
        "extensions": {"health_check": {"endpoint": "127.0.0.1:0"}},
        "service": {
            "extensions": ["health_check"],
            "pipelines": {
                "traces": {"receivers": ["otlp", "zipkin"], "exporters": ["otlp/sink"]},
                "metrics": {"receivers": ["otlp"], "exporters": ["otlp/sink"]},
                "logs": {"receivers": ["otlp"], "exporters": ["otlp/sink"]},
            },
        },
    }


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.stop()


@pytest.fixture
def start_trailhead(tmp_path):
    started = []

    def start(config, **kwargs):
        t = Trailhead(tmp_path, config, **kwargs)
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()


@pytest.fixture
def gateway(sink, start_trailhead):
    """trailhead forwarding everything to the sink."""
    return start_trailhead(gateway_config(sink.endpoint))


def pytest_configure(config):
    # `make test` runs the suite on two xdist workers, then these alone: their bounds on memory
    # would move with the load of a test running beside them on a 2-core machine.
    config.addinivalue_line("markers", "serial: run alone, after the parallel tests")
