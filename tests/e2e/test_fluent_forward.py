"""The fluent_forward receiver side by side with the collector's (tests/peers/bin/otelcol-peer):
the same Forward protocol frames go to both, both forward OTLP to a sink of their own, and the
log records must be equal.

Frames come from real clients: `fluent-logger` for Python (Message mode, EventTime, integer
times; it has no ack option) and `fluent-logger` for Node (tests/peers/fluent-node: Message,
PackedForward and CompressedPackedForward, each with `requireAckResponse`, so every record must
be acknowledged); and from frames built with `msgpack` for what neither client writes (Forward
mode, a `str` carrier, several gzip members, a tag in the record).

Normalised before comparing, and why: records are compared as a sorted list (each gateway
batches frames into requests its own way), and map entries by key (the collector reads nested
msgpack maps into a Go map, whose order is random).
"""

import gzip
import json
import socket
import struct
import subprocess
import threading
import time

import msgpack
import pytest
import yaml
from fluent.sender import EventTime, FluentSender
from google.protobuf.json_format import MessageToDict

from conftest import BINARY, REPO, Sink, free_port, run_collector

# One record of every msgpack type the mapping distinguishes.
TYPED_RECORD = {
    "message": "hello from fluent-logger",
    "int": -42,
    "big": 2**63 + 5,  # above int64: kept as its digits
    "float": 1.25,
    "bool": True,
    "none": None,
    "bytes": b"raw bytes",
    "list": [1, "two", 3.0, None],
    "map": {"b": 1, "a": {"nested": True}},
}


def entries(*pairs):
    """PackedForward's entries: [time, record] arrays, concatenated."""
    return b"".join(msgpack.packb([t, r]) for t, r in pairs)


def event_time(seconds, nanos):
    return msgpack.ExtType(0, struct.pack(">II", seconds, nanos))


FRAMES = [
    # Forward mode, integer times, a chunk.
    (["raw.forward", [[1700000001, {"log": "fwd one", "n": 1}], [1700000002, {"log": "fwd two", "fluent.tag": "mine"}]],
      {"chunk": "Zm9yd2FyZA=="}], "Zm9yd2FyZA=="),
    # PackedForward as bin, EventTime, no chunk.
    (["raw.packed", entries((event_time(1700000003, 5), {"message": "packed"}), (1700000004, {"k": "v"}))], None),
    # CompressedPackedForward: two gzip members, and a chunk.
    (["raw.gzip", gzip.compress(entries((1700000005, {"message": "gz one"}))) + gzip.compress(entries((1700000006, {"message": "gz two"}))),
      {"compressed": "gzip", "chunk": "Z3ppcA=="}], "Z3ppcA=="),
    # Message mode with a chunk.
    (["raw.message", event_time(1700000007, 999999999), {"message": "msg", "level": "warn"}, {"chunk": "bWVzc2FnZQ=="}], "bWVzc2FnZQ=="),
]
NODE_MODES = ["Message", "PackedForward", "CompressedPackedForward"]
FRAME_RECORDS = 2 + 2 + 2 + 1
# fluent-logger's three (Python), three per Node mode, then the frames'.
RECORDS = 3 + 3 * len(NODE_MODES) + FRAME_RECORDS
NODE_PEER = REPO / "tests" / "peers" / "fluent-node"


def collector_config(port, http_port, sink):
    return {
        "receivers": {
            "fluent_forward": {"endpoint": f"127.0.0.1:{port}"},
            "otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{http_port}"}}},
        },
        "exporters": {"otlp/sink": {"endpoint": sink.endpoint, "tls": {"insecure": True}}},
        "service": {"pipelines": {"logs": {"receivers": ["fluent_forward", "otlp"], "exporters": ["otlp/sink"]}}},
    }


def trailhead_config(sink, kind="fluent_forward"):
    return {
        "receivers": {kind: {"endpoint": "127.0.0.1:0"}},
        "exporters": {"otlp/sink": {"endpoint": sink.endpoint, "tls": {"insecure": True}, "batch": {"timeout": "20ms"}}},
        "service": {"pipelines": {"logs": {"receivers": [kind], "exporters": ["otlp/sink"]}}},
    }


@pytest.fixture
def side_by_side(tmp_path, start_trailhead):
    """(trailhead, its sink, the collector's port, its sink)."""
    trailhead_sink, collector_sink = Sink(), Sink()
    port, http_port = free_port(), free_port()
    collector = run_collector(collector_config(port, http_port, collector_sink), tmp_path, http_port)
    trailhead = start_trailhead(trailhead_config(trailhead_sink))
    yield trailhead, trailhead_sink, port, collector_sink
    collector.terminate()
    collector.wait(10)
    trailhead_sink.stop()
    collector_sink.stop()


