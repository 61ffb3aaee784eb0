"""The otlp_http exporter (alias otlphttp) through real parts.

Against the OpenTelemetry Collector (tests/peers): the public OTLP examples go to the
collector's OTLP/HTTP receiver directly and through trailhead's otlp_http exporter, in protobuf
and OTLP/JSON, plain, gzip and zstd; both paths end in the same file exporter, so "delivered
unchanged" is a plain comparison, and the collector's own JSON decoder checks trailhead's JSON.

Against a small scripted HTTP server (a faithful OTLP/HTTP peer: it decodes every body, gzip
and JSON included, and answers with the statuses and bodies the OTLP specification gives):
503 + Retry-After is retried after the delay and delivered, 413 splits the request, 400 is
dropped and counted, partial success is counted, and nothing is lost to retryable failures.
"""

import base64
import gzip
import json
import signal
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
import trustme
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from conftest import BINARY, REPO, free_port, run_collector

CONFORMANCE = REPO / "tests" / "fixtures" / "conformance" / "otlp"
SIGNALS = {"traces": "trace.json", "metrics": "metrics.json", "logs": "logs.json"}
FAST_RETRY = {"initial_interval": "50ms", "max_interval": "100ms", "max_elapsed_time": "20s"}


def read_lines(path):
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_lines(path, count, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline and len(read_lines(path)) < count:
        time.sleep(0.1)
    return read_lines(path)


def wait_metric(trailhead, name, want, timeout=15, **labels):
    deadline = time.time() + timeout
    while time.time() < deadline and trailhead.metric(name, **labels) < want:
        time.sleep(0.05)
    return trailhead.metric(name, **labels)


def receiving(exporter, signals=("traces",)):
    """trailhead with an OTLP/HTTP receiver feeding `exporter` (as `otlp_http/out`)."""
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"otlp_http/out": exporter},
        "service": {"pipelines": {s: {"receivers": ["otlp"], "exporters": ["otlp_http/out"]} for s in signals}},
    }


@pytest.fixture
def collector(tmp_path):
    """The collector: `otlp/in` (HTTP) writes direct.json, `otlp/back` (HTTP) writes via.json."""
    ports = {"in": free_port(), "back": free_port()}
    pipelines = {}
    for signal in SIGNALS:
        pipelines[f"{signal}/in"] = {"receivers": ["otlp/in"], "exporters": ["file/direct"]}
        pipelines[f"{signal}/back"] = {"receivers": ["otlp/back"], "exporters": ["file/via"]}
    config = {
        "receivers": {
            "otlp/in": {"protocols": {"http": {"endpoint": f"127.0.0.1:{ports['in']}"}}},
            "otlp/back": {"protocols": {"http": {"endpoint": f"127.0.0.1:{ports['back']}"}}},
        },
        "exporters": {
            "file/direct": {"path": str(tmp_path / "direct.json"), "flush_interval": "100ms"},
            "file/via": {"path": str(tmp_path / "via.json"), "flush_interval": "100ms"},
        },
        "service": {"pipelines": pipelines},
    }
    process = run_collector(config, tmp_path, ports["in"])
    yield ports, tmp_path
    process.terminate()
    process.wait(10)


# The examples of every signal reach the collector's OTLP/HTTP receiver through trailhead
# exactly as they do directly, in each encoding and compression; logs go to `logs_endpoint`
# (a full URL, used as given) and the rest to `endpoint` + /v1/<signal>.
@pytest.mark.parametrize("encoding,compression", [("proto", "none"), ("proto", "gzip"), ("json", "none"), ("json", "zstd")])
def test_delivers_to_the_collector(collector, start_trailhead, encoding, compression):
    ports, tmp = collector
    back = f"http://127.0.0.1:{ports['back']}"
    exporter = {"endpoint": back + "/", "logs_endpoint": back + "/v1/logs", "encoding": encoding,
                "compression": compression, "batch": {"timeout": "10ms"}}
    trailhead = start_trailhead(receiving(exporter, SIGNALS))
    for signal, fixture in SIGNALS.items():
        body = (CONFORMANCE / fixture).read_bytes()
        for url in [f"http://127.0.0.1:{ports['in']}/v1/{signal}", trailhead.url("otlp (http)", f"/v1/{signal}")]:
            response = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
            assert response.status_code == 200, response.text
    direct = wait_lines(tmp / "direct.json", 3)
    via = wait_lines(tmp / "via.json", 3)
    assert len(direct) == 3 and len(via) == 3, (direct, via, trailhead.logs[-5:])
    key = lambda line: json.dumps(line, sort_keys=True)
    assert sorted(map(key, via)) == sorted(map(key, direct))
    for signal in SIGNALS:
        assert trailhead.metric("trailhead_exporter_sent_items_total", signal=signal) > 0
    assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0


