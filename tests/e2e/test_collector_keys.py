"""The collector keys real configs use, on components trailhead has (issue 21): `${file:}`
expansion, the `logging` exporter, `service.telemetry.metrics.readers`, `cors` and
`include_metadata`, each through the running binary with real HTTP and gRPC clients."""

import os
import re
import subprocess
import time

import requests
import yaml

from conftest import BINARY, REPO, free_port, gateway_config

TRACE = (REPO / "tests" / "fixtures" / "conformance" / "otlp" / "trace.json").read_bytes()


def post_trace(trailhead, headers=None):
    return requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=TRACE, timeout=5,
                         headers={"Content-Type": "application/json", **(headers or {})})


def validate(tmp_path, config):
    path = tmp_path / "check.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False))
    return subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)


# A header value read from a file with `${file:}` reaches the downstream as written in the file.
def test_file_expansion_feeds_an_exporter_header(tmp_path, sink, start_trailhead):
    tenant = tmp_path / "tenant"
    tenant.write_text("acme-from-file")
    config = gateway_config(sink.endpoint, headers={"x-tenant": f"${{file:{tenant}}}"})
    trailhead = start_trailhead(config)
    assert post_trace(trailhead).status_code == 200
    sink.wait_for("traces", 1)
    assert any(m.get("x-tenant") == "acme-from-file" for m in sink.metadata), sink.metadata


# An unset variable expands to an empty value, as in the collector, and says so: in the log of
# `run` (JSON, once the logs are set up) and on `validate`'s stderr.
def test_an_unset_variable_is_warned_of(tmp_path, sink, start_trailhead):
    config = gateway_config(sink.endpoint, headers={"x-tenant": "acme-${env:TRAILHEAD_TEST_UNSET}"})
    os.environ.pop("TRAILHEAD_TEST_UNSET", None)
    trailhead = start_trailhead(config)
    warned = [e for e in trailhead.logs if e.get("variable") == "TRAILHEAD_TEST_UNSET"]
    assert warned and "unset environment variable" in warned[0]["message"], trailhead.logs
    assert warned[0]["level"] == "WARN"
    checked = validate(tmp_path, yaml.safe_dump(config, sort_keys=False))
    assert checked.returncode == 0, checked.stderr
    assert "`TRAILHEAD_TEST_UNSET` is unset" in checked.stderr, checked.stderr


# A file that cannot be read is refused at its reference's line and column, with the reason.
def test_an_unreadable_file_is_refused_where_it_is(tmp_path, sink):
    text = yaml.safe_dump(gateway_config(sink.endpoint), sort_keys=False)
    text = text.replace("insecure: true", "insecure: ${file:/nonexistent/trailhead-ca}", 1)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "${file:" in l)
    checked = validate(tmp_path, text)
    assert checked.returncode != 0
    assert f"check.yaml:{line}:" in checked.stderr and "cannot read the file /nonexistent/trailhead-ca" in checked.stderr, checked.stderr


