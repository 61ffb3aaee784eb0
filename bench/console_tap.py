#!/usr/bin/env python3
"""The console under load: trailhead at 10k spans/s (100 OTLP/HTTP requests of 100 spans a
second) with a chain of PROCESSORS attributes plugins, and a page in Debian's Chromium watching
the live tap after the last of them. Reports what the page spends on its main thread (long
tasks over 50 ms), how fast it answers a click while tapping, how many batches the tap skipped,
and trailhead's CPU. docs/CONSOLE.md quotes its output.

    .venv/bin/python bench/console_tap.py [--binary target/release/trailhead] [--seconds 20]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "e2e"))
from conftest import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def request_body(spans=100):
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.trace.v1 import trace_pb2
    kv = lambda k, v: common_pb2.KeyValue(key=k, value=common_pb2.AnyValue(string_value=v))
    items = [trace_pb2.Span(trace_id=os.urandom(16), span_id=os.urandom(8), name=f"GET /lesson/{n}",
                            start_time_unix_nano=1, end_time_unix_nano=2,
                            attributes=[kv("http.route", "/lesson"), kv("attribute.0", f"value-{n}")])
             for n in range(spans)]
    resource = trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=items)])
    resource.resource.attributes.append(kv("service.name", "lessons"))
    return trace_service_pb2.ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", default=str(REPO / "target" / "release" / "trailhead"))
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--processors", type=int, default=50)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="console-tap-"))
    http_port, metrics_port = free_port(), free_port()
    processors = {f"attributes/p{i}": {"actions": [{"key": f"p{i}", "value": "x", "action": "insert"}]}
                  for i in range(args.processors)}
    config = {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{http_port}"}}}},
        "processors": processors,
        "exporters": {"debug": {"verbosity": "basic"}},
        "service": {"telemetry": {"metrics": {"address": f"127.0.0.1:{metrics_port}"}, "logs": {"level": "warn"}},
                    "pipelines": {"traces": {"receivers": ["otlp"], "processors": list(processors),
                                             "exporters": ["debug"]}}},
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    env = dict(os.environ, TRAILHEAD_PLUGIN_DIR=str(REPO / "target" / "plugins"))
    process = subprocess.Popen([args.binary, "run", "--config", str(work / "config.yaml")], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{metrics_port}"
        for _ in range(100):
            try:
                if requests.get(base + "/metrics", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)
        print(json.dumps(run_page(base, f"http://127.0.0.1:{http_port}/v1/traces", process.pid, args),
                         indent=2))
    finally:
        process.terminate()
        process.wait(10)


def send(url, stop, sent):
    """100 requests of 100 spans a second, on one keep-alive connection."""
    session, body = requests.Session(), request_body()
    headers = {"Content-Type": "application/x-protobuf"}
    next_at = time.monotonic()
    while not stop.is_set():
        session.post(url, data=body, headers=headers, timeout=5)
        sent[0] += 100
        next_at += 0.01
        time.sleep(max(0, next_at - time.monotonic()))


def run_page(base, url, pid, args):
    from playwright.sync_api import sync_playwright
    stop, sent = threading.Event(), [0]
    sender = threading.Thread(target=send, args=(url, stop, sent), daemon=True)
    sender.start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 860})
        page.add_init_script("""
            window.longTasks = [];
            new PerformanceObserver((list) => { for (const e of list.getEntries()) longTasks.push(e.duration); })
              .observe({ type: "longtask", buffered: true });""")
        page.goto(base + "/#tap")
        page.wait_for_selector("#tap-pipeline option", state="attached")
        last = f"attributes/p{args.processors - 1}"
        page.select_option("#tap-point", label=f"after {last}")
        page.click("#tap-start")
        page.wait_for_selector("#tap-batches li", timeout=15000)
        page.evaluate("longTasks.length = 0")
        cpu_before, started = cpu_seconds(pid), time.monotonic()
        clicks = []
        while time.monotonic() - started < args.seconds:
            time.sleep(1)
            # A click's answer while the tap streams: the tab switches and back.
            t = time.monotonic()
            page.click("#tab-plugins")
            page.wait_for_selector("#view-plugins:not([hidden])")
            page.click("#tab-tap")
            page.wait_for_selector("#view-tap:not([hidden])")
            clicks.append((time.monotonic() - t) * 1000 / 2)
        elapsed = time.monotonic() - started
        cpu = cpu_seconds(pid) - cpu_before
        long_tasks = page.evaluate("longTasks")
        status = page.text_content("#tap-status")
        browser.close()
    stop.set()
    sender.join()
    clicks.sort()
    return {
        "spans_per_second_sent": round(sent[0] / (elapsed + 1)),
        "processors": args.processors,
        "seconds": round(elapsed, 1),
        "long_tasks": len(long_tasks),
        "long_task_ms_total": round(sum(long_tasks)),
        "main_thread_busy_in_long_tasks": f"{sum(long_tasks) / (elapsed * 10):.1f} %",
        "click_to_view_ms_median": round(clicks[len(clicks) // 2], 1),
        "click_to_view_ms_max": round(clicks[-1], 1),
        "tap_status": status,
        "trailhead_cpu_percent": round(100 * cpu / elapsed, 1),
    }


if __name__ == "__main__":
    main()
