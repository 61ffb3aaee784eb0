"""Connection lifetimes (issue 20): the gRPC receiver's `keepalive:` keys with grpc-go's
meanings, and the HTTP receivers' idle and age bounds. A bound connection is replaced without
losing a request, so senders spread over replicas an autoscaler adds.

Connections are counted from the server's side: the peer ports of the ESTABLISHED sockets on
trailhead's listening port, read from /proc/net/tcp while the client sends."""

import subprocess
import time

import grpc
import requests
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from conftest import BINARY, gateway_config


def peer_ports(address):
    """Remote ports of the connections established to `address` (127.0.0.1:PORT) now."""
    port = int(address.rsplit(":", 1)[1])
    ports = set()
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "01" and int(local.split(":")[1], 16) == port:
                ports.add(int(remote.split(":")[1], 16))
    return ports


def export_request(n, spans=5):
    """A request of `spans` spans, the n-th of a run (distinct trace IDs)."""
    request = trace_service_pb2.ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id = (n * 1000 + i + 1).to_bytes(16, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
        span.name = f"request-{n}"
        span.kind = trace_pb2.Span.SPAN_KIND_SERVER
    return request


def with_grpc_keepalive(config, keepalive):
    config["receivers"]["otlp"]["protocols"]["grpc"]["keepalive"] = keepalive
    return config


# A grpcio client sending on one channel is moved to new connections by `max_connection_age:
# 1s` (a GOAWAY each time), and every span it sent reaches the sink: none is lost at a switch.
def test_grpc_max_connection_age_replaces_the_connection(sink, start_trailhead):
    config = with_grpc_keepalive(gateway_config(sink.endpoint),
                                 {"server_parameters": {"max_connection_age": "1s"}})
    trailhead = start_trailhead(config)
    address = trailhead.address("otlp (grpc)")
    channel = grpc.insecure_channel(address)
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    seen, sent = set(), 0
    deadline = time.time() + 5
    while time.time() < deadline:
        stub.Export(export_request(sent), timeout=10)  # raises on any failure
        sent += 1
        seen |= peer_ports(address)
        time.sleep(0.02)
    channel.close()
    assert len(seen) >= 3, f"one channel over 5s of max_connection_age 1s used {len(seen)} connections"
    assert sink.wait_for("traces", sent * 5) == sent * 5


# With no age bound the same client keeps one connection: the test above measures the bound.
def test_grpc_without_keepalive_keeps_one_connection(sink, start_trailhead):
    trailhead = start_trailhead(gateway_config(sink.endpoint))
    address = trailhead.address("otlp (grpc)")
    channel = grpc.insecure_channel(address)
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    seen = set()
    for n in range(40):
        stub.Export(export_request(n), timeout=10)
        seen |= peer_ports(address)
        time.sleep(0.05)
    channel.close()
    assert len(seen) == 1


# `max_connection_idle: 1s` closes a connection with no RPC for a second (GOAWAY); the client's
# next RPC opens a new one and succeeds.
def test_grpc_max_connection_idle_closes_an_idle_connection(sink, start_trailhead):
    config = with_grpc_keepalive(gateway_config(sink.endpoint),
                                 {"server_parameters": {"max_connection_idle": "1s"}})
    trailhead = start_trailhead(config)
    address = trailhead.address("otlp (grpc)")
    channel = grpc.insecure_channel(address)
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)
    stub.Export(export_request(0), timeout=10)
    first = peer_ports(address)
    assert len(first) == 1
    deadline = time.time() + 5
    while peer_ports(address) and time.time() < deadline:
        time.sleep(0.1)
    assert not peer_ports(address), "an idle connection outlived max_connection_idle"
    stub.Export(export_request(1), timeout=10)
    assert peer_ports(address) - first
    channel.close()
    assert sink.wait_for("traces", 10) == 10


