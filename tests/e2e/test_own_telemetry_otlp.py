"""trailhead's own telemetry pushed over OTLP in the collector's shape (`service.telemetry` of
the chart's internalTelemetryViaOTLP example): metrics by a `periodic` reader, logs and spans by
`batch` processors, each with an `otlp` exporter, and the `resource` on all three. The real
collector (tests/peers) receives them over http/protobuf and over grpc and writes them to files;
what it got is compared with trailhead's own /metrics scrape and its stderr log."""

import json
import time

import pytest
import requests

from conftest import COLLECTOR, free_port, gateway_config, run_collector
from test_exporter import SPANS

SIGNALS = ["metrics", "logs", "traces"]


@pytest.fixture
def collector(tmp_path):
    """The collector peer: OTLP/HTTP and OTLP/gRPC in, one file per signal out."""
    ports = {"http": free_port(), "grpc": free_port()}
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{ports['http']}"},
                                             "grpc": {"endpoint": f"127.0.0.1:{ports['grpc']}"}}}},
        "exporters": {f"file/{s}": {"path": str(tmp_path / f"{s}.json"), "flush_interval": "100ms"} for s in SIGNALS},
        "service": {"pipelines": {s: {"receivers": ["otlp"], "exporters": [f"file/{s}"]} for s in SIGNALS}},
    }
    process = run_collector(config, tmp_path, ports["http"])
    yield ports, tmp_path
    process.terminate()
    process.wait(10)


