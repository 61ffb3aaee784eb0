"""Jaeger in: the same batches through the collector's `jaeger` receiver (the peer, v0.161.0)
and through trailhead's, on all four protocols, must come out as the same OTLP.

Clients: OpenTelemetry's Jaeger thrift exporter (PyPI `opentelemetry-exporter-jaeger-thrift`)
for the agent's compact UDP and the collector's HTTP thrift; its generated `Agent` client with
the Apache `thrift` library's TBinaryProtocol for binary UDP. OpenTelemetry's Jaeger gRPC
exporter would downgrade the shared venv's protobuf (it pins protobuf 3/4), and grpcio-tools
would upgrade its setuptools, so gRPC requests are built from jaeger-idl's `model.proto`
messages declared here as descriptors (same field numbers and types; enums as int32, which is
their wire form) and sent with grpcio.

Normalised before comparing, and why: requests are flattened to one (resource, scope, span)
line per span and sorted, because trailhead's exporter batches requests together and the
collector regroups protobuf batches by iterating a Go map (random resource order); attribute
lists are compared in order. Nothing else is changed.
"""

import difflib
import json
import socket
import time

import grpc
import pytest
import requests
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, duration_pb2, message_factory, timestamp_pb2
from google.protobuf.json_format import MessageToDict
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from conftest import Sink, free_port, run_collector

# The Jaeger exporter (its last release, 1.21) imports the names of its environment variables
# from the SDK, which has since dropped them; they are the variables' names, given back here
# so that the real exporter imports against the current SDK.
import opentelemetry.sdk.environment_variables as _sdk_variables  # noqa: E402

for _name in ["AGENT_HOST", "AGENT_PORT", "AGENT_SPLIT_OVERSIZED_BATCHES", "ENDPOINT", "PASSWORD", "TIMEOUT", "USER"]:
    setattr(_sdk_variables, f"OTEL_EXPORTER_JAEGER_{_name}", f"OTEL_EXPORTER_JAEGER_{_name}")

PROTOCOLS = ["grpc", "thrift_http", "thrift_compact", "thrift_binary"]


@pytest.fixture
def pair(tmp_path, start_trailhead):
    """trailhead and the collector, each with a jaeger receiver on all four protocols, each
    forwarding OTLP to its own sink."""
    ours, theirs = Sink(), Sink()
    our_ports = {p: free_port() for p in PROTOCOLS}
    their_ports = {p: free_port() for p in PROTOCOLS}

    def receiver(ports):
        return {"jaeger": {"protocols": {p: {"endpoint": f"127.0.0.1:{ports[p]}"} for p in PROTOCOLS}}}

    trailhead = start_trailhead({
        "receivers": receiver(our_ports),
        "exporters": {"otlp/sink": {"endpoint": ours.endpoint, "tls": {"insecure": True}, "batch": {"timeout": "20ms"}}},
        "service": {"pipelines": {"traces": {"receivers": ["jaeger"], "exporters": ["otlp/sink"]}}},
    })
    http_port = free_port()
    collector_config = {
        "receivers": {**receiver(their_ports), "otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{http_port}"}}}},
        "exporters": {"otlp/sink": {"endpoint": theirs.endpoint, "tls": {"insecure": True}}},
        # otlp only so that run_collector can tell it is up.
        "service": {"pipelines": {"traces": {"receivers": ["jaeger", "otlp"], "exporters": ["otlp/sink"]}}},
    }
    collector = run_collector(collector_config, tmp_path, http_port)
    yield trailhead, our_ports, their_ports, ours, theirs
    collector.terminate()
    collector.wait(10)
    ours.stop()
    theirs.stop()


def flatten(sink, count, timeout=20):
    """One canonical line per span: its resource, scope and itself, sorted."""
    assert sink.wait_for("traces", count, timeout) == count
    lines = []
    for request in sink.requests["traces"]:
        for rs in request.resource_spans:
            resource = MessageToDict(rs.resource)
            for ss in rs.scope_spans:
                scope = MessageToDict(ss.scope)
                for span in ss.spans:
                    line = {"resource": resource, "scope": scope, "span": MessageToDict(span)}
                    lines.append(json.dumps(line, sort_keys=True))
    return sorted(lines)