def otlp_json_ids(value):
    """OTLP/JSON's hex ids as protobuf's canonical JSON has bytes (base64), so json_format reads
    OTLP/JSON as an OTLP/HTTP receiver does."""
    if isinstance(value, list):
        return [otlp_json_ids(v) for v in value]
    if not isinstance(value, dict):
        return value
    ids = {"traceId", "spanId", "parentSpanId"}
    return {k: base64.b64encode(bytes.fromhex(v)).decode() if k in ids and isinstance(v, str) else otlp_json_ids(v)
            for k, v in value.items()}


class Peer:
    """An OTLP/HTTP traces endpoint whose answers a test scripts. `answer(call, request)` gets
    the call number (from 1) and the decoded ExportTraceServiceRequest and returns None
    (accept: 200, empty body) or (status, headers, body). Only accepted requests are kept."""

    def __init__(self, answer=None, tls=None, port=0):
        self.answer = answer
        self.scheme = "https" if tls else "http"
        self.accepted = []
        self.sizes = []
        self.headers = []
        self.calls = 0
        self.lock = threading.Lock()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with peer.lock:
                    peer.sizes.append(len(body))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = trace_service_pb2.ExportTraceServiceRequest()
                if self.headers.get("Content-Type") == "application/json":
                    json_format.ParseDict(otlp_json_ids(json.loads(body)), request)
                else:
                    request.ParseFromString(body)
                with peer.lock:
                    peer.calls += 1
                    call = peer.calls
                    peer.headers.append(dict(self.headers))
                reply = peer.answer(call, request) if peer.answer else None
                if reply is None:
                    with peer.lock:
                        peer.accepted.append(request)
                    reply = (200, {}, b"")
                status, headers, payload = reply
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a scripted dropped connection, not a failure of the test

        self.server = Server(("127.0.0.1", port), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}"

    def span_names(self):
        with self.lock:
            return [s.name for r in self.accepted for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def wait_for(self, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.span_names()) < count:
            time.sleep(0.05)
        return len(self.span_names())

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.stop()


def spans(names):
    return {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"{i:016x}", "name": name}
        for i, name in enumerate(names)]}]}]}


def post(trailhead, names):
    response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=spans(names), timeout=5)
    assert response.status_code == 200, response.text


def rpc_status(message):
    return status_pb2.Status(code=14, message=message).SerializeToString()


# 503 with Retry-After: 1 is retried after a second (not the 50 ms backoff) and delivered once;
# 502 and 429 without it are retried at the backoff's pace.
def test_503_retry_after_is_honoured(peer, start_trailhead):
    peer.answer = lambda call, request: {1: (503, {"Retry-After": "1"}, rpc_status("busy")),
                                         2: (502, {}, b""), 3: (429, {}, b"")}.get(call)
    trailhead = start_trailhead(receiving({"endpoint": peer.url, "retry_on_failure": FAST_RETRY}))
    started = time.time()
    post(trailhead, ["a", "b", "c"])
    assert peer.wait_for(3) == 3
    assert time.time() - started >= 1.0
    assert peer.calls == 4
    assert sorted(peer.span_names()) == ["a", "b", "c"]
    assert trailhead.metric("trailhead_exporter_retries_total", signal="traces") == 3
    assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0