def received(tmp_path, signal):
    path = tmp_path / f"{signal}.json"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_until(check, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    return check()


def value(any_value):
    kind, found = next(iter(any_value.items()))
    return int(found) if kind == "intValue" else found


def attributes(items):
    return {a["key"]: value(a["value"]) for a in items or []}


def own_telemetry(endpoint, protocol, metrics_port):
    """`service.telemetry` as the chart's example writes it, with short delays for a test."""
    otlp = {"otlp": {"endpoint": endpoint, "protocol": protocol,
                     "headers": [{"name": "x-opentelemetry-customer", "value": "a value"}]}}
    return {
        "logs": {"level": "info", "encoding": "json",
                 "processors": [{"batch": {"schedule_delay": 100, "exporter": otlp}}]},
        "metrics": {"readers": [{"pull": {"exporter": {"prometheus": {"host": "127.0.0.1", "port": metrics_port}}}},
                                {"periodic": {"interval": 200, "exporter": otlp}}]},
        "traces": {"processors": [{"batch": {"schedule_delay": 100, "exporter": otlp}}]},
        "resource": {"host.name": "${env:OWN_TELEMETRY_NODE}", "k8s.pod.name": "gateway-0", "service.version": None},
    }


def latest_points(requests_seen):
    """{(metric name, sorted attributes): (kind, point)} from the last push of each series."""
    points = {}
    for request in requests_seen:
        for resource in request["resourceMetrics"]:
            for scope in resource["scopeMetrics"]:
                for metric in scope["metrics"]:
                    kind = next(k for k in ("sum", "gauge", "histogram") if k in metric)
                    for point in metric[kind]["dataPoints"]:
                        key = (metric["name"], tuple(sorted(attributes(point.get("attributes")).items())))
                        points[key] = (kind, metric[kind], point)
    return points


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_metrics_logs_and_spans_reach_the_collector(protocol, collector, sink, start_trailhead):
    ports, tmp = collector
    endpoint = f"http://127.0.0.1:{ports['http' if protocol == 'http/protobuf' else 'grpc']}"
    config = gateway_config(sink.endpoint)
    config["service"]["telemetry"] = own_telemetry(endpoint, protocol, free_port())
    trailhead = start_trailhead(config, extra_env={"OWN_TELEMETRY_NODE": "node-7"})
    assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5).status_code == 200
    assert sink.wait_for("traces", 3) == 3

    # Spans: the export to the sink, traced, with the resource.
    def export_span():
        for request in received(tmp, "traces"):
            for resource in request["resourceSpans"]:
                for scope in resource["scopeSpans"]:
                    for span in scope["spans"]:
                        if span["name"] == "export traces":
                            return resource, span
    resource, span = wait_until(export_span) or pytest.fail(f"no export span: {received(tmp, 'traces')}")
    assert attributes(span["attributes"])["trailhead.exporter"] == "otlp/sink"
    own = attributes(resource["resource"]["attributes"])
    assert own["host.name"] == "node-7" and own["k8s.pod.name"] == "gateway-0", own
    assert own["service.name"] == "trailhead" and "service.version" not in own, own
    assert len(own["service.instance.id"]) == 36, own

    # Logs: a known line, with its severity and fields, and the same resource.
    def running_line():
        for request in received(tmp, "logs"):
            for resource in request["resourceLogs"]:
                for scope in resource["scopeLogs"]:
                    for record in scope["logRecords"]:
                        if record.get("body", {}).get("stringValue") == "trailhead is running":
                            return resource, scope, record
    resource, scope, record = wait_until(running_line) or pytest.fail(f"no log line: {received(tmp, 'logs')}")
    assert record["severityNumber"] in (9, "SEVERITY_NUMBER_INFO"), record
    assert record["severityText"] == "info"
    assert attributes(record["attributes"])["config"].endswith("trailhead.yaml")
    assert scope["scope"]["name"] == "trailhead"
    assert attributes(resource["resource"]["attributes"])["service.instance.id"] == own["service.instance.id"]

    # Metrics: once a push has come after the traffic settled, its values are the scrape's.
    scraped = trailhead.metrics()
    sent = scraped['trailhead_exporter_sent_items_total{exporter="otlp/sink",signal="traces"}']
    assert sent == 3

    def settled_push():
        points = latest_points(received(tmp, "metrics"))
        key = ("trailhead_exporter_sent_items", (("exporter", "otlp/sink"), ("signal", "traces")))
        return points if key in points and int(points[key][2]["asInt"]) == sent else None
    points = wait_until(settled_push) or pytest.fail("no push with the sent items")
    scraped = trailhead.metrics()
    compared = 0
    for (name, labels), (kind, data, point) in points.items():
        series = name + ("_total" if kind == "sum" else "")
        label_text = ",".join(f'{k}="{v}"' for k, v in labels)
        key = f"{series}{{{label_text}}}" if labels else series
        own_exporter = "service.telemetry" in label_text or "self-traces" in label_text
        if name.startswith(("trailhead_exporter", "trailhead_receiver")) and not own_exporter:
            if kind == "histogram":
                assert int(point.get("count", 0)) == scraped[f"{series}_count{{{label_text}}}"], key
                assert len(point["bucketCounts"]) == len(point["explicitBounds"]) + 1
            else:
                assert float(point.get("asInt", point.get("asDouble", 0))) == scraped[key], key
            compared += 1
        if kind == "sum":
            assert data["isMonotonic"] and data["aggregationTemporality"] in (2, "AGGREGATION_TEMPORALITY_CUMULATIVE")
    assert compared >= 5, points.keys()
    pushed_names = {name for name, _ in points}
    scraped_names = {k.split("{")[0].removesuffix("_total").removesuffix("_count").removesuffix("_sum").removesuffix("_bucket")
                     for k in scraped}
    assert pushed_names <= scraped_names, pushed_names - scraped_names
    metric_resource = received(tmp, "metrics")[-1]["resourceMetrics"][0]["resource"]
    assert attributes(metric_resource["attributes"])["host.name"] == "node-7"


# A dead endpoint: the pipelines still deliver, and the log exporter's failures are logged to
# stderr but never become records to send, so they do not loop (only logs are pushed here, so
# every failure line after start would come from such a loop); trailhead stops cleanly.
def test_a_dead_endpoint_neither_blocks_nor_loops(sink, start_trailhead):
    dead = f"http://127.0.0.1:{free_port()}"
    config = gateway_config(sink.endpoint)
    telemetry = own_telemetry(dead, "http/protobuf", free_port())
    config["service"]["telemetry"] = {"logs": telemetry["logs"]}
    trailhead = start_trailhead(config)
    for _ in range(3):
        assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5).status_code == 200
    assert sink.wait_for("traces", 9) == 9

    def failures():
        return [line for line in trailhead.logs if line.get("exporter") == "service.telemetry.logs"]
    assert wait_until(failures), trailhead.logs[-20:]
    time.sleep(1)
    before = len(failures())
    time.sleep(2)  # 20 schedule delays: a loop would log a failure for each
    after = len(failures())
    assert after == before, failures()[-5:]
    assert trailhead.metric("trailhead_exporter_send_failed_items_total", exporter="service.telemetry.logs") > 0
    assert requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=SPANS, timeout=5).status_code == 200
    assert sink.wait_for("traces", 12) == 12
    assert trailhead.stop(timeout=30) == 0
