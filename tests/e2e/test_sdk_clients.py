"""The OpenTelemetry Python SDK, as services use it, sending every signal over every OTLP
transport trailhead serves; each item must reach the downstream OTLP/gRPC sink intact."""

import logging

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

RESOURCE = Resource.create({"service.name": "checkout", "service.namespace": "mathtrail"})


def exporters(transport, gateway):
    """(span, metric, log) exporters of the SDK for one transport."""
    if transport == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        endpoint = gateway.address("otlp (grpc)")
        return (OTLPSpanExporter(endpoint=endpoint, insecure=True),
                OTLPMetricExporter(endpoint=endpoint, insecure=True),
                OTLPLogExporter(endpoint=endpoint, insecure=True))
    base = gateway.url("otlp (http)")
    if transport == "http/protobuf+gzip":
        from opentelemetry.exporter.otlp.proto.http import Compression
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        gz = Compression.Gzip
        return (OTLPSpanExporter(endpoint=base + "/v1/traces", compression=gz),
                OTLPMetricExporter(endpoint=base + "/v1/metrics", compression=gz),
                OTLPLogExporter(endpoint=base + "/v1/logs", compression=gz))
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.json.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    return (OTLPSpanExporter(endpoint=base + "/v1/traces"),
            OTLPMetricExporter(endpoint=base + "/v1/metrics"),
            OTLPLogExporter(endpoint=base + "/v1/logs"))


# Traces, metrics and logs from the SDK arrive at the sink with their resource, names,
# attributes, ids and values, over gRPC, HTTP/protobuf (gzip) and HTTP/JSON.
@pytest.mark.parametrize("transport", ["grpc", "http/protobuf+gzip", "http/json"])
def test_sdk_signals_reach_the_sink(transport, gateway, sink):
    span_exporter, metric_exporter, log_exporter = exporters(transport, gateway)

    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    tracer = tracer_provider.get_tracer("mathtrail.checkout", "1.2.3")
    with tracer.start_as_current_span("POST /checkout", attributes={"http.request.method": "POST"}) as parent:
        with tracer.start_as_current_span("SELECT carts", attributes={"db.rows": 3}):
            pass
    trace_id = parent.get_span_context().trace_id
    tracer_provider.shutdown()

    reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
    meter_provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = meter_provider.get_meter("mathtrail.checkout")
    meter.create_counter("orders").add(5, {"route": "/checkout"})
    meter.create_histogram("latency_ms").record(12.5)
    meter_provider.shutdown()

    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    logger = logging.getLogger(f"e2e.{transport}")
    logger.propagate = False
    logger.addHandler(LoggingHandler(logger_provider=logger_provider))
    logger.warning("cart %s is empty", "c-42")
    logger_provider.shutdown()

    assert sink.wait_for("traces", 2) == 2
    assert sink.wait_for("metrics", 2) == 2
    assert sink.wait_for("logs", 1) == 1

    spans = {s.name: s for s in sink.spans()}
    assert set(spans) == {"POST /checkout", "SELECT carts"}
    child = spans["SELECT carts"]
    assert int.from_bytes(child.trace_id, "big") == trace_id
    assert child.parent_span_id == spans["POST /checkout"].span_id
    assert [(a.key, a.value.int_value) for a in child.attributes] == [("db.rows", 3)]
    resource_spans = sink.requests["traces"][0].resource_spans[0]
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "checkout"
    assert resource_spans.scope_spans[0].scope.name == "mathtrail.checkout"
    assert resource_spans.scope_spans[0].scope.version == "1.2.3"

    metrics = {m.name: m for r in sink.requests["metrics"] for rm in r.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics}
    assert metrics["orders"].sum.data_points[0].as_int == 5
    assert metrics["latency_ms"].histogram.data_points[0].sum == 12.5

    record = sink.requests["logs"][0].resource_logs[0].scope_logs[0].log_records[0]
    assert record.body.string_value == "cart c-42 is empty"
    assert record.severity_text == "WARN" or record.severity_text == "WARNING"

    receiver = "otlp"
    assert gateway.metric("trailhead_receiver_accepted_items_total", receiver=receiver, signal="traces") == 2
    assert gateway.metric("trailhead_exporter_sent_items_total", exporter="otlp/sink", signal="logs") == 1