def host_port(address):
    host, port = address.rsplit(":", 1)
    return host, int(port)


def send_with_fluent_logger(host, port):
    sender = FluentSender("app", host=host, port=port, nanosecond_precision=True)
    try:
        # Fixed times, so both gateways get the same records.
        assert sender.emit_with_time("typed", EventTime(1700000000, 123456789), TYPED_RECORD), sender.last_error
        assert sender.emit_with_time("int-time", 1700000000, {"log": "integer time"}), sender.last_error
        assert sender.emit_with_time(None, EventTime(1700000000, 1), {"message": "no label"}), sender.last_error
    finally:
        sender.close()


def send_with_node_acks(host, port):
    """fluent-logger for Node, each mode, waiting for every ack (its script fails otherwise)."""
    if not (NODE_PEER / "node_modules" / "fluent-logger").exists():
        pytest.fail(f"{NODE_PEER}/node_modules is missing: run `make peers`")
    for mode in NODE_MODES:
        sent = subprocess.run(["node", str(NODE_PEER / "send.js"), host, str(port), mode],
                              capture_output=True, text=True, timeout=30)
        assert sent.returncode == 0, (mode, sent.stdout, sent.stderr)
        assert json.loads(sent.stdout) == {"acked": 3, "errors": []}


def read_ack(connection):
    """The one msgpack map the server answers with."""
    unpacker = msgpack.Unpacker(raw=False)
    connection.settimeout(10)
    while True:
        data = connection.recv(4096)
        assert data, "the connection closed without an ack"
        unpacker.feed(data)
        for message in unpacker:
            return message


def is_closed(connection):
    """Whether the server closes `connection` (a FIN, or a reset) within 10 s."""
    connection.settimeout(10)
    try:
        return connection.recv(4096) == b""
    except ConnectionResetError:
        return True


def send_frames(host, port):
    with socket.create_connection((host, port), timeout=10) as connection:
        for frame, chunk in FRAMES:
            connection.sendall(msgpack.packb(frame, use_bin_type=True))
            if chunk is not None:
                assert read_ack(connection) == {"ack": chunk}


def records(sink, count):
    assert sink.wait_for("logs", count) == count, f"{sink.items('logs')} log records, not {count}"
    with sink.lock:
        requests = list(sink.requests["logs"])
    found = []
    for request in requests:
        for resource in request.resource_logs:
            assert not resource.resource.attributes, resource.resource
            for scope in resource.scope_logs:
                found.extend(normalise(MessageToDict(r)) for r in scope.log_records)
    return sorted(found, key=lambda r: json.dumps(r, sort_keys=True))


def normalise(value):
    """Map entries sorted by key, at every depth (Go's maps have no order)."""
    if isinstance(value, dict):
        value = {k: normalise(v) for k, v in value.items()}
        if "values" in value and all(isinstance(v, dict) and "key" in v for v in value["values"]):
            value["values"] = sorted(value["values"], key=lambda kv: kv["key"])
        if "attributes" in value:
            value["attributes"] = sorted(value["attributes"], key=lambda kv: kv["key"])
        return value
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def test_every_mode_maps_to_the_same_otlp_logs_as_the_collector(side_by_side):
    trailhead, trailhead_sink, collector_port, collector_sink = side_by_side
    for host, port in [host_port(trailhead.address("fluent_forward")), ("127.0.0.1", collector_port)]:
        send_with_fluent_logger(host, port)
        send_with_node_acks(host, port)
        send_frames(host, port)
    ours, theirs = records(trailhead_sink, RECORDS), records(collector_sink, RECORDS)
    assert ours == theirs
    # The mapping holds what it should (equal to the collector's, so both are checked).
    typed = next(r for r in ours if r.get("body") == {"stringValue": "hello from fluent-logger"})
    attributes = {kv["key"]: kv["value"] for kv in typed["attributes"]}
    assert typed["timeUnixNano"] == "1700000000123456789"
    assert attributes["fluent.tag"] == {"stringValue": "app.typed"}
    assert attributes["int"] == {"intValue": "-42"}
    assert attributes["big"] == {"stringValue": str(2**63 + 5)}
    assert attributes["none"] == {}


def test_the_deprecated_name_is_read(sink, start_trailhead):
    trailhead = start_trailhead(trailhead_config(sink, kind="fluentforward"))
    send_with_fluent_logger(*host_port(trailhead.address("fluentforward")))
    assert sink.wait_for("logs", 3) == 3