# A requests.Session on OTLP/HTTP with `max_connection_age: 1s` is told `Connection: close` on
# a response after the age, reconnects, and every request succeeds and arrives.
def test_http_max_connection_age_closes_with_connection_close(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["receivers"]["otlp"]["protocols"]["http"]["max_connection_age"] = "1s"
    trailhead = start_trailhead(config)
    address = trailhead.address("otlp (http)")
    url = trailhead.url("otlp (http)", "/v1/traces")
    session = requests.Session()
    closes, seen, sent = 0, set(), 0
    deadline = time.time() + 4
    while time.time() < deadline:
        response = session.post(url, data=export_request(sent).SerializeToString(),
                                 headers={"Content-Type": "application/x-protobuf"}, timeout=10)
        assert response.status_code == 200, response.text
        sent += 1
        closes += response.headers.get("Connection", "").lower() == "close"
        seen |= peer_ports(address)
        time.sleep(0.02)
    session.close()
    assert closes >= 2, f"{closes} responses said Connection: close in 4s of a 1s age"
    assert len(seen) >= 3
    assert sink.wait_for("traces", sent * 5) == sent * 5


# The collector's `keep_alives_enabled: false` answers every HTTP/1.1 request with
# `Connection: close` (here on Zipkin), and the requests still succeed.
def test_http_keep_alives_disabled(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["receivers"]["zipkin"]["keep_alives_enabled"] = False
    trailhead = start_trailhead(config)
    url = trailhead.url("zipkin", "/api/v2/spans")
    session = requests.Session()
    for n in range(3):
        span = {"traceId": f"{n + 1:032x}", "id": f"{n + 1:016x}", "name": "s", "timestamp": 1, "duration": 1}
        response = session.post(url, json=[span], timeout=10)
        assert response.status_code == 202
        assert response.headers.get("Connection", "").lower() == "close"
    assert sink.wait_for("traces", 3) == 3


# `idle_timeout` closes an idle HTTP/1.1 keep-alive connection; by default it stays open.
def test_http_idle_timeout(sink, start_trailhead):
    config = gateway_config(sink.endpoint)
    config["receivers"]["otlp"]["protocols"]["http"]["idle_timeout"] = "500ms"
    trailhead = start_trailhead(config)
    idle = trailhead.address("otlp (http)")
    kept = trailhead.address("zipkin")  # the default, 1m
    session = requests.Session()
    assert session.post(f"http://{idle}/v1/traces", json={}, timeout=5).status_code == 200
    assert session.post(f"http://{kept}/api/v2/spans", json=[], timeout=5).status_code == 202
    time.sleep(1.5)
    assert not peer_ports(idle)
    assert len(peer_ports(kept)) == 1
    session.close()


# Values grpc-go cannot run with are refused by `trailhead validate`, naming the key and its
# line; zero and negative values with a grpc-go meaning are accepted.
def test_bad_keepalive_values_are_named(tmp_path):
    def validate(server_parameters):
        config = gateway_config("127.0.0.1:1")
        with_grpc_keepalive(config, {"server_parameters": server_parameters})
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        return subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)

    refused = validate({"max_connection_age": "-1m"})
    assert refused.returncode != 0
    assert "receivers.otlp.protocols.grpc.keepalive.server_parameters.max_connection_age" in refused.stderr
    assert "config.yaml:" in refused.stderr and "negative" in refused.stderr
    assert validate({"timeout": "-1s"}).returncode != 0
    accepted = validate({"max_connection_idle": "-1s", "max_connection_age": 0, "max_connection_age_grace": "-1s",
                         "time": "0s", "timeout": "0s"})
    assert accepted.returncode == 0, accepted.stderr


def ping_until_goaway(address, pings, interval=0.01):
    """Opens an HTTP/2 connection with the `h2` library, sends up to `pings` PINGs with no
    stream open, reading after each, and returns the GOAWAY the server sent (None if none)
    and whether the server then closed the connection."""
    import socket

    import h2.config
    import h2.connection
    import h2.events

    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    connection.initiate_connection()
    sock.sendall(connection.data_to_send())
    goaway, closed = None, False

    def read(wait):
        nonlocal goaway, closed
        sock.settimeout(wait)
        try:
            while not closed:
                data = sock.recv(65536)
                if not data:
                    closed = True
                    return
                for event in connection.receive_data(data):
                    if isinstance(event, h2.events.ConnectionTerminated):
                        goaway = event
        except (socket.timeout, TimeoutError):
            pass
        except ConnectionResetError:
            closed = True

    for n in range(pings):
        if goaway is not None or closed:
            break
        connection.ping(n.to_bytes(8, "big"))
        try:
            sock.sendall(connection.data_to_send())
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        read(interval)
    read(1)
    sock.close()
    return goaway, closed


# grpc-go's enforcement policy, by default (min_time 5m, no pings without a stream): a client
# pinging with no RPC in flight gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" at its third
# strike, and the connection is closed.
def test_too_many_pings_get_enhance_your_calm(sink, start_trailhead):
    trailhead = start_trailhead(gateway_config(sink.endpoint))
    goaway, closed = ping_until_goaway(trailhead.address("otlp (grpc)"), pings=6)
    assert goaway is not None, "no GOAWAY after 6 pings in 60 ms"
    assert goaway.error_code == 0xB  # ENHANCE_YOUR_CALM
    assert goaway.additional_data == b"too_many_pings"
    assert closed


# `permit_without_stream: true` with a negative `min_time` (no minimum, as grpc-go reads it)
# lets the same client ping freely; OTLP/HTTP, which has no such policy, never counts pings.
def test_permitted_pings_are_answered(sink, start_trailhead):
    config = with_grpc_keepalive(gateway_config(sink.endpoint),
                                 {"enforcement_policy": {"min_time": "-1s", "permit_without_stream": True}})
    trailhead = start_trailhead(config)
    assert ping_until_goaway(trailhead.address("otlp (grpc)"), pings=10) == (None, False)
    assert ping_until_goaway(trailhead.address("otlp (http)"), pings=10) == (None, False)
