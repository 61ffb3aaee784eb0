"""The `loadbalancing` exporter end to end: a front-tier trailhead routing spans by trace ID to
backends it finds with the `static` resolver, or the `k8s` resolver following EndpointSlices in
the real kube-apiserver (`cluster.py`). Backends are sampling-tier trailheads or gRPC sinks on
127.0.0.x, one address per backend and one port for all, as pods behind a headless Service are.

Each test that beats the collector says which of its behaviours would fail it.
"""

import itertools
import json
import threading
import time
from collections import defaultdict
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

from cluster import Cluster
from conftest import Sink, Trailhead, free_port


class AddressSink:
    """A gRPC trace sink on `host:port` (conftest's Sink binds 127.0.0.1 only). `failing`, while
    true, answers UNAVAILABLE."""

    def __init__(self, host, port):
        self.requests = []
        self.refused = 0
        self.failing = False
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        sink = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                if sink.failing:
                    with sink.lock:
                        sink.refused += 1
                    context.abort(grpc.StatusCode.UNAVAILABLE, "backend restarting")
                with sink.lock:
                    sink.requests.append(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        self.server.add_insecure_port(f"{host}:{port}")
        self.server.start()

    def spans(self):
        with self.lock:
            return [s for r in self.requests for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]

    def stop(self):
        self.server.stop(0)


def span(trace, index):
    return trace_pb2.Span(trace_id=trace.to_bytes(16, "big"), span_id=(trace * 16 + index + 1).to_bytes(8, "big"),
                          name=f"t{trace}s{index}", kind=trace_pb2.Span.SPAN_KIND_SERVER,
                          start_time_unix_nano=1, end_time_unix_nano=2)


def request(spans):
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[trace_pb2.ResourceSpans(
        scope_spans=[trace_pb2.ScopeSpans(spans=spans)])])


def send(stub, spans):
    """Sends until accepted: a refusal (a full queue) is the sender's to retry, as an SDK does."""
    for _ in range(200):
        try:
            stub.Export(request(spans), timeout=10)
            return
        except grpc.RpcError as e:
            if e.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                raise
            time.sleep(0.05)
    raise AssertionError("the front tier kept refusing")


def owners(sinks):
    """trace -> {sink index: span count}, and every span name received (with repeats)."""
    by_trace = defaultdict(lambda: defaultdict(int))
    names = []
    for index, sink in enumerate(sinks):
        for s in sink.spans():
            by_trace[int.from_bytes(s.trace_id, "big")][index] += 1
            names.append(s.name)
    return by_trace, names


def wait_for_spans(sinks, count, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline and sum(len(s.spans()) for s in sinks) < count:
        time.sleep(0.05)
    return sum(len(s.spans()) for s in sinks)


def front_config(resolver, **otlp):
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}},
        "exporters": {"loadbalancing": {
            "routing_key": "traceID",
            "protocol": {"otlp": {"tls": {"insecure": True}, "timeout": "2s", "batch": {"timeout": "20ms"},
                                  "retry_on_failure": {"initial_interval": "100ms", "max_interval": "200ms",
                                                       "max_elapsed_time": "0s"}, **otlp}},
            "resolver": resolver,
        }},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["loadbalancing"]}}},
    }


