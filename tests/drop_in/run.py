#!/usr/bin/env python3
"""The drop-in check: does trailhead take published OpenTelemetry Collector configs unchanged?

For each config in `configs/` (saved verbatim, with its source in a comment header):

1. `trailhead validate --config FILE` on the file as it is: pass or fail, and the first refusal.
2. For a config that validates: trailhead runs it, then gets one OTLP request per signal its
   pipelines accept (traces, metrics, logs), and must answer each with 2xx / OK and stay up.

A published config names fixed ports (0.0.0.0:4317, ${env:MY_POD_IP}:4317...) and remote
backends, so step 2 runs a copy in a temp dir where ONLY listening addresses and exporter
endpoints are rewritten: every listener to 127.0.0.1 and a free port, every exporter endpoint to
a local sink that accepts everything (OTLP/gRPC and HTTP). Nothing else in the copy changes. The
environment variables the configs read (MY_POD_IP, OTEL_COLLECTOR_HOST...) are set as the pod or
compose file would set them, for both steps.

Usage: run.py [--markdown] [--json PATH] [--only SUBSTRING]...
The binary is $TRAILHEAD_BIN, or target/release/trailhead.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import grpc
import requests
import yaml
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIGS = HERE / "configs"
# Absolute, since trailhead runs in the temp dir (`make e2e` gives a relative TRAILHEAD_BIN).
BINARY = Path(os.environ.get("TRAILHEAD_BIN", REPO / "target" / "release" / "trailhead")).resolve()
SIGNALS = ("traces", "metrics", "logs")
HTTP_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics", "logs": "/v1/logs"}


@dataclass
class Result:
    """One config's outcome: what the table and the e2e test read."""
    config: str
    kind: str
    source: str
    validates: bool = False
    runs: bool | None = None  # None: not tried, since it does not validate
    refusal: str = ""  # the first refusal: validate's first problem, or why the run failed
    component: str = ""  # the component or key that refused, for counting
    signals: dict = field(default_factory=dict)  # signal -> "ok" | "n/a (why)" | the failure


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def header(path):
    """The `# source:` and `# kind:` lines above a config."""
    values = {}
    for line in path.read_text().splitlines():
        match = re.match(r"# (source|kind): (.+)", line)
        if match:
            values[match[1]] = match[2].strip()
        elif not line.startswith("#"):
            break
    return values.get("source", ""), values.get("kind", "")


def placeholder(name):
    """A value for an environment variable a config reads and this machine lacks, as the
    deployment would give it: addresses are loopback, ports free ones (listeners move anyway)."""
    if "PORT" in name:
        return str(free_port())
    if name.endswith(("_IP", "_HOST", "HOSTNAME")):
        return "127.0.0.1"
    if "ADDR" in name:
        return f"127.0.0.1:{free_port()}"
    if "NAMESPACE" in name:
        return "default"
    return f"drop-in-{name.lower()}"


def environment(text):
    """This process's environment plus every `${env:NAME}` / `${NAME}` the config reads and the
    environment lacks. RUST_LOG is dropped so the config's own log level applies."""
    env = dict(os.environ)
    env.pop("RUST_LOG", None)
    for name in sorted(set(re.findall(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)", text))):
        env.setdefault(name, placeholder(name))
    return env


class Loader(yaml.SafeLoader):
    """YAML 1.2's core scalars, as the collector (and trailhead) read them: PyYAML's YAML 1.1
    would turn `on`/`yes` into booleans and `1:30` into 90 in the rewritten copy."""


BOOL, INT, FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag not in (BOOL, INT, FLOAT)]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
Loader.add_implicit_resolver(BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
Loader.add_implicit_resolver(INT, re.compile(r"^[-+]?(?:[0-9]+|0x[0-9a-fA-F]+|0o[0-7]+)$"), list("-+0123456789"))
Loader.add_constructor(INT, lambda loader, node: int(
    value := loader.construct_scalar(node), 16 if "x" in value.lower() else 8 if "o" in value.lower() else 10))
Loader.add_implicit_resolver(FLOAT, re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))


class Sinks:
    """Where every rewritten exporter endpoint points: an OTLP/gRPC server answering any method
    with an empty (valid) response, and an HTTP server answering any POST with 200."""

    def __init__(self):
        accept = grpc.unary_unary_rpc_method_handler(lambda request, context: b"")
        handler = type("AcceptAll", (grpc.GenericRpcHandler,), {"service": lambda self, details: accept})()
        self.grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[handler])
        self.grpc_port = self.grpc.add_insecure_port("127.0.0.1:0")
        self.grpc.start()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", self.headers.get("Content-Type") or "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        Thread(target=self.http.serve_forever, daemon=True).start()

    def stop(self):
        self.grpc.stop(0)
        self.http.shutdown()