def assert_same(ours, theirs, count):
    their_lines = flatten(theirs, count)
    our_lines = flatten(ours, count)
    pretty = lambda lines: [row for line in lines for row in json.dumps(json.loads(line), indent=1, sort_keys=True).splitlines()]
    diff = "\n".join(difflib.unified_diff(pretty(their_lines), pretty(our_lines), "collector", "trailhead", lineterm=""))
    assert our_lines == their_lines, diff


class Keep(SpanExporter):
    """Keeps the SDK's finished spans, so each exporter can send the very same ones."""

    def __init__(self):
        self.spans = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def sdk_spans():
    keep = Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "checkout", "k8s.pod.name": "checkout-0"}))
    provider.add_span_processor(SimpleSpanProcessor(keep))
    tracer = provider.get_tracer("mathtrail.checkout", "1.2.3")
    with tracer.start_as_current_span("POST /pay", kind=SpanKind.SERVER,
                                      attributes={"http.status_code": 503, "retries": 2, "ratio": 0.5, "ok": False}) as root:
        root.add_event("charge", {"amount": 12})
        with tracer.start_as_current_span("db", kind=SpanKind.CLIENT, links=[Link(root.get_span_context(), {"why": "x"})]) as child:
            child.set_status(Status(StatusCode.ERROR, "timeout"))
        with tracer.start_as_current_span("ok-call", kind=SpanKind.PRODUCER) as done:
            done.set_status(Status(StatusCode.OK))
    provider.shutdown()
    return keep.spans


# The OpenTelemetry Jaeger exporter to the agent (compact UDP) and to the collector (HTTP
# thrift), the same spans to both receivers.
@pytest.mark.parametrize("protocol", ["thrift_compact", "thrift_http"])
def test_thrift_exporter_matches_the_collector(protocol, pair):
    from opentelemetry.exporter.jaeger.thrift import JaegerExporter
    trailhead, our_ports, their_ports, ours, theirs = pair
    spans = sdk_spans()
    for ports in (our_ports, their_ports):
        if protocol == "thrift_http":
            exporter = JaegerExporter(collector_endpoint=f"http://127.0.0.1:{ports[protocol]}/api/traces")
        else:
            exporter = JaegerExporter(agent_host_name="127.0.0.1", agent_port=ports[protocol])
        assert exporter.export(spans) == SpanExportResult.SUCCESS
    assert_same(ours, theirs, len(spans))


def thrift_batch():
    """A batch as the exporter translates it, with process tags it does not send (hostname,
    jaeger.version, typed values) added with the same generated thrift types."""
    from opentelemetry.exporter.jaeger.thrift.gen.jaeger import ttypes
    from opentelemetry.exporter.jaeger.thrift.translate import ThriftTranslator, Translate
    spans = sdk_spans()
    jaeger_spans = Translate(spans)._translate(ThriftTranslator(max_tag_value_length=None))
    tags = [ttypes.Tag(key="hostname", vType=ttypes.TagType.STRING, vStr="node-1"),
            ttypes.Tag(key="jaeger.version", vType=ttypes.TagType.STRING, vStr="Python-4.8"),
            ttypes.Tag(key="cores", vType=ttypes.TagType.LONG, vLong=8),
            ttypes.Tag(key="blob", vType=ttypes.TagType.BINARY, vBinary=b"\x00\x01")]
    # A span whose parent is only a FOLLOWS_FROM reference, and a 64-bit trace id.
    jaeger_spans.append(ttypes.Span(traceIdLow=77, traceIdHigh=0, spanId=78, parentSpanId=0, operationName="async",
                                    flags=1, startTime=1_700_000_000_000_000, duration=5,
                                    references=[ttypes.SpanRef(refType=ttypes.SpanRefType.FOLLOWS_FROM,
                                                               traceIdLow=77, traceIdHigh=0, spanId=70)],
                                    tags=[ttypes.Tag(key="error", vType=ttypes.TagType.BOOL, vBool=True),
                                          ttypes.Tag(key="otel.status_description", vType=ttypes.TagType.STRING, vStr="bad"),
                                          ttypes.Tag(key="w3c.tracestate", vType=ttypes.TagType.STRING, vStr="a=b")]))
    batch = ttypes.Batch(process=ttypes.Process(serviceName="checkout", tags=tags), spans=jaeger_spans)
    return batch, len(jaeger_spans)


