"""Continuous profiling: with `service.telemetry.profiles.endpoint`, trailhead pushes CPU
profiles to Pyroscope (conftest.FakePyroscope stands in for it, taking the agent's
`POST /push.v1.PusherService/Push`). The test decodes what arrives down to the pprof profile
and looks for trailhead's own functions in it."""

import gzip
import time

import requests

from conftest import FakePyroscope, gateway_config


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
    while time.time() < deadline and len(pyroscope.uploads) < 2:
        requests.post(trailhead.url("otlp (http)", "/v1/traces"), json=body, timeout=5)  # something to sample
    trailhead.stop()
    pyroscope.stop()
    assert pyroscope.uploads, "no profile was pushed"
    first = pyroscope.uploads[0]
    assert first["path"] == "/push.v1.PusherService/Push" and first["headers"]["Content-Type"] == "application/proto"
    series = [(l, p) for u in pyroscope.uploads for l, p in series_of(u["body"]) if p]
    labels, _ = series[0]
    assert labels["service_name"] == "trailhead" and labels["k8s.pod.name"] == "trailhead-0", labels
    # trailhead's own functions are on the sampled stacks. One upload's few samples may all be
    # in a dependency's code (h2's header decoding, say), so every upload is looked at.
    strings = [value for _, profiles in series for profile in profiles
               for number, value in fields(profile) if number == 6]  # pprof's string_table
    assert any(b"trailhead" in s for s in strings), strings[:20]