# A peer that refuses bodies of more than two spans with 413: the request is split until the
# halves fit, and every span arrives once.
def test_413_splits_the_request(peer, start_trailhead):
    def too_large(call, request):
        count = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return (413, {}, rpc_status("too large")) if count > 2 else None
    peer.answer = too_large
    trailhead = start_trailhead(receiving({"endpoint": peer.url}))
    names = [f"s{i}" for i in range(8)]
    post(trailhead, names)
    assert peer.wait_for(8) == 8
    assert sorted(peer.span_names()) == names
    assert trailhead.metric("trailhead_exporter_size_splits_total") >= 1
    assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0


# 400 is permanent: sent once, not retried, the items counted as failed and the peer's Status
# message logged.
def test_400_is_dropped_and_counted(peer, start_trailhead):
    peer.answer = lambda call, request: (400, {"Content-Type": "application/x-protobuf"}, rpc_status("bad span"))
    trailhead = start_trailhead(receiving({"endpoint": peer.url, "retry_on_failure": FAST_RETRY}))
    post(trailhead, ["a", "b", "c"])
    assert wait_metric(trailhead, "trailhead_exporter_send_failed_items_total", 3, signal="traces") == 3
    time.sleep(0.3)
    assert peer.calls == 1
    assert trailhead.metric("trailhead_exporter_retries_total") == 0
    assert any("bad span" in json.dumps(entry) for entry in trailhead.logs), trailhead.logs[-5:]


# A 200 carrying a partial success, in protobuf or JSON as the answer's content type says, is
# delivered with the rejected count recorded.
@pytest.mark.parametrize("encoding", ["proto", "json"])
def test_partial_success_is_counted(peer, start_trailhead, encoding):
    response = trace_service_pb2.ExportTraceServiceResponse(
        partial_success=trace_service_pb2.ExportTracePartialSuccess(rejected_spans=1, error_message="span too old"))
    if encoding == "json":
        answer = (200, {"Content-Type": "application/json"}, json_format.MessageToJson(response).encode())
    else:
        answer = (200, {"Content-Type": "application/x-protobuf"}, response.SerializeToString())

    def partial(call, request):
        with peer.lock:
            peer.accepted.append(request)
        return answer
    peer.answer = partial
    trailhead = start_trailhead(receiving({"endpoint": peer.url, "encoding": encoding}))
    post(trailhead, ["a", "b", "c"])
    assert peer.wait_for(3) == 3
    assert wait_metric(trailhead, "trailhead_exporter_peer_rejected_items_total", 1) == 1
    assert trailhead.metric("trailhead_exporter_sent_items_total", signal="traces") == 2


# Every other call fails with a retryable status or the connection drops before an answer;
# every span still arrives, once.
def test_nothing_is_lost_on_retryable_failures(peer, start_trailhead):
    failures = [(503, {}, b""), (502, {}, b""), (504, {}, b""), (429, {}, b""), None]

    def flaky(call, request):
        failure = failures[call % len(failures)] if call % 2 else None
        if failure is None and call % 2:
            raise ConnectionAbortedError("dropped")
        return failure
    peer.answer = flaky
    trailhead = start_trailhead(receiving({"endpoint": peer.url, "retry_on_failure": FAST_RETRY,
                                           "sending_queue": {"num_consumers": 4}, "batch": {"timeout": "5ms"}}))
    names = [f"r{r}s{s}" for r in range(30) for s in range(3)]
    for r in range(30):
        post(trailhead, names[3 * r:3 * r + 3])
    assert peer.wait_for(len(names)) == len(names)
    time.sleep(0.3)
    assert sorted(peer.span_names()) == sorted(names)
    assert trailhead.metric("trailhead_exporter_retries_total") > 0
    assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0


# Configured headers and the bearertokenauth token reach the peer with the content type, and
# gzip-compressed JSON decodes to what was sent.
def test_headers_auth_and_gzip_json(peer, start_trailhead):
    config = receiving({"endpoint": peer.url, "encoding": "json", "compression": "gzip",
                        "headers": {"X-Scope-OrgID": "mathtrail"}, "auth": {"authenticator": "bearertokenauth/out"}})
    config["extensions"] = {"bearertokenauth/out": {"token": "t0ken"}}
    config["service"]["extensions"] = ["bearertokenauth/out"]
    trailhead = start_trailhead(config)
    post(trailhead, ["a", "b"])
    assert peer.wait_for(2) == 2
    headers = {k.lower(): v for k, v in peer.headers[-1].items()}
    assert headers["authorization"] == "Bearer t0ken"
    assert headers["x-scope-orgid"] == "mathtrail"
    assert headers["content-type"] == "application/json"
    assert headers["content-encoding"] == "gzip"
    assert headers["user-agent"].startswith("trailhead/")
    span = peer.accepted[-1].resource_spans[0].scope_spans[0].spans[0]
    assert span.trace_id.hex() == "5b8efff798038103d269b633813fc60c"