def binary_agent_packet(batch):
    from opentelemetry.exporter.jaeger.thrift.gen.agent import Agent
    from thrift.protocol import TBinaryProtocol
    from thrift.transport import TTransport
    buffer = TTransport.TMemoryBuffer()
    Agent.Client(TBinaryProtocol.TBinaryProtocol(buffer)).emitBatch(batch)
    return buffer.getvalue()


# thrift_binary over UDP: Agent.emitBatch encoded by the Apache thrift library's
# TBinaryProtocol, with process tags (hostname → host.name, jaeger.version → exporter version).
def test_thrift_binary_matches_the_collector(pair):
    trailhead, our_ports, their_ports, ours, theirs = pair
    batch, count = thrift_batch()
    packet = binary_agent_packet(batch)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for ports in (our_ports, their_ports):
            udp.sendto(packet, ("127.0.0.1", ports["thrift_binary"]))
    assert_same(ours, theirs, count)
    resource = ours.requests["traces"][0].resource_spans[0].resource
    keys = [a.key for a in resource.attributes]
    assert "host.name" in keys and "opencensus.exporterversion" in keys and "hostname" not in keys


def jaeger_proto():
    """jaeger-idl's api_v2 messages (model.proto, collector.proto) as protobuf classes."""
    f = descriptor_pb2.FileDescriptorProto(name="trailhead_test_jaeger_api_v2.proto", package="jaeger.api_v2", syntax="proto3",
                                           dependency=["google/protobuf/timestamp.proto", "google/protobuf/duration.proto"])
    T = descriptor_pb2.FieldDescriptorProto
    one, many = T.LABEL_OPTIONAL, T.LABEL_REPEATED
    messages = {
        "KeyValue": [("key", 1, T.TYPE_STRING, one, None), ("v_type", 2, T.TYPE_INT32, one, None),
                     ("v_str", 3, T.TYPE_STRING, one, None), ("v_bool", 4, T.TYPE_BOOL, one, None),
                     ("v_int64", 5, T.TYPE_INT64, one, None), ("v_float64", 6, T.TYPE_DOUBLE, one, None),
                     ("v_binary", 7, T.TYPE_BYTES, one, None)],
        "Log": [("timestamp", 1, T.TYPE_MESSAGE, one, ".google.protobuf.Timestamp"),
                ("fields", 2, T.TYPE_MESSAGE, many, ".jaeger.api_v2.KeyValue")],
        "SpanRef": [("trace_id", 1, T.TYPE_BYTES, one, None), ("span_id", 2, T.TYPE_BYTES, one, None),
                    ("ref_type", 3, T.TYPE_INT32, one, None)],
        "Process": [("service_name", 1, T.TYPE_STRING, one, None), ("tags", 2, T.TYPE_MESSAGE, many, ".jaeger.api_v2.KeyValue")],
        "Span": [("trace_id", 1, T.TYPE_BYTES, one, None), ("span_id", 2, T.TYPE_BYTES, one, None),
                 ("operation_name", 3, T.TYPE_STRING, one, None), ("references", 4, T.TYPE_MESSAGE, many, ".jaeger.api_v2.SpanRef"),
                 ("flags", 5, T.TYPE_UINT32, one, None), ("start_time", 6, T.TYPE_MESSAGE, one, ".google.protobuf.Timestamp"),
                 ("duration", 7, T.TYPE_MESSAGE, one, ".google.protobuf.Duration"),
                 ("tags", 8, T.TYPE_MESSAGE, many, ".jaeger.api_v2.KeyValue"), ("logs", 9, T.TYPE_MESSAGE, many, ".jaeger.api_v2.Log"),
                 ("process", 10, T.TYPE_MESSAGE, one, ".jaeger.api_v2.Process")],
        "Batch": [("spans", 1, T.TYPE_MESSAGE, many, ".jaeger.api_v2.Span"), ("process", 2, T.TYPE_MESSAGE, one, ".jaeger.api_v2.Process")],
        "PostSpansRequest": [("batch", 1, T.TYPE_MESSAGE, one, ".jaeger.api_v2.Batch")],
    }
    for name, fields in messages.items():
        message = f.message_type.add(name=name)
        for field, number, kind, label, type_name in fields:
            added = message.field.add(name=field, number=number, type=kind, label=label)
            if type_name:
                added.type_name = type_name
    assert timestamp_pb2 and duration_pb2  # imported so the default pool has them
    pool = descriptor_pool.Default()
    pool.Add(f)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"jaeger.api_v2.{name}")) for name in messages}


