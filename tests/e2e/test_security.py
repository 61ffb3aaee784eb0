"""Receivers secured as the collector's are: TLS and mutual TLS (`tls: {cert_file, key_file,
client_ca_file}`), bearer tokens (`auth: {authenticator: bearertokenauth/NAME}`), plus trailhead's
limits on open connections and request rate. Checked with the OpenTelemetry SDKs' own TLS and
header options, and with raw clients for what the SDKs do not show (status codes, RetryInfo)."""

import socket
import time

import grpc
import pytest
import requests
import trustme
from grpc_status import rpc_status
from google.rpc import error_details_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult

from conftest import gateway_config

TOKEN = "s3cret-token-value"


@pytest.fixture
def pki(tmp_path, monkeypatch):
    """A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files."""
    # requests lets these override a session's own CA (the SDK's `certificate_file`).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("service.mathtrail.test")
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "server.pem", "key": tmp_path / "server.key",
             "client_cert": tmp_path / "client.pem", "client_key": tmp_path / "client.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    files["cert"].write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    files["client_cert"].write_bytes(b"".join(p.bytes() for p in client.cert_chain_pems))
    return files


def with_receivers(config, **settings):
    """The same settings on OTLP gRPC, OTLP HTTP and Zipkin."""
    for protocol in config["receivers"]["otlp"]["protocols"].values():
        protocol.update(settings)
    config["receivers"]["zipkin"].update(settings)
    return config


def export_with_sdk(exporter):
    """One span through an SDK exporter; returns its SpanExportResult."""
    results = []

    class Recording(SimpleSpanProcessor):
        def on_end(self, span):
            results.append(exporter.export([span]))

    provider = TracerProvider()
    provider.add_span_processor(Recording(exporter))
    with provider.get_tracer("security-test").start_as_current_span("op"):
        pass
    return results[0]


# TLS on every receiver: the SDKs' gRPC and HTTP exporters verify it against the CA and deliver;
# a plain-text client is not served.
def test_tls_receivers(pki, sink, start_trailhead):
    tls = {"cert_file": str(pki["cert"]), "key_file": str(pki["key"])}
    trailhead = start_trailhead(with_receivers(gateway_config(sink.endpoint), tls=tls))
    credentials = grpc.ssl_channel_credentials(pki["ca"].read_bytes())
    grpc_exporter = GrpcSpanExporter(endpoint=trailhead.address("otlp (grpc)"), credentials=credentials)
    assert export_with_sdk(grpc_exporter) == SpanExportResult.SUCCESS
    http_exporter = HttpSpanExporter(endpoint="https://" + trailhead.address("otlp (http)") + "/v1/traces",
                                     certificate_file=str(pki["ca"]))
    assert export_with_sdk(http_exporter) == SpanExportResult.SUCCESS
    zipkin = requests.post("https://" + trailhead.address("zipkin") + "/api/v2/spans", json=[
        {"traceId": "5b8efff798038103d269b633813fc60c", "id": "eee19b7ec3c1b174", "name": "z"}], verify=str(pki["ca"]), timeout=5)
    assert zipkin.status_code == 202
    assert sink.wait_for("traces", 3) == 3
    with pytest.raises(requests.ConnectionError):
        requests.post(trailhead.url("otlp (http)", "/v1/traces"), json={}, timeout=5)


# Mutual TLS: with `client_ca_file`, a client certificate signed by that CA is required.
def test_mutual_tls_receivers(pki, sink, start_trailhead):
    tls = {"cert_file": str(pki["cert"]), "key_file": str(pki["key"]), "client_ca_file": str(pki["ca"])}
    trailhead = start_trailhead(with_receivers(gateway_config(sink.endpoint), tls=tls))
    with_client = grpc.ssl_channel_credentials(pki["ca"].read_bytes(), pki["client_key"].read_bytes(),
                                               pki["client_cert"].read_bytes())
    exporter = GrpcSpanExporter(endpoint=trailhead.address("otlp (grpc)"), credentials=with_client)
    assert export_with_sdk(exporter) == SpanExportResult.SUCCESS
    url = "https://" + trailhead.address("otlp (http)") + "/v1/traces"
    ok = requests.post(url, json={}, verify=str(pki["ca"]), cert=(str(pki["client_cert"]), str(pki["client_key"])), timeout=5)
    assert ok.status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.post(url, json={}, verify=str(pki["ca"]), timeout=5)
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.secure_channel(
        trailhead.address("otlp (grpc)"), grpc.ssl_channel_credentials(pki["ca"].read_bytes())))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert sink.wait_for("traces", 1) == 1