# `validate` refuses an unknown key, a missing endpoint and tls keys the collector refuses (or
# trailhead's gRPC client cannot honour), each placed in the file.
def test_bad_config_is_refused_with_its_place(tmp_path):
    bad = tmp_path / "bad.yaml"
    for body, expected in [("otlphttp: {endpoint: 'http://a:1', endpiont: x}", "endpiont"),
                           ("otlphttp: {compression: gzip}", "at least one endpoint must be specified"),
                           ("otlphttp: {endpoint: 'https://a:1', tls: {ca_file: a.pem, ca_pem: x}}",
                            "give ca_file or ca_pem, not both"),
                           ("otlphttp: {endpoint: 'https://a:1', tls: {min_version: '1.3', max_version: '1.2'}}",
                            "min_version cannot be greater than max_version"),
                           ("otlp: {endpoint: 'a:1', tls: {min_version: '1.3'}}", "cannot be narrowed to one yet")]:
        exporter = body.split(":")[0]
        bad.write_text("receivers: {otlp: }\nexporters:\n  " + body +
                       f"\nservice: {{pipelines: {{traces: {{receivers: [otlp], exporters: [{exporter}]}}}}}}\n")
        result = subprocess.run([str(BINARY), "validate", "--config", str(bad)], capture_output=True, text=True)
        assert result.returncode == 1, result.stdout
        assert "bad.yaml:3:" in result.stderr and expected in result.stderr, result.stderr


# TLS as the collector's client does it: with `ca_file` only that CA is trusted, a client
# certificate answers a peer that requires one, and `server_name_override` is the name checked.
# Without the CA (the system's roots only) nothing is delivered and the failure is retried.
def test_tls_and_mutual_tls(tmp_path, start_trailhead):
    ca = trustme.CA()
    files = {name: tmp_path / f"{name}.pem" for name in ["ca", "server", "server_key", "client", "client_key"]}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server = ca.issue_cert("peer.mathtrail.test")
    server.private_key_pem.write_to_path(str(files["server_key"]))
    files["server"].write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    client = ca.issue_cert("trailhead.mathtrail.test")
    client.private_key_pem.write_to_path(str(files["client_key"]))
    files["client"].write_bytes(b"".join(p.bytes() for p in client.cert_chain_pems))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(files["server"], files["server_key"])
    context.load_verify_locations(files["ca"])
    context.verify_mode = ssl.CERT_REQUIRED
    peer = Peer(tls=context)
    try:
        tls = {"ca_file": str(files["ca"]), "cert_file": str(files["client"]), "key_file": str(files["client_key"]),
               "server_name_override": "peer.mathtrail.test"}
        trailhead = start_trailhead(receiving({"endpoint": peer.url, "tls": tls}))
        post(trailhead, ["a", "b"])
        assert peer.wait_for(2) == 2
        trailhead.stop()
        config = receiving({"endpoint": peer.url, "retry_on_failure": FAST_RETRY,
                            "tls": {"server_name_override": "peer.mathtrail.test"}})
        config["service"]["shutdown_timeout"] = "1s"  # it is still retrying when stopped
        untrusted = start_trailhead(config)
        post(untrusted, ["c"])
        assert wait_metric(untrusted, "trailhead_exporter_retries_total", 2) >= 2
        assert peer.span_names() == ["a", "b"]
    finally:
        peer.stop()