def backends_changed(front, count, timeout=20):
    """Waits until the front tier logs a member list of `count` backends."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in list(front.logs):
            if entry.get("message") == "loadbalancing backends changed" and entry.get("backends", "").count(":") == count:
                return True
        time.sleep(0.05)
    raise AssertionError(f"no change to {count} backends in the front tier's logs")


def stub_for(front):
    return trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(front.address("otlp (grpc)")))


# The static resolver: every trace's spans, sent in separate requests, land on one backend, each
# once, and all three backends get a share.
def test_static_resolver_keeps_each_trace_on_one_backend(start_trailhead):
    sinks = [Sink() for _ in range(3)]
    try:
        front = start_trailhead(front_config({"static": {"hostnames": [s.endpoint for s in sinks]}}))
        stub = stub_for(front)
        for index in range(3):
            for trace in range(100):
                send(stub, [span(trace, index)])
        assert wait_for_spans(sinks, 300) == 300
        by_trace, names = owners(sinks)
        assert len(names) == len(set(names)) == 300
        assert all(len(where) == 1 for where in by_trace.values())
        shares = [sum(1 for where in by_trace.values() if i in where) for i in range(3)]
        assert all(share >= 15 for share in shares), shares
        assert front.stop() == 0, "the backends' queues drain at shutdown"
    finally:
        for s in sinks:
            s.stop()


# A backend answers UNAVAILABLE for a while: only its own share is retried. The others receive
# each span exactly once; the collector's retry re-sends the whole fan-out (contrib #50437), so
# they would see duplicates. Nothing is lost once the backend is back.
def test_a_retry_goes_only_to_the_backend_that_failed(start_trailhead):
    port = free_port()
    sinks = [AddressSink(f"127.0.0.{k}", port) for k in (2, 3, 4)]
    sinks[2].failing = True
    try:
        hostnames = [f"127.0.0.{k}:{port}" for k in (2, 3, 4)]
        front = start_trailhead(front_config({"static": {"hostnames": hostnames}}))
        stub = stub_for(front)
        for trace in range(150):
            send(stub, [span(trace, i) for i in range(2)])
        time.sleep(1.5)
        assert sinks[2].refused > 0, "the failing backend was asked"
        healthy = [len(s.spans()) for s in sinks[:2]]
        sinks[2].failing = False
        assert wait_for_spans(sinks, 300) == 300
        time.sleep(0.5)
        by_trace, names = owners(sinks)
        assert len(names) == len(set(names)) == 300, "no duplicates"
        assert [len(s.spans()) for s in sinks[:2]] == healthy, "the healthy backends got nothing again"
        assert all(len(where) == 1 for where in by_trace.values())
    finally:
        for s in sinks:
            s.stop()


# A backend's queue on disk (`protocol.otlp.sending_queue.storage`): with the backend down, the
# front tier is killed with SIGKILL holding its share; started again, it delivers all of it.
def test_a_backends_persistent_queue_survives_kill_9(tmp_path):
    port = free_port()
    config = front_config({"static": {"hostnames": [f"127.0.0.1:{port}"]}},
                          sending_queue={"storage": "file_storage/queue"})
    config["extensions"] = {"file_storage/queue": {"directory": str(tmp_path / "queue"), "create_directory": True}}
    config["service"]["extensions"] = ["file_storage/queue"]
    front = Trailhead(tmp_path, config)
    try:
        stub = stub_for(front)
        for trace in range(40):
            send(stub, [span(trace, 0), span(trace, 1)])
        time.sleep(1)
    finally:
        front.process.kill()
        front.process.wait()
    sink = Sink(port=port)
    try:
        front = Trailhead(tmp_path, config)
        assert sink.wait_for("traces", 80) == 80
        names = [s.name for s in sink.spans()]
        assert len(set(names)) == 80
        assert front.stop() == 0
    finally:
        front.stop()
        sink.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


def slices(cluster, port, hosts, all_hosts):
    """One EndpointSlice per backend of Service `samplers`; those not in `hosts` are deleted.
    The API server refuses loopback addresses in IPv4 slices, so these are FQDN slices whose
    names are the addresses written out (the resolver, like the collector's, takes an address
    as it is written)."""
    for host in all_hosts:
        name = "samplers-" + host.replace(".", "-")
        if host in hosts:
            cluster.apply({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": "default", "labels": {"kubernetes.io/service-name": "samplers"}},
                "addressType": "FQDN", "ports": [{"name": "otlp", "port": port, "protocol": "TCP"}],
                "endpoints": [{"addresses": [host], "conditions": {"ready": True}}],
            })
        else:
            cluster.kubectl("delete", "endpointslice", name, "-n", "default", "--ignore-not-found")


class Traffic:
    """Sends step k holding span 0 of trace k, span 1 of trace k-1 … span 3 of trace k-3, so
    every trace is spread over four requests and some are always in flight. Stopping sends the
    last traces' remaining spans: `traces` traces of four spans each in all."""

    def __init__(self, stub):
        self.stub = stub
        self.traces = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            self.step(self.traces, new=True)
            self.traces += 1
            time.sleep(0.01)
        for k in range(self.traces, self.traces + 3):
            self.step(k, new=False)

    def step(self, k, new):
        send(self.stub, [span(k - i, i) for i in range(4) if 0 <= k - i < self.traces + new])

    def stop(self):
        self.stopping.set()
        self.thread.join(60)