_PROTO = {}


def post_spans_request():
    """A batch with what the protobuf path maps: scope tags, trace state, a span with its own
    process (regrouped), status from otel.status_code and from http.status_code, a log as an
    event, links, a 64-bit trace id."""
    if not _PROTO:
        _PROTO.update(jaeger_proto())
    P = _PROTO
    kv = P["KeyValue"]
    trace = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
    start = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=123_456_789)
    spans = [
        P["Span"](trace_id=trace, span_id=bytes.fromhex("b7ad6b7169203331"), operation_name="GET /cart", flags=1,
                  start_time=start, duration=duration_pb2.Duration(nanos=1_500_000),
                  tags=[kv(key="span.kind", v_str="server"), kv(key="otel.scope.name", v_str="cart"),
                        kv(key="otel.scope.version", v_str="0.9"), kv(key="http.status_code", v_type=2, v_int64=404),
                        kv(key="w3c.tracestate", v_str="vendor=1"), kv(key="weight", v_type=3, v_float64=2.5)],
                  logs=[P["Log"](timestamp=start, fields=[kv(key="event", v_str="cache miss"), kv(key="key", v_str="u1")])]),
        P["Span"](trace_id=trace, span_id=bytes.fromhex("00f067aa0ba902b7"), operation_name="SELECT", flags=0,
                  start_time=start, duration=duration_pb2.Duration(nanos=300),
                  references=[P["SpanRef"](trace_id=trace, span_id=bytes.fromhex("b7ad6b7169203331"), ref_type=0),
                              P["SpanRef"](trace_id=bytes.fromhex("00000000000000aa"), span_id=bytes.fromhex("00000000000000bb"), ref_type=1)],
                  tags=[kv(key="span.kind", v_str="client"), kv(key="otel.status_code", v_str="error"),
                        kv(key="otel.status_description", v_str="deadlock"), kv(key="raw", v_type=4, v_binary=b"\x01")],
                  process=P["Process"](service_name="db-proxy", tags=[kv(key="hostname", v_str="node-2")])),
        P["Span"](trace_id=bytes.fromhex("00000000000000cc"), span_id=bytes.fromhex("00000000000000dd"), operation_name="tick",
                  start_time=start, tags=[kv(key="otel.scope.name", v_str="cron")]),
    ]
    batch = P["Batch"](process=P["Process"](service_name="cart", tags=[kv(key="jaeger.version", v_str="Go-2.30")]), spans=spans)
    return P["PostSpansRequest"](batch=batch), len(spans)


def post_spans(port, request):
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/jaeger.api_v2.CollectorService/PostSpans",
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=lambda b: b)
        return call(request, timeout=5)


