"""OTLP profiles (v1development), trailhead's fourth signal.

Requests are built with the Python `opentelemetry-proto` package's v1development protobufs and
sent over gRPC and HTTP; the peer on the far side is a grpcio server registering the
ProfilesService with raw-bytes handlers (so what arrives can be compared byte for byte), or the
real collector (tests/peers) run with its `service.profilesSupport` feature gate.
"""

import http.client
import json
import signal
import subprocess
import threading
import time
from concurrent import futures

import grpc
import pytest
import requests
import yaml
from google.protobuf import json_format
from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.profiles.v1development import profiles_pb2

from conftest import COLLECTOR, free_port
from test_kubernetes import cluster  # noqa: F401 (the module-scoped API server fixture)

EXPORT = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
VERSION_HEADER = "otlp-profiles-development-version"


class ProfilesSink:
    """A gRPC ProfilesService that keeps each request's raw bytes and metadata."""

    def __init__(self, port=0):
        self.raw = []
        self.metadata = []
        self.lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))

        def export(raw, context):
            with self.lock:
                self.raw.append(raw)
                self.metadata.append(dict(context.invocation_metadata()))
            return profiles_service_pb2.ExportProfilesServiceResponse().SerializeToString()

        handler = grpc.unary_unary_rpc_method_handler(export)  # no (de)serializers: bytes
        service = "opentelemetry.proto.collector.profiles.v1development.ProfilesService"
        self.server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service, {"Export": handler})])
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def wait_for(self, count, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if len(self.raw) >= count:
                    return list(self.raw)
            time.sleep(0.05)
        with self.lock:
            return list(self.raw)


@pytest.fixture
def profiles_sink():
    sink = ProfilesSink()
    yield sink
    sink.server.stop(0)


def profiles_request(service="lessons", samples=3, functions=("main", "solve")):
    """A CPU profile: `samples` samples on one stack of `functions`, with a dictionary."""
    strings = ["", "cpu", "nanoseconds", *functions, "lessons.py"]
    dictionary = profiles_pb2.ProfilesDictionary(
        string_table=strings,
        function_table=[profiles_pb2.Function()] + [
            profiles_pb2.Function(name_strindex=strings.index(f), filename_strindex=len(strings) - 1) for f in functions],
        location_table=[profiles_pb2.Location()] + [
            profiles_pb2.Location(lines=[profiles_pb2.Line(function_index=i + 1, line=10 * (i + 1))]) for i in range(len(functions))],
        stack_table=[profiles_pb2.Stack(), profiles_pb2.Stack(location_indices=list(range(1, len(functions) + 1)))],
        mapping_table=[profiles_pb2.Mapping()],
        link_table=[profiles_pb2.Link()],
        attribute_table=[profiles_pb2.KeyValueAndUnit()],
    )
    profile = profiles_pb2.Profile(
        sample_type=profiles_pb2.ValueType(type_strindex=1, unit_strindex=2),
        samples=[profiles_pb2.Sample(stack_index=1, values=[1_000_000 * (i + 1)]) for i in range(samples)],
        time_unix_nano=1_700_000_000_000_000_000, duration_nano=10_000_000_000,
        profile_id=bytes(range(16)),
    )
    resource = profiles_pb2.ResourceProfiles(scope_profiles=[profiles_pb2.ScopeProfiles(profiles=[profile])])
    resource.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    return profiles_service_pb2.ExportProfilesServiceRequest(resource_profiles=[resource], dictionary=dictionary)


def otlp_json(request):
    """A request in OTLP/JSON: protobuf's JSON mapping, with ids in hex as OTLP/JSON has them
    (the mapping writes base64)."""
    body = json_format.MessageToDict(request)
    for resource in body["resourceProfiles"]:
        for scope in resource["scopeProfiles"]:
            for profile, sent in zip(scope["profiles"], request.resource_profiles[0].scope_profiles[0].profiles):
                profile["profileId"] = sent.profile_id.hex()
    return body


def trailhead_config(exporter_endpoint, processors=(), **exporter):
    return {
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}, "http": {"endpoint": "127.0.0.1:0"}}}},
        "processors": {p: {"auth_type": "kubeconfig"} if p == "k8sattributes" else {} for p in processors},
        "exporters": {"otlp/pyroscope": {"endpoint": exporter_endpoint, "tls": {"insecure": True}, **exporter}},
        "service": {"pipelines": {"profiles": {"receivers": ["otlp"], "processors": list(processors),
                                               "exporters": ["otlp/pyroscope"]}}},
    }