def sampler_config(host, port, sink):
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": f"{host}:{port}"}}}},
        "exporters": {"otlp": {"endpoint": sink.endpoint, "tls": {"insecure": True}, "batch": {"timeout": "20ms"}}},
        "service": {"pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["otlp"]}}},
    }


# The sampling tier scales 2 → 3 → 2 while traces flow, through EndpointSlices in the real API
# server and five trailhead processes (a front tier and three samplers). No span is lost or
# duplicated; a trace is split across backends only if it was in flight when its owner changed,
# and the consistent hash moves only the keys the new backend takes (a modulo hash would move
# two thirds and split most traces in flight).
def test_scaling_the_sampling_tier_loses_nothing(tmp_path, cluster):
    port = free_port()
    hosts = [f"127.0.0.{k}" for k in (2, 3, 4)]
    sinks = [Sink() for _ in hosts]
    started = []
    try:
        for k, (host, sink) in enumerate(zip(hosts, sinks)):
            (tmp_path / f"s{k}").mkdir()
            started.append(Trailhead(tmp_path / f"s{k}", sampler_config(host, port, sink)))
        slices(cluster, port, hosts[:2], hosts)
        (tmp_path / "front").mkdir()
        front = Trailhead(tmp_path / "front", front_config({"k8s": {"service": "samplers.default", "ports": [port]}}),
                          extra_env={"KUBECONFIG": str(cluster.kubeconfig)})
        started.append(front)
        backends_changed(front, 2)
        traffic = Traffic(stub_for(front))
        time.sleep(1.5)
        at_scale_up = [traffic.traces]
        slices(cluster, port, hosts, hosts)
        backends_changed(front, 3)
        at_scale_up.append(traffic.traces)
        time.sleep(1.5)
        at_scale_down = [traffic.traces]
        front.logs.clear()
        slices(cluster, port, hosts[:2], hosts)
        backends_changed(front, 2)
        at_scale_down.append(traffic.traces)
        time.sleep(1.5)
        traffic.stop()
        sent = 4 * traffic.traces
        received = wait_for_spans(sinks, sent, timeout=60)
        time.sleep(1)
        by_trace, names = owners(sinks)
        duplicates = len(names) - len(set(names))
        split = sorted(t for t, where in by_trace.items() if len(where) > 1)
        report = {"traces": traffic.traces, "spans_sent": sent, "spans_received": len(names), "duplicates": duplicates,
                  "split_traces": len(split), "split": split, "scale_up_at": at_scale_up, "scale_down_at": at_scale_down,
                  "per_backend": [len(s.spans()) for s in sinks]}
        print("loadbalancing scale report:", json.dumps(report))
        assert received == sent and len(set(names)) == sent, report
        assert duplicates == 0, report
        assert len(sinks[2].spans()) > 0, "the third backend took its share while it was a member"
        # Only traces in flight while a change was on its way (from the slice's update to the
        # front tier logging its new members, plus four requests) may split.
        in_flight = lambda t, change: change[0] - 4 <= t <= change[1] + 4
        assert all(in_flight(t, at_scale_up) or in_flight(t, at_scale_down) for t in split), report
        assert len(split) <= 30, report
    finally:
        for t in started:
            t.stop()
        for s in sinks:
            s.stop()
        slices(cluster, port, [], hosts)


# A backend dies with data queued for it (it answers UNAVAILABLE), then leaves the Service.
# What was queued and retrying for it is re-routed to the remaining backends, not dropped: the
# collector shuts the departed backend's exporter down and loses its queue (contrib #35378).
def test_data_for_a_backend_that_left_is_rerouted(tmp_path, cluster):
    port = free_port()
    hosts = [f"127.0.0.{k}" for k in (2, 3, 4)]
    sinks = [AddressSink(host, port) for host in hosts]
    sinks[2].failing = True
    front = None
    try:
        slices(cluster, port, hosts, hosts)
        front = Trailhead(tmp_path, front_config({"k8s": {"service": "samplers", "ports": [port]}}),
                          extra_env={"KUBECONFIG": str(cluster.kubeconfig)})
        backends_changed(front, 3)
        stub = stub_for(front)
        for trace in range(150):
            send(stub, [span(trace, i) for i in range(2)])
        time.sleep(1)
        stuck = 300 - len(sinks[0].spans()) - len(sinks[1].spans())
        assert stuck > 0 and sinks[2].refused > 0, "some traces belong to the failing backend"
        front.logs.clear()
        slices(cluster, port, hosts[:2], hosts)
        backends_changed(front, 2)
        assert wait_for_spans(sinks[:2], 300) == 300, "everything reaches the backends left"
        _, names = owners(sinks)
        assert len(names) == len(set(names)) == 300
        assert sinks[2].spans() == []
        print("loadbalancing re-route report:", json.dumps({"rerouted_spans": stuck}))
    finally:
        if front:
            front.stop()
        for s in sinks:
            s.stop()
        slices(cluster, port, [], hosts)