# Bearer tokens: the SDK sends the token as a header and is served; a missing or wrong token is
# refused with 401 / UNAUTHENTICATED saying which, on every receiver. The token never shows in
# trailhead's logs, and the exporter's `auth` sends the same extension's token to Alloy.
def test_bearer_token(tmp_path, sink, start_trailhead):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    config = with_receivers(gateway_config(sink.endpoint, auth={"authenticator": "bearertokenauth/alloy"}),
                            auth={"authenticator": "bearertokenauth/services"})
    config["extensions"]["bearertokenauth/services"] = {"filename": str(token_file)}
    config["extensions"]["bearertokenauth/alloy"] = {"token": "alloy-" + TOKEN}
    config["service"]["extensions"] += ["bearertokenauth/services", "bearertokenauth/alloy"]
    config["service"]["telemetry"] = {"logs": {"level": "debug", "encoding": "json"}, "metrics": {"address": "127.0.0.1:0"}}
    trailhead = start_trailhead(config)

    exporter = GrpcSpanExporter(endpoint=trailhead.address("otlp (grpc)"), insecure=True,
                                headers={"authorization": f"Bearer {TOKEN}"})
    assert export_with_sdk(exporter) == SpanExportResult.SUCCESS
    http_exporter = HttpSpanExporter(endpoint=trailhead.url("otlp (http)", "/v1/traces"),
                                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert export_with_sdk(http_exporter) == SpanExportResult.SUCCESS
    assert sink.wait_for("traces", 2) == 2
    assert all(m.get("authorization") == "Bearer alloy-" + TOKEN for m in sink.metadata)

    for name, path in [("otlp (http)", "/v1/traces"), ("zipkin", "/api/v2/spans")]:
        missing = requests.post(trailhead.url(name, path), json=[], timeout=5)
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert "missing Authorization header" in missing.text
        wrong = requests.post(trailhead.url(name, path), json=[], headers={"Authorization": "Bearer guess"}, timeout=5)
        assert wrong.status_code == 401 and "wrong bearer token" in wrong.text
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(trailhead.address("otlp (grpc)")))
    with pytest.raises(grpc.RpcError) as refused:
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), metadata=[("authorization", "Bearer guess")], timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "wrong bearer token" in refused.value.details()
    assert trailhead.metric("trailhead_server_unauthenticated_requests_total") == 5
    trailhead.stop()
    assert not [e for e in trailhead.logs if TOKEN in str(e)]


# Past `limits.max_connections`, a new connection is closed at once and counted; one that was
# open keeps being served.
def test_connection_limit(sink, start_trailhead):
    trailhead = start_trailhead(with_receivers(gateway_config(sink.endpoint), limits={"max_connections": 2}))
    url = trailhead.url("otlp (http)", "/v1/traces")
    sessions = [requests.Session() for _ in range(2)]
    for session in sessions:
        assert session.post(url, json={}, timeout=5).status_code == 200  # two kept-alive connections
    host, port = trailhead.address("otlp (http)").rsplit(":", 1)
    third = socket.create_connection((host, int(port)), timeout=5)
    third.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    try:
        answer = third.recv(100)
    except ConnectionResetError:  # closed with our request unread: the kernel resets
        answer = b""
    assert answer == b""  # closed without an answer
    third.close()
    assert trailhead.metric("trailhead_server_refused_connections_total", server="otlp (http)") >= 1
    assert sessions[0].post(url, json={}, timeout=5).status_code == 200
    sessions[0].close()
    deadline = time.time() + 5
    while time.time() < deadline:  # the freed place is taken by a new connection
        try:
            if requests.post(url, json={}, timeout=5).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.05)
    else:
        raise AssertionError("a connection closed by its client did not free its place")


# Past `limits.requests_per_second` (burst 3), requests are refused retryably: HTTP 429 with
# Retry-After, gRPC RESOURCE_EXHAUSTED with RetryInfo, which OTLP clients retry.
def test_rate_limit(sink, start_trailhead):
    trailhead = start_trailhead(with_receivers(gateway_config(sink.endpoint),
                                               limits={"requests_per_second": 2, "burst": 3}))
    url = trailhead.url("otlp (http)", "/v1/traces")
    responses = [requests.post(url, json={}, timeout=5) for _ in range(6)]
    assert [r.status_code for r in responses[:3]] == [200, 200, 200]
    limited = [r for r in responses if r.status_code == 429]
    assert len(limited) >= 2 and all(r.headers.get("Retry-After") == "1" for r in limited)
    assert "rate limit" in limited[0].text
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(trailhead.address("otlp (grpc)")))
    codes = []
    for _ in range(6):
        try:
            stub.Export(trace_service_pb2.ExportTraceServiceRequest(), timeout=5)
            codes.append("ok")
        except grpc.RpcError as error:
            codes.append(error.code())
            status = rpc_status.from_call(error)
            retry = error_details_pb2.RetryInfo()
            assert status.details[0].Unpack(retry) and retry.retry_delay.ToTimedelta().total_seconds() > 0
    assert codes[:3] == ["ok"] * 3 and grpc.StatusCode.RESOURCE_EXHAUSTED in codes
    time.sleep(1.1)
    assert requests.post(url, json={}, timeout=5).status_code == 200


# gRPC's `max_concurrent_streams` reaches clients as the server's HTTP/2 SETTINGS, which is how
# a client learns to hold further calls back. Read with the h2 library, as a client sees it.
def test_max_concurrent_streams_is_announced(sink, start_trailhead):
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings
    config = gateway_config(sink.endpoint)
    config["receivers"]["otlp"]["protocols"]["grpc"]["max_concurrent_streams"] = 7
    trailhead = start_trailhead(config)
    host, port = trailhead.address("otlp (grpc)").rsplit(":", 1)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(connection.data_to_send())
        settings = None
        while settings is None:
            for event in connection.receive_data(raw.recv(65536)):
                if isinstance(event, h2.events.RemoteSettingsChanged):
                    settings = {k: v.new_value for k, v in event.changed_settings.items()}
    assert settings[h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS] == 7, settings