def grpc_export(trailhead, request_bytes, metadata=()):
    """Sends raw bytes to ProfilesService/Export; returns the grpc.RpcError or None."""
    with grpc.insecure_channel(trailhead.address("otlp (grpc)")) as channel:
        call = channel.unary_unary(EXPORT)  # bytes in, bytes out
        try:
            call(request_bytes, metadata=list(metadata), timeout=10)
        except grpc.RpcError as e:
            return e
    return None


def post(trailhead, body, content_type="application/x-protobuf", headers=None, source_ip="127.0.0.1"):
    host, port = trailhead.address("otlp (http)").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), source_address=(source_ip, 0), timeout=10)
    connection.request("POST", "/v1development/profiles", body, {"Content-Type": content_type, **(headers or {})})
    response = connection.getresponse()
    status, text = response.status, response.read()
    connection.close()
    return status, text


# The Python protobufs over gRPC, HTTP/protobuf and HTTP/JSON arrive as sent, one request per
# request, with the version trailhead accepted them at; samples are counted as items.
def test_python_protobufs_pass_through_unchanged(profiles_sink, start_trailhead):
    trailhead = start_trailhead(trailhead_config(f"127.0.0.1:{profiles_sink.port}"))
    sent = [profiles_request("a", samples=2), profiles_request("b", samples=3), profiles_request("c", samples=4)]
    assert grpc_export(trailhead, sent[0].SerializeToString(), [(VERSION_HEADER, "1")]) is None
    assert post(trailhead, sent[1].SerializeToString())[0] == 200
    status, body = post(trailhead, json.dumps(otlp_json(sent[2])), "application/json")
    assert status == 200, body
    raw = profiles_sink.wait_for(3)
    assert len(raw) == 3
    received = {}
    for data in raw:
        request = profiles_service_pb2.ExportProfilesServiceRequest.FromString(data)
        received[request.resource_profiles[0].resource.attributes[0].value.string_value] = (data, request)
    assert received["a"][0] == sent[0].SerializeToString()  # gRPC: the very bytes
    assert received["b"][0] == sent[1].SerializeToString()  # HTTP/protobuf: the very bytes
    assert received["c"][1] == sent[2]  # HTTP/JSON: decoded and encoded again, the same message
    assert all(m.get(VERSION_HEADER) == "1" for m in profiles_sink.metadata)
    assert trailhead.metric("trailhead_receiver_accepted_items_total", signal="profiles") == 9
    assert trailhead.metric("trailhead_exporter_sent_items_total", signal="profiles") == 9
    # Bytes too: what arrived is what was accepted and what was sent, request by request.
    size = sum(len(data) for data in raw)
    assert trailhead.metric("trailhead_receiver_accepted_bytes_total", signal="profiles") == size
    assert trailhead.metric("trailhead_exporter_sent_bytes_total", signal="profiles") == size


# Requests queued together are never merged: each keeps its own dictionary, even when the
# exporter batches (a long timeout and a large batch would merge spans).
def test_requests_are_never_merged(profiles_sink, start_trailhead):
    config = trailhead_config(f"127.0.0.1:{profiles_sink.port}",
                              batch={"timeout": "2s", "min_size": 1000, "max_size": 10000})
    trailhead = start_trailhead(config)
    sent = [profiles_request(f"svc{i}", samples=1 + i, functions=(f"f{i}", f"g{i}")) for i in range(4)]
    for request in sent:
        assert post(trailhead, request.SerializeToString())[0] == 200
    raw = profiles_sink.wait_for(4)
    assert sorted(raw) == sorted(r.SerializeToString() for r in sent)


# A request over the exporter's byte bound is refused before it is accepted (413 /
# INVALID_ARGUMENT, naming the bound), not cut and not accepted only to be dropped; the next
# one still goes. Nothing is counted as failed: nothing accepted was lost.
def test_oversize_request_is_refused_not_cut(profiles_sink, start_trailhead):
    config = trailhead_config(f"127.0.0.1:{profiles_sink.port}", batch={"max_request_bytes": 2000})
    trailhead = start_trailhead(config)
    big = profiles_request("big", samples=300)
    small = profiles_request("small", samples=1)
    assert len(big.SerializeToString()) > 2000 > len(small.SerializeToString())
    status, body = post(trailhead, big.SerializeToString())
    assert status == 413 and b"max_request_bytes is 2000" in body, (status, body)
    error = grpc_export(trailhead, big.SerializeToString())
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "never split" in error.details()
    assert post(trailhead, small.SerializeToString())[0] == 200
    assert profiles_sink.wait_for(1) == [small.SerializeToString()]
    assert trailhead.metric("trailhead_exporter_send_failed_items_total", signal="profiles") == 0


