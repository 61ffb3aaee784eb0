"""Pipeline wiring and exporter transport: fan-in, fan-out, several pipelines of one signal,
every public OTLP example, and TLS with client certificates to the downstream."""

import json
import time

import grpc
import pytest
import requests
import trustme

from conftest import REPO, Sink, gateway_config

CONFORMANCE = REPO / "tests" / "fixtures" / "conformance" / "otlp"


# One receiver feeding two traces pipelines, one of which fans out to two exporters (one
# spelled with the otlp_grpc alias): every exporter gets every span.
def test_fan_out_and_named_pipelines(start_trailhead):
    sinks = [Sink() for _ in range(3)]
    try:
        exporter = lambda sink: {"endpoint": sink.endpoint, "tls": {"insecure": True}, "batch": {"timeout": "10ms"}}
        config = {
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": "127.0.0.1:0"}}}},
            "exporters": {"otlp/a": exporter(sinks[0]), "otlp_grpc/b": exporter(sinks[1]), "otlp/c": exporter(sinks[2])},
            "service": {"pipelines": {
                "traces": {"receivers": ["otlp"], "exporters": ["otlp/a", "otlp_grpc/b"]},
                "traces/audit": {"receivers": ["otlp"], "exporters": ["otlp/c"]},
            }},
        }
        trailhead = start_trailhead(config)
        body = (CONFORMANCE / "trace.json").read_bytes()
        for _ in range(3):
            response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=body,
                                     headers={"Content-Type": "application/json"}, timeout=5)
            assert response.status_code == 200
        for sink in sinks:
            assert sink.wait_for("traces", 3) == 3
    finally:
        for sink in sinks:
            sink.stop()


# Every public OTLP/JSON example goes through with all its items, as protobuf after JSON.
@pytest.mark.parametrize("fixture,signal", [("trace.json", "traces"), ("metrics.json", "metrics"),
                                            ("logs.json", "logs"), ("events.json", "logs")])
def test_every_otlp_example(fixture, signal, gateway, sink):
    body = json.loads((CONFORMANCE / fixture).read_text())
    response = requests.post(gateway.url("otlp (http)", f"/v1/{signal}"), json=body, timeout=5)
    assert response.status_code == 200, response.text
    expected = count_json_items(signal, body)
    assert expected > 0
    assert sink.wait_for(signal, expected) == expected


def count_json_items(signal, body):
    if signal == "traces":
        return sum(len(s.get("spans", [])) for r in body["resourceSpans"] for s in r["scopeSpans"])
    if signal == "logs":
        return sum(len(s.get("logRecords", [])) for r in body["resourceLogs"] for s in r["scopeLogs"])
    total = 0
    for r in body["resourceMetrics"]:
        for s in r["scopeMetrics"]:
            for m in s["metrics"]:
                for kind in ["gauge", "sum", "histogram", "exponentialHistogram", "summary"]:
                    total += len(m.get(kind, {}).get("dataPoints", []))
    return total


# The exporter verifies the server against `ca_file` and presents `cert_file`/`key_file` to a
# downstream that requires client certificates (mutual TLS); without them it is refused.
def test_mutual_tls_to_downstream(tmp_path, start_trailhead):
    ca = trustme.CA()
    server_cert = ca.issue_cert("alloy.test")
    client_cert = ca.issue_cert("trailhead.test")
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    client_cert.cert_chain_pems[0].write_to_path(str(tmp_path / "client.pem"))
    client_cert.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    credentials = grpc.ssl_server_credentials(
        [(server_cert.private_key_pem.bytes(), b"".join(p.bytes() for p in server_cert.cert_chain_pems))],
        root_certificates=ca.cert_pem.bytes(), require_client_auth=True)
    sink = Sink(credentials=credentials)
    try:
        tls = {"ca_file": str(tmp_path / "ca.pem"), "cert_file": str(tmp_path / "client.pem"),
               "key_file": str(tmp_path / "client.key"), "server_name_override": "alloy.test"}
        trailhead = start_trailhead(gateway_config(sink.endpoint, tls=tls))
        body = (CONFORMANCE / "trace.json").read_bytes()
        response = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=body,
                                 headers={"Content-Type": "application/json"}, timeout=5)
        assert response.status_code == 200
        assert sink.wait_for("traces", 1) == 1

        # Without a client certificate the handshake fails and nothing is delivered.
        del tls["cert_file"], tls["key_file"]
        refused = start_trailhead(gateway_config(sink.endpoint, tls=tls, retry_on_failure={"enabled": False}))
        requests.post(refused.url("otlp (http)", "/v1/traces"), data=body, headers={"Content-Type": "application/json"}, timeout=5)
        failed = 0
        for _ in range(100):
            failed = refused.metric("trailhead_exporter_send_failed_items_total", signal="traces")
            if failed:
                break
            time.sleep(0.05)
        assert failed == 1
        assert sink.items("traces") == 1
    finally:
        sink.stop()
