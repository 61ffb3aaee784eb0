"""Self-traces: with `service.telemetry.traces` (the otlp exporter's settings), trailhead sends
a span for each export it makes and each config reload, through an exporter of its own, never
a pipeline, so tracing an export cannot feed itself."""

import time

import requests
from google.rpc import code_pb2

from conftest import Sink, gateway_config
from test_exporter import SPANS, failing


def attributes(span):
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in span.attributes}


def test_exports_and_reloads_are_traced(sink, start_trailhead):
    own = Sink()
    try:
        sink.behaviour = failing(1, code_pb2.UNAVAILABLE)
        config = gateway_config(sink.endpoint, retry_on_failure={"initial_interval": "50ms", "max_interval": "100ms"})
        config["service"]["telemetry"] = {"traces": {"endpoint": own.endpoint, "tls": {"insecure": True}}}
        trailhead = start_trailhead(config)
        assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5).status_code == 200
        assert sink.wait_for("traces", 3) == 3
        assert requests.post(trailhead.url("metrics", "/reload"), timeout=10).status_code == 200
        deadline = time.time() + 10
        while time.time() < deadline and {"export traces", "config reload"} - {s.name for s in own.spans()}:
            time.sleep(0.1)
        spans = {s.name: s for s in own.spans()}
        export = attributes(spans["export traces"])
        assert export == {"trailhead.exporter": "otlp/sink", "trailhead.signal": "traces", "trailhead.items": 3,
                          "trailhead.attempts": 2, "trailhead.outcome": "delivered"}, export
        assert spans["export traces"].end_time_unix_nano > spans["export traces"].start_time_unix_nano
        assert attributes(spans["config reload"]) == {"trailhead.result": "unchanged"}
        resource = {a.key: a.value.string_value for a in own.requests["traces"][0].resource_spans[0].resource.attributes}
        # The collector's own resource: its name, version and a random instance id.
        assert resource["service.name"] == "trailhead" and resource["service.version"], resource
        assert set(resource) == {"service.name", "service.version", "service.instance.id"}, resource
        # Nothing but trailhead's own spans reaches its tracing endpoint, and none of them about itself.
        assert all(attributes(s).get("trailhead.exporter") != "self-traces" for s in own.spans())
        assert sink.items("traces") == 3
    finally:
        own.stop()