def kind_of(component_id):
    return component_id.split("/", 1)[0]


def listener():
    return f"127.0.0.1:{free_port()}"


# Jaeger's agent protocols, on UDP.
UDP_PROTOCOLS = ("thrift_compact", "thrift_binary")


def move_receiver(rid, body):
    """A receiver's listeners onto 127.0.0.1 and free ports: {protocol: port} of those moved.
    Only the listening receivers are touched: another receiver's `endpoint` is what it scrapes."""
    moved = {}
    if kind_of(rid) in ("otlp", "jaeger") and isinstance(body, dict):
        protocols = body.get("protocols") or {}
        for name in list(protocols):
            settings = protocols[name] if isinstance(protocols[name], dict) else {}
            settings["endpoint"] = listener()
            protocols[name] = settings
            if name not in UDP_PROTOCOLS:  # a UDP socket cannot be seen listening by connecting
                moved[name] = int(settings["endpoint"].rsplit(":", 1)[1])
    elif kind_of(rid) in ("fluentforward", "fluent_forward"):
        body = body if isinstance(body, dict) else {}
        body["endpoint"] = listener()
        moved["forward"] = int(body["endpoint"].rsplit(":", 1)[1])
    elif kind_of(rid) == "zipkin":
        body = body if isinstance(body, dict) else {}
        body["endpoint"] = listener()
        moved["zipkin"] = int(body["endpoint"].rsplit(":", 1)[1])
    return body, moved


def to_sink(value, sinks, grpc_exporter):
    """An exporter endpoint pointed at a local sink, keeping its scheme and path."""
    match = re.match(r"^(?:(\w+)://)?([^/]*)(/.*)?$", value)
    scheme, path = match[1], match[3] or ""
    port = sinks.grpc_port if grpc_exporter or not scheme else sinks.http.server_port
    return f"{scheme + '://' if scheme else ''}127.0.0.1:{port}{path}"


ENDPOINT_KEYS = ("endpoint", "traces_endpoint", "metrics_endpoint", "logs_endpoint", "url")


def point_exporter(eid, body, sinks):
    """An exporter's endpoints onto the sinks; the Prometheus exporter's endpoint is a listener."""
    if not isinstance(body, dict):
        return body
    if kind_of(eid) == "prometheus":
        body["endpoint"] = listener()
        return body
    grpc_exporter = kind_of(eid) in ("otlp", "otlp_grpc", "loadbalancing")
    for key in ENDPOINT_KEYS:
        if isinstance(body.get(key), str):
            body[key] = to_sink(body[key], sinks, grpc_exporter)
    resolver = body.get("resolver") if kind_of(eid) in ("loadbalancing", "load_balancing") else None
    if isinstance(resolver, dict):
        # The backends a load balancer resolves are its endpoints; k8s and cloud resolvers stay.
        if isinstance(resolver.get("static"), dict):
            resolver["static"]["hostnames"] = [f"127.0.0.1:{sinks.grpc_port}"]
        if isinstance(resolver.get("dns"), dict):
            resolver["dns"]["hostname"] = "127.0.0.1"
            resolver["dns"]["port"] = sinks.grpc_port
    return body


def move_telemetry(service, sinks):
    """trailhead's own listeners and exporters (service.telemetry) onto free ports and the sinks.
    With no metrics address or reader, trailhead would listen on the default 127.0.0.1:8888,
    which two runs at once share: that implicit listener is given a free port too."""
    telemetry = service.setdefault("telemetry", {}) or {}
    service["telemetry"] = telemetry

    def walk(node):
        if isinstance(node, dict):
            prometheus = node.get("prometheus")
            if isinstance(prometheus, dict) and "port" in prometheus:
                prometheus.update(host="127.0.0.1", port=free_port())
            for key, value in node.items():
                if key == "endpoint" and isinstance(value, str):
                    node[key] = to_sink(value, sinks, False)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(telemetry)
    metrics = telemetry.get("metrics")
    if isinstance(metrics, dict) and "address" in metrics:
        metrics["address"] = listener()
    elif not (isinstance(metrics, dict) and "readers" in metrics):
        telemetry["metrics"] = dict(metrics or {}, address=listener())


