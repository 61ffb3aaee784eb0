"""The `spanmetrics` connector against the collector's own (contrib v0.161.0, in the peer).

The same spans (OTLP/JSON: several services and resources, kinds, statuses, durations around
the bucket bounds, attributes for dimensions, events, a sampled trace state) go into the
collector peer and into trailhead, each running `otlp → traces → spanmetrics → metrics → otlp`
to its own OTLP/gRPC sink, with a one-second flush. The metrics must match: names, units,
temporality, resource attributes, series attributes, counts, sums and bucket counts (not
timestamps, nor the value of `collector.instance.id`, which is each process's own id).
"""

import contextlib
import random
import time

import pytest
import requests

from conftest import Sink, free_port, gateway_config, run_collector

BASE = 1_700_000_000_000_000_000

CUMULATIVE = {
    "metrics_flush_interval": "1s",
    "dimensions": [{"name": "http.method", "default": "GET"}, {"name": "http.status_code"}],
    "histogram": {"explicit": {"buckets": ["5ms", "50ms", "500ms"]}},
    "events": {"enabled": True, "dimensions": [{"name": "exception.type"}]},
    "include_instrumentation_scope": ["checkout-lib"],
    "exemplars": {"enabled": True, "max_per_data_point": 2},
}

DELTA = {
    "metrics_flush_interval": "1s",
    "aggregation_temporality": "AGGREGATION_TEMPORALITY_DELTA",
    "histogram": {"unit": "s", "exponential": {"max_size": 20}},
    "exclude_dimensions": ["status.code"],
    "namespace": "",
    "resource_metrics_key_attributes": ["service.name"],
    "calls_dimensions": [{"glob": "rpc.*"}],
    "aggregation_cardinality_limit": 6,
}

SECONDS_DEFAULT = {
    "metrics_flush_interval": "1s",
    "histogram": {"unit": "s"},
    "enable_metrics_sampling_method": True,
    "dimensions": [{"name": "region", "default": "none"}],
}


def kv(attributes):
    out = []
    for key, value in attributes.items():
        if isinstance(value, int):
            out.append({"key": key, "value": {"intValue": str(value)}})
        else:
            out.append({"key": key, "value": {"stringValue": value}})
    return out