# gRPC PostSpans: the protobuf path's regrouping, scopes, trace state and status.
def test_grpc_matches_the_collector(pair):
    trailhead, our_ports, their_ports, ours, theirs = pair
    request, count = post_spans_request()
    for ports in (our_ports, their_ports):
        assert post_spans(ports["grpc"], request) == b""
    assert_same(ours, theirs, count)
    resources = {a.value.string_value for r in ours.requests["traces"] for rs in r.resource_spans
                 for a in rs.resource.attributes if a.key == "service.name"}
    assert resources == {"cart", "db-proxy"}


# Bad input: the same answers as the collector for a body that is not thrift and for a
# content type it does not take; a packet that does not decode is counted, and the next
# good one still arrives.
def test_bad_input(pair):
    trailhead, our_ports, their_ports, ours, theirs = pair
    for body, content_type in [(b"\x0c\x00\x01garbage", "application/x-thrift"), (b"{}", "application/json")]:
        answers = []
        for ports in (our_ports, their_ports):
            response = requests.post(f"http://127.0.0.1:{ports['thrift_http']}/api/traces", data=body,
                                     headers={"Content-Type": content_type}, timeout=5)
            answers.append(response.status_code)
            assert response.text.strip(), "the refusal says why"
        assert answers == [400, 400]
    assert requests.get(f"http://127.0.0.1:{our_ports['thrift_http']}/api/traces", timeout=5).status_code == 405
    with grpc.insecure_channel(f"127.0.0.1:{our_ports['grpc']}") as channel:
        call = channel.unary_unary("/jaeger.api_v2.CollectorService/PostSpans")
        with pytest.raises(grpc.RpcError) as refused:
            call(b"\x0a\x05\x0a\x03\x0a\x01\x01", timeout=5)  # a span whose trace id is 1 byte long
        assert refused.value.code() == grpc.StatusCode.INTERNAL
    batch, count = thrift_batch()
    packet = binary_agent_packet(batch)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for garbage in [b"", b"\xff" * 40, packet[: len(packet) // 2]]:
            udp.sendto(garbage, ("127.0.0.1", our_ports["thrift_binary"]))
            udp.sendto(garbage, ("127.0.0.1", our_ports["thrift_compact"]))
        udp.sendto(packet, ("127.0.0.1", our_ports["thrift_binary"]))
    assert ours.wait_for("traces", count) == count
    deadline = time.time() + 10
    while trailhead.metric("trailhead_receiver_malformed_requests_total", receiver="jaeger") < 9 and time.time() < deadline:
        time.sleep(0.1)
    # 2 HTTP bodies, the gRPC request, 6 packets (an empty datagram is a packet too).
    assert trailhead.metric("trailhead_receiver_malformed_requests_total", receiver="jaeger") == 9
    assert trailhead.process.poll() is None


# What the collector's Validate refuses, trailhead refuses at load, naming the receiver.
@pytest.mark.parametrize("body, message", [
    ({"protocols": {}}, "must specify at least one protocol"),
    ({"protocols": {"grpc": {"endpoint": "127.0.0.1:0"}}}, "invalid port number for the gRPC endpoint"),
    ({"protocols": {"thrift_compact": {"endpoint": "127.0.0.1:6831"}}, "remote_sampling": {"host_endpoint": "0.0.0.0:5778"}}, "jaegerremotesampling"),
    ({"protocols": {"thrift_binary": {"workers": 0}}}, "number of processors must be greater than 0"),
])
def test_refused_configs(body, message, tmp_path):
    import subprocess
    from conftest import BINARY, COLLECTOR
    config = {"receivers": {"jaeger": body}, "exporters": {"debug": {}},
              "service": {"pipelines": {"traces": {"receivers": ["jaeger"], "exporters": ["debug"]}}}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    mine = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert mine.returncode != 0 and message in mine.stdout + mine.stderr, mine.stdout + mine.stderr
    if "workers" not in json.dumps(body):  # the collector fails on workers only when it starts
        theirs = subprocess.run([str(COLLECTOR), "validate", "--config", str(path)], capture_output=True, text=True)
        assert theirs.returncode != 0 and message in theirs.stdout + theirs.stderr, theirs.stderr