@pytest.fixture
def own_hosts(tmp_path, monkeypatch):
    """trailhead started from now on sees `hosts` (a file the test rewrites) as its /etc/hosts,
    bind-mounted in a mount namespace of its own: a name with several addresses, and addresses
    that change, with no DNS server and nothing changed on the machine."""
    import conftest
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    wrapper = tmp_path / "trailhead-own-hosts"
    wrapper.write_text(f"#!/bin/sh\nexec unshare -m sh -c 'mount --bind {hosts} /etc/hosts && exec {conftest.BINARY} \"$@\"' sh \"$@\"\n")
    wrapper.chmod(0o755)
    monkeypatch.setattr(conftest, "BINARY", wrapper)
    return hosts


def addresses_changed(trailhead, count, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for entry in list(trailhead.logs):
            if entry.get("message") == "otlp exporter addresses changed" and entry.get("addresses", "").count(".") == 3 * count:
                return
        time.sleep(0.05)
    raise AssertionError(f"the otlp exporter never used {count} addresses")


# The plain otlp exporter with `endpoint: dns:///samplers:PORT` and `balancer_name: round_robin`
# spreads sends over every address of the name within ±15%, follows the name as addresses are
# added and removed, and loses nothing when an address goes away with its peer.
def test_otlp_exporter_round_robins_over_a_dns_name(tmp_path, own_hosts):
    port = free_port()
    sinks = [AddressSink(f"127.0.0.{k}", port) for k in (2, 3, 4)]
    front = None
    try:
        own_hosts.write_text("127.0.0.1 localhost\n127.0.0.2 samplers\n127.0.0.3 samplers\n")
        config = front_config({"static": {"hostnames": ["unused"]}})
        config["exporters"] = {"otlp": {"endpoint": f"dns:///samplers:{port}", "balancer_name": "round_robin",
                                        "tls": {"insecure": True}, "batch": {"send_batch_size": 1, "timeout": "1ms"},
                                        "retry_on_failure": {"initial_interval": "50ms", "max_interval": "100ms"}}}
        config["service"]["pipelines"]["traces"]["exporters"] = ["otlp"]
        front = Trailhead(tmp_path, config)
        addresses_changed(front, 2)
        stub = stub_for(front)
        for trace in range(300):
            send(stub, [span(trace, 0)])
        assert wait_for_spans(sinks, 300) == 300
        two = [len(s.spans()) for s in sinks]
        assert all(abs(n - 150) <= 150 * 0.15 for n in two[:2]), two
        front.logs.clear()
        own_hosts.write_text("127.0.0.1 localhost\n127.0.0.2 samplers\n127.0.0.3 samplers\n127.0.0.4 samplers\n")
        addresses_changed(front, 3)
        for trace in range(300, 600):
            send(stub, [span(trace, 0)])
        assert wait_for_spans(sinks, 600) == 600
        three = [len(s.spans()) - before for s, before in zip(sinks, two)]
        assert all(abs(n - 100) <= 100 * 0.15 for n in three), three
        # 127.0.0.2 goes away, peer and address: its sends fail over to the others.
        sinks[0].stop()
        front.logs.clear()
        own_hosts.write_text("127.0.0.1 localhost\n127.0.0.3 samplers\n127.0.0.4 samplers\n")
        for trace in range(600, 700):
            send(stub, [span(trace, 0)])
        assert wait_for_spans(sinks, 700) == 700
        addresses_changed(front, 2)
        _, names = owners(sinks)
        assert len(set(names)) == 700
        print("dns round robin report:", json.dumps({"two": two, "three": three,
                                                     "after_removal": [len(s.spans()) for s in sinks]}))
    finally:
        if front:
            front.stop()
        for s in sinks:
            s.stop()


# The dns resolver (`resolver.dns`) follows a name's addresses: a third address added to the
# name joins the ring, and every trace still lands on one backend, each span once.
def test_dns_resolver_follows_the_name(tmp_path, own_hosts):
    port = free_port()
    sinks = [AddressSink(f"127.0.0.{k}", port) for k in (2, 3, 4)]
    front = None
    try:
        own_hosts.write_text("127.0.0.1 localhost\n127.0.0.2 samplers\n127.0.0.3 samplers\n")
        resolver = {"dns": {"hostname": "samplers", "port": str(port), "interval": "200ms", "timeout": "1s"}}
        front = Trailhead(tmp_path, front_config(resolver))
        backends_changed(front, 2)
        stub = stub_for(front)
        for trace in range(300):
            send(stub, [span(trace, 0)])
        front.logs.clear()
        own_hosts.write_text("127.0.0.1 localhost\n127.0.0.2 samplers\n127.0.0.3 samplers\n127.0.0.4 samplers\n")
        backends_changed(front, 3)
        for trace in range(300):
            send(stub, [span(trace, 1)])
        assert wait_for_spans(sinks, 600) == 600
        by_trace, names = owners(sinks)
        assert len(set(names)) == 600
        assert sinks[2].spans(), "the new address took a share"
        moved = [t for t, where in by_trace.items() if len(where) > 1]
        # The traces that straddle the change are split only if the new backend took them.
        assert all(2 in by_trace[t] for t in moved)
        assert len(moved) <= 150, len(moved)  # about a third; hashing modulo n would move two thirds
        print("loadbalancing dns report:", json.dumps({"moved_traces": len(moved), "of": 300}))
    finally:
        if front:
            front.stop()
        for s in sinks:
            s.stop()


# Metrics routed by `routing_key: metric` and `streamID`, over the static resolver and three sinks.

KINDS = ("gauge", "sum", "histogram", "exponential_histogram", "summary")


def metrics_config(sinks, routing_key):
    config = front_config({"static": {"hostnames": [s.endpoint for s in sinks]}})
    config["exporters"]["loadbalancing"]["routing_key"] = routing_key
    config["service"]["pipelines"] = {"metrics": {"receivers": ["otlp"], "exporters": ["loadbalancing"]}}
    return config


def metric_request(round_, clock, sent):
    """Two resources, each with 30 metrics (six of each kind) of four attribute sets, each set
    written in an order that changes with `round_`. Every point's time is `clock`'s next value,
    so it is told apart after the split; `sent[time]` is the point's (service, name, kind,
    attributes)."""
    def attrs(pairs):
        return [common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v)) for k, v in pairs]

    sets = [[("host", f"h{h}"), ("route", f"/r{h % 2}")] for h in range(4)]
    resources = []
    for service in ("checkout", "cart"):
        metrics = []
        for index in range(30):
            kind = KINDS[index % 5]
            name = f"{kind}.{index}"
            metric = metrics_pb2.Metric(name=name, unit="ms", description="d")
            data = getattr(metric, kind)
            if kind in ("sum", "histogram", "exponential_histogram"):
                data.aggregation_temporality = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
            if kind == "sum":
                data.is_monotonic = True
            for pairs in sets:
                ordered = pairs if round_ % 2 == 0 else list(reversed(pairs))
                point = data.data_points.add(attributes=attrs(ordered), time_unix_nano=next(clock))
                if kind in ("gauge", "sum"):
                    point.as_int = 1
                sent[point.time_unix_nano] = (service, name, kind, tuple(sorted(pairs)))
            metrics.append(metric)
        resources.append(metrics_pb2.ResourceMetrics(
            resource=resource_pb2.Resource(attributes=attrs([("service.name", service)])),
            scope_metrics=[metrics_pb2.ScopeMetrics(scope=common_pb2.InstrumentationScope(name="lib", version="1"),
                                                    metrics=metrics, schema_url="scope-schema")],
            schema_url="resource-schema"))
    return metrics_service_pb2.ExportMetricsServiceRequest(resource_metrics=resources)