# Garbage, a framed request that does not parse, and an unsupported version are refused with
# INVALID_ARGUMENT / 400 and a message saying what; nothing reaches the exporter.
def test_bad_requests_are_refused(profiles_sink, start_trailhead):
    trailhead = start_trailhead(trailhead_config(f"127.0.0.1:{profiles_sink.port}"))
    good = profiles_request().SerializeToString()
    not_utf8 = good + b"\x12\x03\x2a\x01\xff"  # a dictionary string that is not UTF-8

    error = grpc_export(trailhead, b"\xff\xff\xff")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "profiles request" in error.details()
    error = grpc_export(trailhead, not_utf8)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "ExportProfilesServiceRequest" in error.details()
    error = grpc_export(trailhead, good, [(VERSION_HEADER, "2")])
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "unsupported otlp-profiles-development-version `2`" in error.details()

    status, body = post(trailhead, b"\xff\xff\xff")
    assert status == 400
    status, body = post(trailhead, good, headers={"OTLP-Profiles-Development-Version": "x"})
    assert status == 400 and b"not a positive integer" in body
    status, body = post(trailhead, "{\"resourceProfiles\": [}", "application/json")
    assert status == 400 and b"invalid OTLP/JSON profiles request" in body
    assert trailhead.metric("trailhead_receiver_malformed_requests_total", signal="profiles") == 6
    time.sleep(0.3)
    assert profiles_sink.raw == []


# The persistent queue keeps profiles requests whole: killed with the peer down, trailhead
# sends each request as it was, one by one, after its next start.
def test_persistent_queue_keeps_requests_whole(tmp_path, start_trailhead):
    port = free_port()  # the peer's address, with nothing listening yet
    config = trailhead_config(f"127.0.0.1:{port}", sending_queue={"storage": "file_storage/queue"},
                              retry_on_failure={"initial_interval": "100ms", "max_interval": "500ms"})
    config["extensions"] = {"file_storage/queue": {"directory": str(tmp_path / "queue"), "create_directory": True}}
    config["service"]["extensions"] = ["file_storage/queue"]
    first = start_trailhead(config)
    sent = [profiles_request(f"queued{i}", samples=i + 1, functions=(f"f{i}",)) for i in range(3)]
    for request in sent:
        assert post(first, request.SerializeToString())[0] == 200
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    sink = ProfilesSink(port)
    try:
        start_trailhead(config)
        raw = sink.wait_for(3)
        time.sleep(0.3)
        assert sorted(sink.raw) == sorted(r.SerializeToString() for r in sent), len(raw)
    finally:
        sink.server.stop(0)