def make_bodies(seed=7, count=120):
    """OTLP/JSON requests of `count` spans over four resources (one without service.name)."""
    rng = random.Random(seed)
    resources = [{"service.name": "checkout", "host.name": "a"}, {"service.name": "checkout", "host.name": "b"},
                 {"service.name": "cart", "region": "eu"}, {"host.name": "orphan"}]
    bodies = []
    for _ in range(4):
        resource_spans = []
        for resource in resources:
            spans = []
            for _ in range(count // 16):
                start = BASE + rng.randint(0, 10**9)
                millis = rng.choice([0.5, 2, 5, 5.0001, 40, 50, 120, 499, 900, 3000])
                attributes = {}
                if rng.random() < 0.5:
                    attributes["http.method"] = rng.choice(["GET", "POST"])
                if rng.random() < 0.4:
                    attributes["http.status_code"] = rng.choice([200, 503])
                if rng.random() < 0.3:
                    attributes[rng.choice(["rpc.method", "rpc.service", "rpc.system"])] = rng.choice(["a", "b"])
                span = {"traceId": rng.randbytes(16).hex(), "spanId": rng.randbytes(8).hex(),
                        "name": rng.choice(["GET /cart", "charge", "SELECT"]),
                        "kind": rng.choice([1, 2, 3]), "startTimeUnixNano": str(start),
                        "endTimeUnixNano": str(start + int(millis * 1_000_000)),
                        "status": {"code": rng.choice([0, 0, 1, 2])}, "attributes": kv(attributes)}
                if rng.random() < 0.2:
                    span["events"] = [{"name": "exception", "timeUnixNano": str(start),
                                       "attributes": kv({"exception.type": rng.choice(["Timeout", "IOError"])})}]
                if rng.random() < 0.1:
                    span["traceState"] = "ot=th:8"
                spans.append(span)
            scope = {"name": rng.choice(["checkout-lib", "other"]), "version": "1.2"}
            resource_spans.append({"resource": {"attributes": kv(resource)},
                                   "scopeSpans": [{"scope": scope, "spans": spans}]})
        bodies.append({"resourceSpans": resource_spans})
    return bodies


def pipelines(receiver_config, connector, exporter_endpoint):
    return {
        "receivers": {"otlp": {"protocols": receiver_config}},
        "connectors": {"spanmetrics": connector},
        "exporters": {"otlp": {"endpoint": exporter_endpoint, "tls": {"insecure": True}}},
        "service": {"pipelines": {
            "traces": {"receivers": ["otlp"], "exporters": ["spanmetrics"]},
            "metrics": {"receivers": ["spanmetrics"], "exporters": ["otlp"]},
        }},
    }


@contextlib.contextmanager
def pair(tmp_path, start_trailhead, connector):
    """The collector and trailhead with the same spanmetrics block, each exporting to its own
    sink: yields [(OTLP/HTTP url, sink) of the collector, of trailhead]."""
    port = free_port()
    theirs, mine = Sink(), Sink()
    process = run_collector(pipelines({"http": {"endpoint": f"127.0.0.1:{port}"}}, connector, theirs.endpoint),
                            tmp_path, port)
    trailhead = None
    try:
        ours = pipelines({"http": {"endpoint": "127.0.0.1:0"}}, connector, mine.endpoint)
        trailhead = start_trailhead(ours)
        yield [(f"http://127.0.0.1:{port}", theirs), (trailhead.url("otlp (http)"), mine)]
    finally:
        # Both stop before their sinks, so neither spends its shutdown retrying a closed sink.
        if trailhead is not None:
            trailhead.stop()
        process.terminate()
        process.wait(10)
        theirs.stop()
        mine.stop()


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(pairs, instance_ids):
    """Attributes as a sorted tuple; `collector.instance.id` only counted as present."""
    out = []
    for a in pairs:
        v = value(a.value)
        if a.key == "collector.instance.id":
            instance_ids.add(v)
            v = "<instance>"
        out.append((a.key, v))
    return tuple(sorted(out))


def points_of(sink):
    """Every data point the sink got, as (metric, resource, attributes) → list of (time, shape)
    where shape is what the comparison covers."""
    out, instance_ids = {}, set()
    for request in sink.requests["metrics"]:
        for rm in request.resource_metrics:
            resource = attributes(rm.resource.attributes, instance_ids)
            for sm in rm.scope_metrics:
                assert sm.scope.name == "spanmetricsconnector"
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    data = getattr(m, kind)
                    head = (m.name, m.unit, kind, data.aggregation_temporality)
                    for p in data.data_points:
                        if kind == "sum":
                            shape = (p.as_int, len(p.exemplars))
                        elif kind == "histogram":
                            shape = (p.count, round(p.sum, 6), tuple(p.bucket_counts), tuple(p.explicit_bounds), len(p.exemplars))
                        else:
                            shape = (p.count, round(p.sum, 9), p.scale, p.zero_count, p.positive.offset,
                                     tuple(p.positive.bucket_counts), round(p.min, 9), round(p.max, 9))
                        key = (head, resource, attributes(p.attributes, instance_ids))
                        out.setdefault(key, []).append((p.time_unix_nano, p.start_time_unix_nano, shape))
    return out, instance_ids


def settled(sink, start, flushes=3):
    """Waits for `flushes` more metric requests than `start` (the count before the spans went
    in), or, once one came, for 2.5 s without another (a delta connector sends nothing when it
    has nothing)."""
    deadline, last, quiet_since = time.time() + 15, start, time.time()
    while time.time() < deadline:
        now = len(sink.requests["metrics"])
        if now >= start + flushes or (now > start and time.time() - quiet_since > 2.5):
            return
        if now != last:
            last, quiet_since = now, time.time()
        time.sleep(0.05)


def final(points, delta):
    """Per series: the last point (cumulative) or every point in order (delta)."""
    out = {}
    for key, seen in points.items():
        seen.sort()
        out[key] = [shape for _, _, shape in seen] if delta else seen[-1][2]
    return out


def run_both(tmp_path, start_trailhead, connector, bodies):
    results = []
    with pair(tmp_path, start_trailhead, connector) as both:
        before = [len(sink.requests["metrics"]) for _, sink in both]
        # One request, so a delta flush cannot split the spans differently on the two sides.
        body = {"resourceSpans": [rs for b in bodies for rs in b["resourceSpans"]]}
        for url, _ in both:
            response = requests.post(f"{url}/v1/traces", json=body, timeout=10)
            assert response.status_code == 200, response.text
        for (_, sink), start in zip(both, before):
            settled(sink, start)
            results.append(points_of(sink))
    return results


@pytest.mark.parametrize("connector", [CUMULATIVE, DELTA, SECONDS_DEFAULT], ids=["cumulative", "delta", "seconds"])
def test_the_same_metrics_as_the_collector(tmp_path, start_trailhead, connector):
    delta = connector.get("aggregation_temporality", "").endswith("DELTA")
    (theirs, their_ids), (mine, my_ids) = run_both(tmp_path, start_trailhead, connector, make_bodies())
    assert theirs, "the collector sent no metrics"
    assert len(their_ids) == 1 and len(my_ids) == 1 and their_ids != my_ids, (their_ids, my_ids)
    theirs, mine = final(theirs, delta), final(mine, delta)
    print(f"\n{len(theirs)} series from the collector, {len(mine)} from trailhead")
    assert sorted(mine) == sorted(theirs), (sorted(set(mine) - set(theirs))[:3], sorted(set(theirs) - set(mine))[:3])
    for key in theirs:
        assert mine[key] == theirs[key], key
    if not delta:
        # A cumulative count is first sent as zero by both, then the total.
        assert any(shape[0] > 1 for (head, _, _), shape in theirs.items() if head[2] == "sum")


def test_delta_points_start_where_the_last_flush_ended(tmp_path, start_trailhead):
    """Two sends a few flushes apart: the second point of a delta series starts at the time
    of the first (both sides), and cumulative ones would restart nowhere."""
    bodies = make_bodies(count=16)
    with pair(tmp_path, start_trailhead, DELTA) as both:
        for _ in range(2):
            before = [len(sink.requests["metrics"]) for _, sink in both]
            for url, _ in both:
                requests.post(f"{url}/v1/traces", json=bodies[0], timeout=10).raise_for_status()
            for (_, sink), start in zip(both, before):
                settled(sink, start, 2)
        for _, sink in both:
            points, _ = points_of(sink)
            chained = [seen for seen in points.values() if len(seen) == 2]
            assert chained, "no series was sent twice"
            for seen in chained:
                seen.sort()
                assert seen[1][1] == seen[0][0], seen


REFUSED = """receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:0
connectors:
  span_metrics:
    dimensions:
      - name: http.method
      - name: span.kind
  servicegraph:
    exponential_histogram_max_size: -3
exporters:
  debug:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [span_metrics, servicegraph]}
    metrics: {receivers: [span_metrics, servicegraph], exporters: [debug]}
"""


def test_refusals_name_the_connector_and_its_line(tmp_path):
    """What the collector refuses (a dimension repeating a built-in one; a negative
    exponential size) is refused at its line, naming the connector."""
    from conftest import BINARY
    import subprocess
    path = tmp_path / "refused.yaml"
    path.write_text(REFUSED)
    done = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert f"{path}:10:" in output and "duplicate dimension name \"span.kind\"" in output, output
    assert f"{path}:12:" in output and "can not be negative" in output, output


def test_servicegraph_pairs_a_request_end_to_end(start_trailhead):
    """servicegraph has no collector peer at v0.161.0 (checked against its sources in unit
    tests); here it runs between real pipelines: a client span and the server span under it,
    sent in two requests, become one edge, sent right after the batch that completed it
    (`metrics_flush_interval: 0`)."""
    sink = Sink()
    try:
        config = pipelines({"http": {"endpoint": "127.0.0.1:0"}}, {}, sink.endpoint)
        config["connectors"] = {"servicegraph": {"metrics_flush_interval": 0, "dimensions": ["deployment"]}}
        config["service"]["pipelines"]["traces"]["exporters"] = ["servicegraph"]
        config["service"]["pipelines"]["metrics"]["receivers"] = ["servicegraph"]
        trailhead = start_trailhead(config)
        trace = random.Random(3).randbytes(16).hex()

        def span(service, kind, span_id, parent=""):
            return {"resourceSpans": [{"resource": {"attributes": kv({"service.name": service, "deployment": "blue"})},
                                       "scopeSpans": [{"spans": [{
                                           "traceId": trace, "spanId": span_id, "parentSpanId": parent, "name": "call",
                                           "kind": kind, "startTimeUnixNano": str(BASE), "endTimeUnixNano": str(BASE + 30_000_000),
                                           "status": {"code": 2 if kind == 2 else 0}}]}]}]}

        for body in [span("frontend", 3, "00000000000000aa"), span("backend", 2, "00000000000000bb", "00000000000000aa")]:
            requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=body, timeout=10).raise_for_status()
        deadline = time.time() + 10
        while not sink.requests["metrics"] and time.time() < deadline:
            time.sleep(0.05)
        assert sink.requests["metrics"], "no service graph metrics"
        metrics = {m.name: m for rm in sink.requests["metrics"][-1].resource_metrics
                   for sm in rm.scope_metrics for m in sm.metrics}
        total = metrics["traces_service_graph_request_total"].sum.data_points[0]
        labels = {a.key: value(a.value) for a in total.attributes}
        assert labels == {"client": "frontend", "server": "backend", "connection_type": "", "failed": True,
                          "client_deployment": "blue", "server_deployment": "blue"}, labels
        assert total.as_int == 1
        assert metrics["traces_service_graph_request_failed_total"].sum.data_points[0].as_int == 1
        server = metrics["traces_service_graph_request_server"]
        assert server.unit == "s" and server.histogram.data_points[0].sum == pytest.approx(0.03)
        trailhead.stop()
    finally:
        sink.stop()