def rewrite(config, sinks):
    """The copy that runs: listeners moved, exporters pointed at the sinks, nothing else."""
    listeners = {}
    receivers = config.get("receivers") or {}
    for rid in list(receivers):
        receivers[rid], listeners[rid] = move_receiver(rid, receivers[rid])
    exporters = config.get("exporters") or {}
    for eid in list(exporters):
        exporters[eid] = point_exporter(eid, exporters[eid], sinks)
    for body in (config.get("extensions") or {}).values():
        if isinstance(body, dict) and "endpoint" in body:
            body["endpoint"] = listener()
    extensions = config.get("extensions") or {}
    for xid in list(extensions):
        # These listen on a default port when the config names none.
        if kind_of(xid) in ("health_check", "pprof", "zpages") and not extensions[xid]:
            extensions[xid] = {"endpoint": listener()}
    if isinstance(config.get("service"), dict):
        move_telemetry(config["service"], sinks)
    return config, listeners


def resource():
    return resource_pb2.Resource(attributes=[common_pb2.KeyValue(
        key="service.name", value=common_pb2.AnyValue(string_value="drop-in"))])


def request(signal):
    """One small export request of the signal: a span, a gauge point, a log record."""
    now = time.time_ns()
    if signal == "traces":
        span = trace_pb2.Span(trace_id=os.urandom(16), span_id=os.urandom(8), name="drop-in",
                              start_time_unix_nano=now - 1_000_000, end_time_unix_nano=now)
        return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
            resource=resource(), scope_spans=[trace_pb2.ScopeSpans(spans=[span])])])
    if signal == "metrics":
        gauge = metrics_pb2.Metric(name="drop_in", gauge=metrics_pb2.Gauge(
            data_points=[metrics_pb2.NumberDataPoint(time_unix_nano=now, as_int=1)]))
        return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=[metrics_pb2.ResourceMetrics(
            resource=resource(), scope_metrics=[metrics_pb2.ScopeMetrics(metrics=[gauge])])])
    record = logs_pb2.LogRecord(time_unix_nano=now, body=common_pb2.AnyValue(string_value="drop-in"))
    return logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource(), scope_logs=[logs_pb2.ScopeLogs(log_records=[record])])])


STUBS = {"traces": trace_service_pb2_grpc.TraceServiceStub,
         "metrics": metrics_service_pb2_grpc.MetricsServiceStub,
         "logs": logs_service_pb2_grpc.LogsServiceStub}


def zipkin_span():
    now = time.time_ns() // 1000
    return [{"traceId": os.urandom(16).hex(), "id": os.urandom(8).hex(), "name": "drop-in",
             "timestamp": now - 1000, "duration": 1000, "localEndpoint": {"serviceName": "drop-in"}}]