def test_garbage_closes_only_its_connection(side_by_side):
    trailhead, trailhead_sink, collector_port, _ = side_by_side
    for host, port in [host_port(trailhead.address("fluent_forward")), ("127.0.0.1", collector_port)]:
        with socket.create_connection((host, port), timeout=10) as good, \
                socket.create_connection((host, port), timeout=10) as bad:
            bad.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert is_closed(bad), "the connection that sent garbage is closed"
            frame, chunk = FRAMES[0]
            good.sendall(msgpack.packb(frame, use_bin_type=True))
            assert read_ack(good) == {"ack": chunk}
    assert trailhead.process.poll() is None
    assert trailhead.metric("trailhead_receiver_malformed_requests_total") >= 1
    assert trailhead_sink.wait_for("logs", 2) == 2


def test_a_frame_cut_short_is_not_acked_and_not_delivered(sink, start_trailhead):
    trailhead = start_trailhead(trailhead_config(sink))
    host, port = host_port(trailhead.address("fluent_forward"))
    frame, _ = FRAMES[0]
    encoded = msgpack.packb(frame, use_bin_type=True)
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(encoded[:-3])
    # A whole frame after it, on a new connection, arrives alone.
    send_frames(host, port)
    assert sink.wait_for("logs", FRAME_RECORDS) == FRAME_RECORDS
    time.sleep(0.5)
    assert sink.items("logs") == FRAME_RECORDS


def test_heartbeats_are_echoed_over_udp(side_by_side):
    trailhead, _, collector_port, _ = side_by_side
    for host, port in [host_port(trailhead.address("fluent_forward")), ("127.0.0.1", collector_port)]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.settimeout(5)
            udp.sendto(b"\x00", (host, port))
            answer, _ = udp.recvfrom(16)
            assert answer == b"\x00"


def test_a_unix_socket(tmp_path, sink, start_trailhead):
    path = tmp_path / "fluent.sock"
    config = trailhead_config(sink)
    config["receivers"]["fluent_forward"]["endpoint"] = f"unix://{path}"
    trailhead = start_trailhead(config)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(10)
        connection.connect(str(path))
        frame, chunk = FRAMES[0]
        connection.sendall(msgpack.packb(frame, use_bin_type=True))
        assert read_ack(connection) == {"ack": chunk}
    assert sink.wait_for("logs", 2) == 2
    assert trailhead.stop() == 0
    assert not path.exists(), "the socket file is removed at shutdown"


def test_a_missing_endpoint_is_refused(tmp_path, sink):
    config = trailhead_config(sink)
    config["receivers"]["fluent_forward"] = None
    path = tmp_path / "trailhead.yaml"
    path.write_text(yaml.safe_dump(config))
    checked = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True, timeout=30)
    assert checked.returncode != 0
    assert "endpoint" in checked.stderr + checked.stdout


# A stalled sink fills the exporter's queue: a chunked frame is then refused by closing its
# connection unacknowledged (the sender resends it), and a frame without `chunk`, which cannot
# be refused to its sender, waits for room instead of being dropped. Once the sink recovers,
# it gets exactly the acknowledged records and the unchunked one: nothing acked is lost.
def test_a_full_pipeline_leaves_chunks_unacked_and_keeps_unchunked_frames(sink, start_trailhead):
    release = threading.Event()
    sink.behaviour = lambda signal, request, context: release.wait(120) and None
    config = trailhead_config(sink)
    config["exporters"]["otlp/sink"].update(timeout="120s", sending_queue={"num_consumers": 1, "queue_size": 2},
                                            batch={"timeout": "5ms"})
    trailhead = start_trailhead(config)
    host, port = host_port(trailhead.address("fluent_forward"))
    acked, refused = [], []
    for i in range(50):
        chunk = f"chunk-{i}"
        with socket.create_connection((host, port), timeout=10) as connection:
            connection.sendall(msgpack.packb(["full", 1700000000 + i, {"message": chunk}, {"chunk": chunk}]))
            connection.settimeout(10)
            try:
                answer = connection.recv(4096)
            except ConnectionResetError:
                answer = b""
        if answer:
            assert msgpack.unpackb(answer) == {"ack": chunk}
            acked.append(chunk)
        else:
            refused.append(chunk)
            break
    assert acked and refused, (acked, refused)
    unchunked = socket.create_connection((host, port), timeout=10)
    unchunked.sendall(msgpack.packb(["full", 1700000100, {"message": "no chunk"}]))
    time.sleep(2)  # longer than a chunk waits for room: this one keeps waiting
    release.set()
    expected = sorted(acked + ["no chunk"])
    assert sink.wait_for("logs", len(expected), timeout=30) == len(expected)
    time.sleep(0.5)
    with sink.lock:
        bodies = sorted(r.body.string_value for q in sink.requests["logs"] for rl in q.resource_logs
                        for sl in rl.scope_logs for r in sl.log_records)
    assert bodies == expected
    unchunked.close()