# `logging` (the collector's old `debug`) runs as debug: `loglevel: debug` prints the whole
# batch as `detailed` does, and a warning says what to write instead.
def test_logging_exporter_runs_as_debug(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["exporters"]["logging"] = {"loglevel": "debug"}
    config["service"]["pipelines"]["traces"]["exporters"].append("logging")
    trailhead = start_trailhead(config)
    assert post_trace(trailhead).status_code == 200
    sink.wait_for("traces", 1)
    deadline = time.time() + 10
    while "resourceSpans" not in "".join(trailhead.stdout) and time.time() < deadline:
        time.sleep(0.05)
    assert "resourceSpans" in "".join(trailhead.stdout)
    assert any("old name of `debug`" in str(entry.get("message", "")) for entry in trailhead.logs), trailhead.logs


# The chart's `metrics.readers` shape serves trailhead's own metrics at the pull reader's port.
def test_metrics_readers_serve_at_their_port(sink, start_trailhead):
    port = free_port()
    config = gateway_config(sink.endpoint)
    prometheus = {"host": "127.0.0.1", "port": port, "without_units": True}
    config["service"]["telemetry"] = {"metrics": {"level": "detailed", "readers": [{"pull": {"exporter": {"prometheus": prometheus}}}]}}
    trailhead = start_trailhead(config)
    assert trailhead.address("metrics") == f"127.0.0.1:{port}"
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "# TYPE trailhead_" in text, text[:500]


# A periodic reader pushes over OTLP (test_own_telemetry_otlp.py); one whose exporter trailhead
# cannot be (`console`) is refused naming its key and why.
def test_periodic_reader_with_console_exporter_is_refused(tmp_path, sink):
    config = gateway_config(sink.endpoint)
    periodic = {"exporter": {"console": {}}}
    config["service"]["telemetry"] = {"metrics": {"readers": [{"periodic": periodic}]}}
    checked = validate(tmp_path, config)
    assert checked.returncode != 0
    assert re.search(r"check\.yaml:\d+:\d+: service\.telemetry\.metrics: .*over OTLP only; use `otlp`",
                     checked.stderr), checked.stderr


# A browser's preflight from an allowed origin (a wildcard) is answered 204 with the allowing
# headers, even with bearer auth on, as the collector answers it; one from another origin gets
# none; the POST itself carries the origin back, refused or not.
def test_cors_preflight_and_request(tmp_path, sink, start_trailhead):
    token = tmp_path / "token"
    token.write_text("s3cret")
    config = gateway_config(sink.endpoint)
    config["extensions"]["bearertokenauth"] = {"filename": str(token)}
    config["service"]["extensions"].append("bearertokenauth")
    config["receivers"]["otlp"]["protocols"]["http"].update(
        cors={"allowed_origins": ["https://*.example.com"], "allowed_headers": ["Content-Type", "Authorization"], "max_age": 600},
        auth={"authenticator": "bearertokenauth"}, include_metadata=True)
    trailhead = start_trailhead(config)
    url = trailhead.url("otlp (http)", "/v1/traces")
    asked = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    allowed = requests.options(url, headers={"Origin": "https://ui.example.com", **asked}, timeout=5)
    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
    assert allowed.headers["Access-Control-Allow-Methods"] == "POST"
    assert allowed.headers["Access-Control-Allow-Headers"] == "authorization,content-type"
    assert allowed.headers["Access-Control-Max-Age"] == "600"
    other = requests.options(url, headers={"Origin": "https://evil.test", **asked}, timeout=5)
    assert other.status_code == 204 and "Access-Control-Allow-Origin" not in other.headers
    posted = post_trace(trailhead, {"Origin": "https://ui.example.com", "Authorization": "Bearer s3cret"})
    assert posted.status_code == 200, posted.text
    assert posted.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
    # rs/cors wraps the collector's auth, so its 401 carries the allowing headers: a browser's
    # script can read why it was refused.
    refused = post_trace(trailhead, {"Origin": "https://ui.example.com"})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "https://ui.example.com"
    assert "Access-Control-Allow-Origin" not in post_trace(trailhead, {"Origin": "https://evil.test"}).headers


# A receiver with `tls.min_version: "1.3"` refuses a client that speaks at most TLS 1.2, and
# serves one that speaks 1.3; `max_version: "1.2"` the other way round.
def test_tls_versions_bound_the_handshake(tmp_path, sink, start_trailhead):
    import ssl

    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    tls = {"cert_file": str(tmp_path / "server.pem"), "key_file": str(tmp_path / "server.key")}

    def handshake(address, highest):
        context = ssl.create_default_context()
        ca.configure_trust(context)
        context.maximum_version = highest
        host, port = address.rsplit(":", 1)
        import socket
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            try:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as secure:
                    return secure.version()
            except ssl.SSLError as e:
                return f"refused: {e.reason}"

    for bounds, twelve, thirteen in [({"min_version": "1.3"}, "refused", "TLSv1.3"),
                                     ({"max_version": "1.2"}, "TLSv1.2", "TLSv1.2")]:
        config = gateway_config(sink.endpoint)
        config["receivers"]["otlp"]["protocols"]["http"]["tls"] = {**tls, **bounds}
        trailhead = start_trailhead(config)
        address = trailhead.address("otlp (http)")
        assert handshake(address, ssl.TLSVersion.TLSv1_2).startswith(twelve), bounds
        assert handshake(address, ssl.TLSVersion.TLSv1_3) == thirteen, bounds
        trailhead.stop()

