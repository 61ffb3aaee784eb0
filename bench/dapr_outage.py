"""Dapr's Zipkin exporter through an Alloy outage, on the chart's default config.

Four tests/peers/bin/dapr-peer processes (the Go SDK's Zipkin exporter as a Dapr v1.18 sidecar
builds it: `zipkin.New(url)`, the default batcher, no retry) send 2,000 spans/s in all, 1 KB
each, to trailhead running the config `helm template` renders from deploy/helm/trailhead with
default values (persistent queue on, memory limiter, k8sattributes with no cluster to watch),
its addresses and queue folder moved to this machine. Alloy (a counting OTLP/gRPC sink) goes
away after WARMUP seconds for OUTAGE seconds and comes back. Printed as one JSON line: what
the senders made, what their exporter reported lost, what arrived, trailhead's peak RSS and
heap, and the queue's peak size on disk.

Usage: dapr_outage.py --binary target/dist/trailhead [--outage 300] [--warmup 30]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import requests
import yaml
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "tests" / "peers" / "bin"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class CountingSink:
    """Alloy's place: an OTLP/gRPC server that counts spans and keeps nothing."""

    def __init__(self, port):
        self.spans = 0
        self.lock = threading.Lock()
        sink = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request, context):
                with sink.lock:
                    sink.spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
                return trace_service_pb2.ExportTraceServiceResponse()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self.server)
        self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def stop(self):
        self.server.stop(0)


def chart_config(queue_dir, ports):
    """The chart's default config, with its listeners and its queue moved here."""
    rendered = subprocess.run([str(PEERS / "helm"), "template", "trailhead", str(REPO / "deploy" / "helm" / "trailhead")],
                              capture_output=True, text=True, check=True).stdout
    config_map = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ConfigMap"
                      and "config.yaml" in d.get("data", {}))
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    config["receivers"]["otlp"]["protocols"] = {"grpc": {"endpoint": "127.0.0.1:0"}}
    config["receivers"]["zipkin"]["endpoint"] = f"127.0.0.1:{ports['zipkin']}"
    config["exporters"]["otlp/alloy"]["endpoint"] = f"127.0.0.1:{ports['alloy']}"
    config["extensions"]["health_check"]["endpoint"] = "127.0.0.1:0"
    config["extensions"]["file_storage/queue"]["directory"] = str(queue_dir)
    config["service"]["telemetry"] = {"metrics": {"address": f"127.0.0.1:{ports['metrics']}"},
                                      "logs": {"level": "warn", "encoding": "json"}}
    return config


def metric(port, name):
    try:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except requests.RequestException:
        return 0.0
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.split("{")[0].split(" ")[0] == name)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(REPO / "target" / "dist" / "trailhead"))
    parser.add_argument("--outage", type=float, default=300)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--after", type=float, default=30)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rate", type=int, default=2000, help="spans a second, all senders together")
    parser.add_argument("--span-bytes", type=int, default=1000)
    args = parser.parse_args()
    ports = {name: free_port() for name in ("zipkin", "alloy", "metrics")}
    with tempfile.TemporaryDirectory() as tmp:
        queue = Path(tmp) / "queue"
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(chart_config(queue, ports)))
        trailhead = subprocess.Popen([args.binary, "run", "--config", str(config)], stderr=open(Path(tmp) / "log", "w"))
        sink = CountingSink(ports["alloy"])
        time.sleep(2)
        seconds = args.warmup + args.outage + args.after
        url = f"http://127.0.0.1:{ports['zipkin']}/api/v2/spans"
        senders = [subprocess.Popen([str(PEERS / "dapr-peer"), "-zipkin", url, "-rate", str(args.rate // args.senders),
                                     "-seconds", str(seconds), "-attr-bytes", str(args.span_bytes), "-service", f"app-{i}"],
                                    stdout=subprocess.PIPE, text=True) for i in range(args.senders)]
        peak = {"rss_kib": 0, "heap_mib": 0.0, "queue_mib": 0.0}

        def sample():
            while trailhead.poll() is None:
                status = Path(f"/proc/{trailhead.pid}/status").read_text()
                rss = int(next(l for l in status.splitlines() if l.startswith("VmRSS:")).split()[1])
                peak["rss_kib"] = max(peak["rss_kib"], rss)
                peak["heap_mib"] = max(peak["heap_mib"], metric(ports["metrics"], "trailhead_memory_limiter_used_bytes") / 2**20)
                used = sum(f.stat().st_size for f in queue.rglob("*") if f.is_file()) if queue.exists() else 0
                peak["queue_mib"] = max(peak["queue_mib"], used / 2**20)
                time.sleep(1)
        threading.Thread(target=sample, daemon=True).start()
        time.sleep(args.warmup)
        before = sink.spans
        sink.stop()
        time.sleep(args.outage)
        sink = CountingSink(ports["alloy"])
        reports = [json.loads(s.communicate()[0].strip().splitlines()[-1]) for s in senders]
        made = sum(r["spans"] for r in reports)
        exported = sum(r["exported"] for r in reports)
        deadline = time.time() + 300
        while before + sink.spans < exported and time.time() < deadline:
            time.sleep(1)
        result = {
            "scenario": f"Dapr Zipkin, {args.senders} sidecars, {args.rate} spans/s of {args.span_bytes} B, Alloy down {args.outage:.0f} s, chart defaults",
            "made": made, "exported": exported, "failed": sum(r["failed"] for r in reports),
            "dropped_in_sidecars": sum(r["dropped"] for r in reports), "received": before + sink.spans,
            "refused_items": metric(ports["metrics"], "trailhead_receiver_refused_items_total"),
            "send_failed_items": metric(ports["metrics"], "trailhead_exporter_send_failed_items_total"),
            "peak_rss_mib": round(peak["rss_kib"] / 1024, 1), "peak_heap_mib": round(peak["heap_mib"], 1),
            "peak_queue_mib": round(peak["queue_mib"], 1),
        }
        trailhead.terminate()
        trailhead.wait(60)
        sink.stop()
        print(json.dumps(result), flush=True)
        return 0 if result["received"] == made and result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