def received_points(sinks):
    """Every data point the sinks got, as (sink index, service, name, kind, attributes, time),
    checking on the way that its resource, scope and metric fields came along."""
    points = []
    for index, sink in enumerate(sinks):
        with sink.lock:
            requests = list(sink.requests["metrics"])
        for request in requests:
            for rm in request.resource_metrics:
                assert rm.schema_url == "resource-schema"
                service = {kv.key: kv.value.string_value for kv in rm.resource.attributes}["service.name"]
                for sm in rm.scope_metrics:
                    assert (sm.scope.name, sm.scope.version, sm.schema_url) == ("lib", "1", "scope-schema")
                    for m in sm.metrics:
                        assert (m.unit, m.description) == ("ms", "d")
                        kind = m.WhichOneof("data")
                        data = getattr(m, kind)
                        if kind == "sum":
                            assert data.is_monotonic
                        if kind in ("sum", "histogram", "exponential_histogram"):
                            assert data.aggregation_temporality == 2
                        for p in data.data_points:
                            pairs = tuple(sorted((kv.key, kv.value.string_value) for kv in p.attributes))
                            points.append((index, service, m.name, kind, pairs, p.time_unix_nano))
    return points


def route_metrics(start_trailhead, routing_key):
    """Sends five rounds of metric_request through a front tier routing by `routing_key` to three
    sinks; returns what was sent and what each sink received."""
    sinks = [Sink() for _ in range(3)]
    try:
        front = start_trailhead(metrics_config(sinks, routing_key))
        stub = metrics_service_pb2_grpc.MetricsServiceStub(grpc.insecure_channel(front.address("otlp (grpc)")))
        clock, sent = itertools.count(1), {}
        for round_ in range(5):
            stub.Export(metric_request(round_, clock, sent), timeout=10)
        deadline = time.time() + 30
        while time.time() < deadline and sum(s.items("metrics") for s in sinks) < len(sent):
            time.sleep(0.05)
        assert front.stop() == 0
        return sent, received_points(sinks)
    finally:
        for s in sinks:
            s.stop()