def collector_config(tmp_path, ports, trailhead_grpc):
    """The collector peer: `otlp/in` (HTTP) writes to direct.json and forwards to trailhead;
    `otlp/back` (gRPC, trailhead's peer) writes to via.json."""
    files = {name: {"path": str(tmp_path / f"{name}.json"), "flush_interval": "100ms"} for name in ("direct", "via")}
    return {
        "receivers": {"otlp/in": {"protocols": {"http": {"endpoint": f"127.0.0.1:{ports['in']}"}}},
                      "otlp/back": {"protocols": {"grpc": {"endpoint": f"127.0.0.1:{ports['back']}"}}}},
        "exporters": {"otlp/trailhead": {"endpoint": trailhead_grpc, "tls": {"insecure": True}},
                      "file/direct": files["direct"], "file/via": files["via"]},
        "service": {"pipelines": {"profiles/in": {"receivers": ["otlp/in"], "exporters": ["file/direct", "otlp/trailhead"]},
                                  "profiles/back": {"receivers": ["otlp/back"], "exporters": ["file/via"]}},
                    "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}}},
    }


def read_lines(path, count, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        lines = [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.1)
    return lines


# Both ways with the real collector (profiles behind its feature gate): the collector sends to
# trailhead, trailhead sends to the collector, and what arrives is what the collector alone
# writes.
def test_collector_interop_both_ways(tmp_path, start_trailhead):
    if not COLLECTOR.exists():
        pytest.fail(f"{COLLECTOR} is missing: run `make peers`")
    ports = {"in": free_port(), "back": free_port()}
    trailhead = start_trailhead(trailhead_config(f"127.0.0.1:{ports['back']}"))
    (tmp_path / "collector.yaml").write_text(yaml.safe_dump(collector_config(tmp_path, ports, trailhead.address("otlp (grpc)"))))
    log = open(tmp_path / "collector.log", "w")
    collector = subprocess.Popen([str(COLLECTOR), "--config", str(tmp_path / "collector.yaml"),
                                  "--feature-gates=service.profilesSupport"], stdout=subprocess.DEVNULL, stderr=log)
    try:
        body = profiles_request("peer", samples=5).SerializeToString()
        deadline = time.time() + 30
        while True:
            try:
                response = requests.post(f"http://127.0.0.1:{ports['in']}/v1development/profiles", data=body,
                                         headers={"Content-Type": "application/x-protobuf"}, timeout=2)
                break
            except requests.ConnectionError:
                assert collector.poll() is None and time.time() < deadline, (tmp_path / "collector.log").read_text()
                time.sleep(0.1)
        assert response.status_code == 200, response.text
        direct = read_lines(tmp_path / "direct.json", 1)
        via = read_lines(tmp_path / "via.json", 1)
        assert len(direct) == 1 and via == direct, (tmp_path / "collector.log").read_text()
        assert trailhead.metric("trailhead_receiver_accepted_items_total", signal="profiles") == 5
    finally:
        collector.terminate()
        collector.wait(10)


# k8sattributes enriches each profile's resource from the pod cache, k8s.pod.ip stamped, as it
# does spans; everything else in the request is byte for byte as sent.
def test_kubernetes_attributes_at_the_resource_level(cluster, profiles_sink, start_trailhead):
    uid = cluster.pod("lessons-0", "mathtrail", "127.0.0.23")
    config = trailhead_config(f"127.0.0.1:{profiles_sink.port}", processors=["k8sattributes"])
    config["processors"]["k8sattributes"]["wait_for_metadata"] = True
    trailhead = start_trailhead(config, extra_env={"KUBECONFIG": str(cluster.kubeconfig)})
    sent = profiles_request("lessons", samples=4)
    assert post(trailhead, sent.SerializeToString(), source_ip="127.0.0.23")[0] == 200
    [raw] = profiles_sink.wait_for(1)
    received = profiles_service_pb2.ExportProfilesServiceRequest.FromString(raw)
    attributes = {a.key: a.value.string_value for a in received.resource_profiles[0].resource.attributes}
    assert attributes["k8s.pod.ip"] == "127.0.0.23"
    assert attributes["k8s.pod.name"] == "lessons-0"
    assert attributes["k8s.pod.uid"] == uid
    assert attributes["k8s.namespace.name"] == "mathtrail"
    # Without the added attributes the request is the one sent, and its dictionary and scopes
    # are the sent bytes verbatim.
    for resource in received.resource_profiles:
        kept = [a for a in resource.resource.attributes if not a.key.startswith("k8s.")]
        del resource.resource.attributes[:]
        resource.resource.attributes.extend(kept)
    assert received.SerializeToString() == sent.SerializeToString()
    assert sent.dictionary.SerializeToString() in raw
    assert sent.resource_profiles[0].scope_profiles[0].SerializeToString() in raw


# The live tap covers profiles: a profiles pipeline is tapped like the others, each batch as OTLP
# JSON with its samples as the item count.
def test_profiles_are_tapped(profiles_sink, start_trailhead):
    trailhead = start_trailhead(trailhead_config(f"127.0.0.1:{profiles_sink.port}"))
    url = trailhead.url("metrics", "/tap?pipeline=profiles")
    with requests.get(url, stream=True, timeout=20) as tap:
        lines = tap.iter_lines()
        assert json.loads(next(lines))["point"] == "to the exporters"
        assert post(trailhead, profiles_request("tapped", samples=5).SerializeToString())[0] == 200
        record = json.loads(next(lines))
    assert record["signal"] == "profiles" and record["items"] == 5, record
    (resource,) = record["data"]["resourceProfiles"]
    assert resource["resource"]["attributes"][0]["value"]["stringValue"] == "tapped"