def send(signal, how, port, settings):
    """Sends one request; "ok" or what went wrong."""
    try:
        if how == "grpc":
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                STUBS[signal](channel).Export(request(signal), timeout=10)
            return "ok"
        if how == "zipkin":
            reply = requests.post(f"http://127.0.0.1:{port}/api/v2/spans", json=zipkin_span(), timeout=10)
        else:
            path = settings.get(f"{signal}_url_path") or HTTP_PATHS[signal]
            reply = requests.post(f"http://127.0.0.1:{port}{path}", data=request(signal).SerializeToString(),
                                  headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        return "ok" if 200 <= reply.status_code < 300 else f"HTTP {reply.status_code}: {reason(reply)}"
    except grpc.RpcError as e:
        return f"gRPC {e.code().name}: {e.details()}"
    except requests.RequestException as e:
        return f"{type(e).__name__}: {e}"


def reason(reply):
    """An OTLP/HTTP error body's message: a google.rpc.Status in protobuf, else the text."""
    if "protobuf" in reply.headers.get("Content-Type", ""):
        try:
            return status_pb2.Status.FromString(reply.content).message
        except DecodeError:
            pass
    return reply.text[:120]


def entry_point(signal, config, listeners):
    """Where the signal goes in: the first receiver of its pipelines that takes OTLP/gRPC,
    OTLP/HTTP, or (traces) Zipkin, without an authenticator (this runner has no credentials)."""
    pipelines = (config.get("service") or {}).get("pipelines") or {}
    receivers = [r for name, pipeline in pipelines.items() if kind_of(name) == signal
                 for r in (pipeline or {}).get("receivers") or []]
    for how in ("grpc", "http", "zipkin"):
        for rid in receivers:
            settings = (((config.get("receivers") or {}).get(rid) or {}).get("protocols") or {}).get(how) or {}
            kind = "zipkin" if how == "zipkin" else "otlp"
            if kind_of(rid) == kind and how in listeners.get(rid, {}) and "auth" not in settings \
                    and (how != "zipkin" or signal == "traces"):
                return how, listeners[rid][how], settings
    return None


def signals_of(config):
    pipelines = (config.get("service") or {}).get("pipelines") or {}
    return [s for s in SIGNALS if any(kind_of(name) == s for name in pipelines)]


def component_of(refusal):
    """The component or key a refusal names, for counting: `receiver prometheus`,
    `receivers.otlp.protocols.http.cors`, `extensions.health_check.endpoint`..."""
    text = re.sub(r"^\d+:\d+: ", "", refusal)
    match = re.search(r"unknown (receiver|exporter|extension|processor|connector) type `([^`]+)`", text)
    if match:
        return f"{match[1]} {match[2]}"
    match = re.match(r"([\w./\-\[\]]+): unknown field `([^`]+)`", text)
    if match:
        # The path may end at the field already (`…http.cors: unknown field `cors``).
        return match[1] if match[1].split(".")[-1] == match[2] else f"{match[1]}.{match[2]}"
    match = re.match(r"pipeline `[^`]+`: unknown pipeline type `([^`]+)`", text)
    if match:
        return f"pipeline type {match[1]}"
    # A pipeline naming a component the file does not define: the collector refuses it too.
    match = re.match(r"pipeline `([^`]+)`: references (\w+) `([^`]+)`, which is not defined", text)
    if match:
        return f"pipeline {match[1]}: undefined {match[2]} {match[3]}"
    # A component's own check (`exporter `otlp/jaeger`: tls: tls.insecure_skip_verify is not
    # supported`): its dotted key when the message names one, else the component.
    kinds = r"(receiver|exporter|extension|processor|connector)"
    match = re.match(kinds + r" `([^`]+)`: (?:\w+: )?(\w+(?:\.\w+)+) ", text)
    if match:
        return f"{match[1]}s.{match[2]}.{match[3]}"
    match = re.match(r"(?:pipeline `[^`]+`: )?" + kinds + r" `([^`]+)`", text)
    if match:
        return f"{match[1]} {match[2]}"
    match = re.match(r"([\w./\-\[\]]+): ", text)
    return match[1] if match else ""


def validate(path, env):
    """(valid?, the first problem without the file name)."""
    try:
        done = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True,
                              text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return False, "validate did not finish in 60 s"
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode == 0:
        return True, ""
    first = lines[0] if lines else f"exit code {done.returncode} and no output"
    return False, first.removeprefix(f"{path}:").removeprefix(f"{path.name}:").strip()


def last_error(log):
    """The line of trailhead's log that says why it stopped: the last at error level, else the last."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and str(entry.get("level", "")).upper() == "ERROR":
            error = entry.get("error")
            return f"{entry.get('message', '')}: {error}" if error else entry.get("message") or line
        if entry is None and "error" in line.lower():
            return line
    return lines[-1] if lines else "no log"


def listening(process, ports, timeout=20):
    """Waits until every moved receiver port accepts connections; False if trailhead exits."""
    deadline = time.time() + timeout
    pending = set(ports)
    while pending and time.time() < deadline and process.poll() is None:
        for port in list(pending):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    pending.discard(port)
        time.sleep(0.05)
    if not ports:
        time.sleep(1)
    return not pending and process.poll() is None


def run(path, env, sinks, workdir, result):
    """Starts trailhead on the rewritten copy and sends one request per signal."""
    config, listeners = rewrite(yaml.load(path.read_text(), Loader=Loader), sinks)
    copy = workdir / path.name
    copy.write_text(yaml.dump(config, sort_keys=False, default_flow_style=False))
    log = workdir / (path.stem + ".log")
    with open(log, "w") as out:
        process = subprocess.Popen([str(BINARY), "run", "--config", str(copy)], stdout=out, stderr=subprocess.STDOUT,
                                   env=env, cwd=workdir)
    try:
        ports = [port for moved in listeners.values() for port in moved.values()]
        if not listening(process, ports):
            return f"did not start: {last_error(log)}"
        for signal in signals_of(config):
            entry = entry_point(signal, config, listeners)
            result.signals[signal] = send(signal, *entry) if entry else "n/a: no OTLP or Zipkin receiver feeds it"
        time.sleep(0.5)
        if process.poll() is not None:
            return f"exited (code {process.returncode}) after the requests: {last_error(log)}"
        failed = [f"{s}: {v}" for s, v in result.signals.items() if v != "ok" and not v.startswith("n/a")]
        return failed[0] if failed else ""
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def check(path, sinks, workdir):
    source, kind = header(path)
    result = Result(config=path.name, kind=kind, source=source)
    env = environment(path.read_text())
    result.validates, result.refusal = validate(path, env)
    if result.validates:
        result.refusal = run(path, env, sinks, workdir, result)
        result.runs = not result.refusal
    if result.refusal:
        # A run's failure names the signal whose request failed, or that trailhead did not start.
        result.component = component_of(result.refusal) if not result.validates else \
            "run: " + result.refusal.split(":", 1)[0]
    return result


def yes_no(value):
    return "—" if value is None else ("yes" if value else "no")


def summary(results):
    total = len(results)
    valid = sum(r.validates for r in results)
    runs = sum(bool(r.runs) for r in results)
    gateways = [r for r in results if r.kind == "gateway"]
    return {"configs": total, "validate": valid, "run": runs,
            "validate_rate": round(valid / total, 3) if total else 0.0,
            "run_rate": round(runs / total, 3) if total else 0.0,
            "gateway_configs": len(gateways), "gateway_run": sum(bool(r.runs) for r in gateways)}


def refusal_counts(results):
    counts = {}
    for r in results:
        if r.refusal:
            key = r.component or r.refusal[:60]
            counts[key] = counts.get(key, 0) + 1
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def print_text(results):
    width = max(len(r.config) for r in results)
    print(f"{'config':<{width}}  {'kind':<7}  {'validates':<9}  {'runs':<4}  first refusal")
    for r in results:
        print(f"{r.config:<{width}}  {r.kind:<7}  {yes_no(r.validates):<9}  {yes_no(r.runs):<4}  {r.refusal}")
    s = summary(results)
    print(f"\nvalidate unchanged: {s['validate']}/{s['configs']}; "
          f"validate and run unchanged: {s['run']}/{s['configs']} "
          f"(gateway configs: {s['gateway_run']}/{s['gateway_configs']})")
    print("\nfirst refusals by component or key:")
    for key, count in refusal_counts(results):
        print(f"  {count:3d}  {key}")


def print_markdown(results):
    s = summary(results)
    print(f"Drop-in rate: **{s['run']} of {s['configs']}** published collector configs validate and run unchanged "
          f"({s['validate']} validate; gateway configs: {s['gateway_run']} of {s['gateway_configs']}).\n")
    print("| config | kind | validates | runs | first refusal |")
    print("|---|---|---|---|---|")
    for r in results:
        source = f"[{r.config}]({r.source})" if r.source else r.config
        refusal = r.refusal.replace("|", "\\|").replace("`", "")
        print(f"| {source} | {r.kind} | {yes_no(r.validates)} | {yes_no(r.runs)} | {refusal} |")
    print("\n| first refused by | configs |\n|---|---|")
    for key, count in refusal_counts(results):
        print(f"| `{key}` | {count} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown, for the README")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--only", action="append", default=[], help="only the configs whose name contains this")
    args = parser.parse_args()
    paths = sorted(p for p in CONFIGS.glob("*.yaml") if not args.only or any(o in p.name for o in args.only))
    if not BINARY.exists():
        sys.exit(f"{BINARY} is missing: build it with `cargo build --release -p trailhead`")
    sinks = Sinks()
    try:
        with tempfile.TemporaryDirectory(prefix="drop-in-") as workdir:
            results = [check(path, sinks, Path(workdir)) for path in paths]
    finally:
        sinks.stop()
    (print_markdown if args.markdown else print_text)(results)
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary(results), "results": [asdict(r) for r in results]},
                                              indent=2))


if __name__ == "__main__":
    main()
