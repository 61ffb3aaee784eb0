"""Dapr's own trace exporters (tests/peers/dapr: the Go SDK libraries a v1.18 sidecar builds,
with its default batcher) against trailhead.

- The Zipkin path never retries: through a 14 s outage of the next hop, with a persistent
  queue and a 60 MiB memory limiter, trailhead must refuse nothing and hold memory flat.
- The authenticated path is OTLP with a bearer header from a secret, exactly as the shipped
  Configuration (deploy/stack/dapr/configuration-otlp-auth.yaml) makes Dapr send it, into the
  `otlp/dapr` receiver of config/examples/hardened.yaml, over gRPC and HTTP.
"""

import json
import os
import subprocess
import threading
import time

import pytest
import yaml

from conftest import REPO, Sink, free_port, gateway_config

DAPR_PEER = os.environ.get("DAPR_PEER_BIN", str(REPO / "tests" / "peers" / "bin" / "dapr-peer"))
MIB = 1 << 20


def dapr(*flags, timeout=120):
    if not os.path.exists(DAPR_PEER):
        pytest.fail(f"{DAPR_PEER} is missing: run `make peers`")
    done = subprocess.run([DAPR_PEER, *map(str, flags)], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def start_dapr(*flags):
    """Runs the peer in the background; `.result()` waits for its report."""
    outcome = {}

    def run():
        outcome["report"] = dapr(*flags, timeout=300)
    thread = threading.Thread(target=run)
    thread.start()

    class Running:
        def result(self):
            thread.join()
            return outcome["report"]
    return Running()


# 1,500 spans/s of 4 KB for 20 s from Dapr's Zipkin exporter; the next hop is down for 14 s of
# it. With the persistent queue (sizer: bytes) and the memory limiter at 60 MiB: no batch is
# refused, no span lost, and memory stays flat while the outage fills the disk.
@pytest.mark.serial
def test_dapr_zipkin_rides_out_an_outage(tmp_path, start_trailhead):
    port = free_port()
    sink = Sink(port=port)
    config = gateway_config(f"127.0.0.1:{port}",
                            sending_queue={"storage": "file_storage/queue", "sizer": "bytes", "queue_size": 1 << 30},
                            retry_on_failure={"initial_interval": "200ms", "max_interval": "1s", "max_elapsed_time": 0})
    config["extensions"]["file_storage/queue"] = {"directory": str(tmp_path / "queue"), "create_directory": True}
    config["service"]["extensions"].append("file_storage/queue")
    config["processors"] = {"memory_limiter": {"check_interval": "100ms", "limit_mib": 60, "spike_limit_mib": 12}}
    config["service"]["pipelines"]["traces"]["processors"] = ["memory_limiter"]
    trailhead = start_trailhead(config)
    url = trailhead.url("zipkin", "/api/v2/spans")
    sender = start_dapr("-zipkin", url, "-rate", 1500, "-seconds", 20, "-attr-bytes", 4000)
    rss, anon, heap, held = [], [], [], []
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            rss.append(trailhead.rss_kib())
            anon.append(trailhead.rss_kib("RssAnon"))
            heap.append(trailhead.metric("trailhead_memory_limiter_used_bytes") // 1024)
            held.append(trailhead.metric("trailhead_exporter_read_ahead_bytes") // 1024)
            time.sleep(0.2)
    threading.Thread(target=sample, daemon=True).start()
    time.sleep(3)
    before, anon_before, heap_before = max(rss), max(anon), max(heap)
    sink.stop()
    delivered_before = sink.items("traces")
    time.sleep(14)
    during, anon_during, heap_during, held_during = max(rss), max(anon), max(heap), max(held)
    sink = Sink(port=port)
    try:
        report = sender.result()
        assert report["spans"] == 30000
        assert (report["failed"], report["dropped"]) == (0, 0), report
        assert sink.wait_for("traces", 30000 - delivered_before, timeout=120) == 30000 - delivered_before
        sampling.set()
        assert trailhead.metric("trailhead_memory_limiter_refused_requests_total") == 0
        assert trailhead.metric("trailhead_receiver_refused_items_total") == 0
        assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0
        # Flat: the outage put ~84 MB on disk; the heap grew by the read-ahead budget (7 MiB)
        # and the requests being received, anonymous RSS by about as much. Total RSS also counts
        # the binary's code pages that the outage's paths (retries, the disk queue) first touch,
        # which are file-backed and shared, so it is printed, not bounded.
        print(f"RSS before the outage {before // 1024} MiB, peak during it {during // 1024} MiB, peak overall {max(rss) // 1024} MiB; "
              f"anonymous {anon_before // 1024} -> {anon_during // 1024} MiB; "
              f"heap {heap_before // 1024} -> {heap_during // 1024} MiB; read-ahead peak {held_during // 1024} MiB")
        assert heap_during - heap_before < 16 * 1024, (heap_before, heap_during)
        assert anon_during - anon_before < 24 * 1024, (anon_before, anon_during)
    finally:
        sink.stop()


def hardened_dapr_receiver(tmp_path, sink, token):
    """trailhead with config/examples/hardened.yaml's `otlp/dapr` receiver and its token file,
    on ports picked at run time, forwarding to the sink."""
    hardened = yaml.safe_load((REPO / "config" / "examples" / "hardened.yaml").read_text())
    receiver = hardened["receivers"]["otlp/dapr"]
    for protocol in receiver["protocols"].values():
        protocol["endpoint"] = "127.0.0.1:0"
    token_file = tmp_path / "dapr-token"
    token_file.write_text(token + "\n")
    extension = dict(hardened["extensions"]["bearertokenauth/dapr"], filename=str(token_file))
    config = gateway_config(sink.endpoint)
    config["receivers"] = {"otlp/dapr": receiver}
    config["extensions"]["bearertokenauth/dapr"] = extension
    config["service"]["extensions"].append("bearertokenauth/dapr")
    config["service"]["pipelines"] = {"traces": {"receivers": ["otlp/dapr"], "exporters": ["otlp/sink"]}}
    return config


def dapr_flags(trailhead, protocol, secret):
    """The peer's flags from the shipped Configuration, as Dapr reads it: its protocol's
    endpoint here, isSecure, and each header, a secretKeyRef resolved from `secret`."""
    spec = yaml.safe_load((REPO / "deploy" / "stack" / "dapr" / "configuration-otlp-auth.yaml").read_text())
    otel = spec["spec"]["tracing"]["otel"]
    flags = ["-otlp", trailhead.address(f"otlp/dapr ({protocol})"), "-protocol", protocol,
             f"-secure={str(otel['isSecure']).lower()}"]
    for header in otel["headers"]:
        value = secret[header["secretKeyRef"]["key"]] if "secretKeyRef" in header else header["value"]
        flags += ["-header", f"{header['name']}={value}"]
    return flags


# What the authenticated Configuration makes Dapr send, over both protocols, is accepted; the
# same with another token is refused and counted, and nothing of it arrives.
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_dapr_otlp_with_a_bearer_header_from_a_secret(protocol, tmp_path, sink, start_trailhead):
    token = "d4pr-t0ken"
    trailhead = start_trailhead(hardened_dapr_receiver(tmp_path, sink, token))
    secret = {"token": token, "authorization": f"Bearer {token}"}
    report = dapr(*dapr_flags(trailhead, protocol, secret), "-rate", 200, "-seconds", 1)
    assert (report["exported"], report["failed"]) == (200, 0), report
    assert sink.wait_for("traces", 200) == 200
    wrong = dict(secret, authorization="Bearer not-the-token")
    report = dapr(*dapr_flags(trailhead, protocol, wrong), "-rate", 50, "-seconds", 1)
    assert report["exported"] == 0 and report["failed"] == 50, report
    assert sink.items("traces") == 200
    assert trailhead.metric("trailhead_server_unauthenticated_requests_total", server=f"otlp/dapr ({protocol})") >= 1