# The collector's other tls keys: the CA and the client identity inline (`ca_pem`, `cert_pem`,
# `key_pem`) work as the files do, and `min_version: "1.3"` is kept: a peer that speaks at most
# TLS 1.2 gets nothing (the failure is retried), one that speaks 1.3 gets the spans.
def test_inline_pem_and_min_version(tmp_path, start_trailhead):
    ca = trustme.CA()
    server = ca.issue_cert("peer.mathtrail.test")
    client = ca.issue_cert("trailhead.mathtrail.test")
    chain, key = tmp_path / "server.pem", tmp_path / "server_key.pem"
    chain.write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    server.private_key_pem.write_to_path(str(key))
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tls = {"ca_pem": ca.cert_pem.bytes().decode(),
           "cert_pem": b"".join(p.bytes() for p in client.cert_chain_pems).decode(),
           "key_pem": client.private_key_pem.bytes().decode(),
           "server_name_override": "peer.mathtrail.test", "min_version": "1.3", "reload_interval": "30s"}

    def context(maximum):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain, key)
        ctx.load_verify_locations(ca_file)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.maximum_version = maximum
        return ctx

    old = Peer(tls=context(ssl.TLSVersion.TLSv1_2))
    try:
        config = receiving({"endpoint": old.url, "tls": tls, "retry_on_failure": FAST_RETRY})
        config["service"]["shutdown_timeout"] = "1s"
        refused = start_trailhead(config)
        post(refused, ["old"])
        assert wait_metric(refused, "trailhead_exporter_retries_total", 2) >= 2
        assert old.calls == 0
        refused.stop()
    finally:
        old.stop()
    current = Peer(tls=context(ssl.TLSVersion.TLSv1_3))
    try:
        trailhead = start_trailhead(receiving({"endpoint": current.url, "tls": tls}))
        post(trailhead, ["new"])
        assert current.wait_for(1) == 1
    finally:
        current.stop()


# With a persistent queue, what the peer refused retryably is on disk when trailhead is killed,
# and the next start delivers it, each span once.
def test_persistent_queue_survives_kill_9(tmp_path, start_trailhead):
    port = free_port()
    config = receiving({"endpoint": f"http://127.0.0.1:{port}", "retry_on_failure": FAST_RETRY,
                        "sending_queue": {"storage": "file_storage/queue"}, "batch": {"timeout": "5ms"}})
    config["extensions"] = {"file_storage/queue": {"directory": str(tmp_path / "queue"), "create_directory": True}}
    config["service"]["extensions"] = ["file_storage/queue"]
    refusing = Peer(answer=lambda call, request: (503, {}, b""), port=port)
    first = start_trailhead(config)
    names = [f"k{i}" for i in range(12)]
    for i in range(4):
        post(first, names[3 * i:3 * i + 3])
    assert wait_metric(first, "trailhead_exporter_retries_total", 1) >= 1
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    refusing.stop()
    refusing.server.server_close()
    peer = Peer(port=port)
    try:
        start_trailhead(config)
        assert peer.wait_for(len(names)) == len(names)
        time.sleep(0.3)
        assert sorted(peer.span_names()) == sorted(names)
    finally:
        peer.stop()


# The gRPC exporter's byte bound: a 6 MB request leaves as bodies of at most 3.5 MiB
# (DEFAULT_MAX_REQUEST_BYTES), split between spans, and every span arrives.
def test_requests_stay_under_the_byte_bound(peer, start_trailhead):
    trailhead = start_trailhead(receiving({"endpoint": peer.url}))
    request = trace_service_pb2.ExportTraceServiceRequest()
    spans_out = request.resource_spans.add().scope_spans.add()
    for i in range(60):
        span = spans_out.spans.add(trace_id=bytes(16 * [1]), span_id=i.to_bytes(8, "big"), name=f"big{i}")
        span.attributes.add(key="blob").value.string_value = "x" * (100 << 10)
    body = request.SerializeToString()
    assert len(body) > 5 << 20
    response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=body,
                             headers={"Content-Type": "application/x-protobuf"}, timeout=10)
    assert response.status_code == 200, response.text
    assert peer.wait_for(60) == 60
    assert sorted(peer.span_names()) == sorted(f"big{i}" for i in range(60))
    assert len(peer.sizes) >= 2 and max(peer.sizes) <= 3584 << 10, peer.sizes
