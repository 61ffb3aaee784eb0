"""Continuous profiling: with `service.telemetry.profiles.endpoint`, trailhead pushes CPU
profiles to Pyroscope. Grafana Pyroscope itself (AGPL, a Go server) is not run here: a small
HTTP server takes its place and speaks the one call the agent makes, Pyroscope's documented
`POST /push.v1.PusherService/Push` (a gzip'd `push.v1.PushRequest`, answered 200). The test
decodes what arrives down to the pprof profile and looks for trailhead's own functions in it."""

import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from conftest import gateway_config


def fields(data):
    """(field number, value) of a protobuf message: ints for varints, bytes for the rest."""
    i = 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value
    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, varint()
        elif wire == 2:
            length = varint()
            yield number, data[i:i + length]
            i += length
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"wire type {wire}")


class FakePyroscope:
    def __init__(self):
        self.pushes = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.pushes.append((self.path, self.headers.get("Content-Type"), body))
                self.send_response(200)
                self.send_header("Content-Type", "application/proto")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"


def series_of(push_body):
    """[(labels, [pprof bytes])] of a PushRequest."""
    out = []
    for number, series in fields(push_body):
        assert number == 1
        labels, samples = {}, []
        for field, value in fields(series):
            if field == 1:
                pair = dict(fields(value))
                labels[pair[1].decode()] = pair[2].decode()
            elif field == 2:
                raw = dict(fields(value))[1]
                samples.append(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        out.append((labels, samples))
    return out


def test_cpu_profiles_reach_pyroscope(sink, start_trailhead):
    pyroscope = FakePyroscope()
    config = gateway_config(sink.endpoint)
    config["service"]["telemetry"] = {
        "logs": {"level": "info", "encoding": "json"}, "metrics": {"address": "127.0.0.1:0"},
        "profiles": {"endpoint": pyroscope.url, "upload_interval": "1s", "tags": {"k8s.pod.name": "trailhead-0"}}}
    trailhead = start_trailhead(config)
    body = {"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "busy"}] * 200}]}]}
    deadline = time.time() + 20
    while time.time() < deadline and len(pyroscope.pushes) < 2:
        requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=body, timeout=5)  # something to sample
    trailhead.stop()
    pyroscope.server.shutdown()
    assert pyroscope.pushes, "no profile was pushed"
    path, content_type, push = pyroscope.pushes[0]
    assert path == "/push.v1.PusherService/Push" and content_type == "application/proto"
    labels, profiles = next((l, p) for b in [x[2] for x in pyroscope.pushes] for l, p in series_of(b) if p)
    assert labels["service_name"] == "trailhead" and labels["k8s.pod.name"] == "trailhead-0", labels
    strings = [value for number, value in fields(profiles[0]) if number == 6]  # pprof's string_table
    assert any(b"trailhead" in s for s in strings), strings[:20]
