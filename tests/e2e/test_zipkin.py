"""Zipkin in: what Dapr sidecars and OpenTelemetry's Zipkin exporters post, mapped to OTLP."""

import json
from pathlib import Path

import pytest
import requests
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

CONFORMANCE = Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "zipkin"

# A Dapr sidecar's span as its Zipkin exporter (OpenTelemetry Go) writes it.
DAPR_SPANS = [{
    "traceId": "5b8efff798038103d269b633813fc60c",
    "id": "eee19b7ec3c1b174",
    "parentId": "eee19b7ec3c1b173",
    "kind": "SERVER",
    "name": "/v1.0/invoke/users/method/profile",
    "timestamp": 1732500000000000,
    "duration": 1534,
    "localEndpoint": {"serviceName": "orders", "ipv4": "10.244.0.12"},
    "remoteEndpoint": {"serviceName": "users", "ipv4": "10.244.0.40", "port": 50002},
    "tags": {
        "dapr.api": "POST /v1.0/invoke/users/method/profile",
        "dapr.protocol": "http",
        "rpc.service": "ServiceInvocation",
        "otel.scope.name": "dapr",
        "otel.status_code": "ERROR",
        "otel.status_description": "upstream returned 503",
    },
}]


def attributes(span):
    return {a.key: a.value for a in span.attributes}


# Dapr posts to whatever URL it is configured with: /api/v2/spans and /v1/spans both take v2,
# answer 202 (anything else is a failure to Dapr), and map status, scope, endpoints and ids.
@pytest.mark.parametrize("path", ["/api/v2/spans", "/v1/spans"])
def test_dapr_spans(path, gateway, sink):
    response = requests.post(gateway.url("zipkin", path), json=DAPR_SPANS, timeout=5)
    assert response.status_code == 202, response.text
    assert sink.wait_for("traces", 1) == 1
    request = sink.requests["traces"][0]
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource == {"service.name": "orders"}
    scope_spans = request.resource_spans[0].scope_spans[0]
    assert scope_spans.scope.name == "dapr"
    span = scope_spans.spans[0]
    assert span.trace_id.hex() == DAPR_SPANS[0]["traceId"]
    assert span.parent_span_id.hex() == DAPR_SPANS[0]["parentId"]
    assert span.kind == 2  # SERVER
    assert span.end_time_unix_nano - span.start_time_unix_nano == 1_534_000
    assert (span.status.code, span.status.message) == (2, "upstream returned 503")
    attrs = attributes(span)
    assert attrs["peer.service"].string_value == "users"
    assert attrs["net.peer.port"].int_value == 50002
    assert attrs["dapr.protocol"].string_value == "http"
    assert "otel.status_code" not in attrs and "otel.scope.name" not in attrs


# The OpenTelemetry SDK's own Zipkin JSON exporter, through trailhead, to OTLP.
def test_sdk_zipkin_exporter(gateway, sink):
    from opentelemetry.exporter.zipkin.json import ZipkinExporter
    provider = TracerProvider(resource=Resource.create({"service.name": "users"}))
    provider.add_span_processor(SimpleSpanProcessor(ZipkinExporter(endpoint=gateway.url("zipkin", "/api/v2/spans"))))
    tracer = provider.get_tracer("mathtrail.users")
    with tracer.start_as_current_span("GET /profile", attributes={"http.response.status_code": 200}) as span:
        span.set_status(Status(StatusCode.OK))
        span.add_event("cache miss")
    with tracer.start_as_current_span("broken") as span:
        span.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    assert sink.wait_for("traces", 2) == 2
    spans = {s.name: s for s in sink.spans()}
    assert spans["GET /profile"].status.code == 1  # OK: the spelling the collector does not map
    assert [e.name for e in spans["GET /profile"].events] == ["cache miss"]
    assert (spans["broken"].status.code, spans["broken"].status.message) == (2, "boom")
    assert attributes(spans["GET /profile"])["http.response.status_code"].string_value == "200"


# The collector's own Zipkin test payloads.
@pytest.mark.parametrize("fixture", ["collector-sample3.json", "collector-sample4.json"])
def test_conformance_fixtures(fixture, gateway, sink):
    body = (CONFORMANCE / fixture).read_bytes()
    response = requests.post(gateway.url("zipkin", "/api/v2/spans"), data=body,
                             headers={"Content-Type": "application/json"}, timeout=5)
    assert response.status_code == 202, response.text
    expected = len(json.loads(body))
    assert sink.wait_for("traces", expected) == expected


# Zipkin v1 JSON on /api/v1/spans.
def test_v1_json(gateway, sink):
    v1 = [{"traceId": "00000000000000aa", "id": "00000000000000bb", "name": "get",
           "annotations": [{"timestamp": 100, "value": "sr", "endpoint": {"serviceName": "legacy"}},
                           {"timestamp": 300, "value": "ss", "endpoint": {"serviceName": "legacy"}}],
           "binaryAnnotations": [{"key": "http.path", "value": "/x", "endpoint": {"serviceName": "legacy"}}]}]
    response = requests.post(gateway.url("zipkin", "/api/v1/spans"), json=v1, timeout=5)
    assert response.status_code == 202, response.text
    assert sink.wait_for("traces", 1) == 1
    span = sink.spans()[0]
    assert span.kind == 2 and span.end_time_unix_nano - span.start_time_unix_nano == 200_000
    assert attributes(span)["http.path"].string_value == "/x"