def assert_each_point_once(sent, points):
    """All points arrived, none twice, each under the resource, name, kind and attributes it was sent with."""
    assert len(sent) == 2 * 30 * 4 * 5
    times = [p[5] for p in points]
    assert len(times) == len(set(times)) == len(sent), (len(times), len(set(times)), len(sent))
    assert all(sent[p[5]] == p[1:5] for p in points)


# `routing_key: metric`: every point of a metric name, from either resource and every request,
# reaches one sink, all of them once, each with its resource, scope and metric fields; the
# 30 names spread over more than one sink.
def test_routing_by_metric_keeps_each_name_on_one_sink(start_trailhead):
    sent, points = route_metrics(start_trailhead, "metric")
    assert_each_point_once(sent, points)
    sinks_of = defaultdict(set)
    for sink, _service, name, *_ in points:
        sinks_of[name].add(sink)
    assert len(sinks_of) == 30
    assert all(len(where) == 1 for where in sinks_of.values()), sinks_of
    assert len({sink for where in sinks_of.values() for sink in where}) > 1


# `routing_key: streamID`: every point of a stream (resource, scope, metric, attributes, the
# attributes written in either order) reaches one sink, all of them once; streams spread over
# more than one sink, and a metric's streams are split between sinks.
def test_routing_by_stream_keeps_each_stream_on_one_sink(start_trailhead):
    sent, points = route_metrics(start_trailhead, "streamID")
    assert_each_point_once(sent, points)
    sinks_of = defaultdict(set)
    for sink, service, name, kind, pairs, _ in points:
        sinks_of[(service, name, kind, pairs)].add(sink)
    assert len(sinks_of) == 2 * 30 * 4
    assert all(len(where) == 1 for where in sinks_of.values()), sinks_of
    assert len({sink for where in sinks_of.values() for sink in where}) > 1
    metric_sinks = defaultdict(set)
    for (service, name, _, _), where in sinks_of.items():
        metric_sinks[(service, name)] |= where
    assert any(len(where) > 1 for where in metric_sinks.values()), "a metric's streams were split"


# `metric` and `streamID` route metrics only: with one on a traces pipeline trailhead does not
# start, and says which key and why, as the collector refuses to create that exporter.
def test_metric_keys_are_refused_on_traces(tmp_path):
    sink = Sink()
    front = None
    try:
        config = front_config({"static": {"hostnames": [sink.endpoint]}})
        config["exporters"]["loadbalancing"]["routing_key"] = "streamID"
        front = Trailhead(tmp_path, config)
        assert front.process.wait(20) != 0
        text = "\n".join(map(str, front.logs))
        assert "routing_key: `streamID` applies to metrics only, not traces" in text, text
    finally:
        if front:
            front.stop()
        sink.stop()
