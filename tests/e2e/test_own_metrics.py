"""trailhead's own metrics: every component emits its core counters from the start, under one
naming scheme (`trailhead_<component>_<what>{<component>, signal}`), and the README's table
documents exactly the metrics trailhead serves."""

import re

import requests

from conftest import REPO, gateway_config

KUBERNETES_ONLY = {"trailhead_kubernetes_pods", "trailhead_kubernetes_watch_failures_total",  # test_kubernetes
                   "trailhead_kubernetes_listed_timestamp_seconds"}
# Served once a TLS or token file is watched (test_rotation checks them).
SECRETS_ONLY = {"trailhead_secret_reloads_total", "trailhead_secret_reload_failures_total"}


def families(text):
    """{metric family: [label sets of its series]} from Prometheus text."""
    found = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            found.setdefault(line.split()[2], [])
        elif line and not line.startswith("#"):
            series = line.rsplit(" ", 1)[0]
            name, _, labels = series.partition("{")
            name = re.sub(r"_(bucket|sum|count)$", "", name) if name not in found else name
            found.setdefault(name, []).append(dict(re.findall(r'(\w+)="([^"]*)"', labels)))
    return found


def documented():
    """The metric names in README's "Own metrics" table."""
    text = (REPO / "README.md").read_text()
    table = text.split("### Own metrics", 1)[1].split("\n## ", 1)[0]
    names = set()
    for row in table.splitlines():
        cells = row.split("|")
        if len(cells) < 3 or not cells[1].strip().startswith("`trailhead_"):
            continue
        names.update(re.findall(r"`([^`]+)`", cells[1]))
    return names


def test_every_component_reports_its_core_counters(tmp_path, sink, start_trailhead):
    config = gateway_config(sink.endpoint, sending_queue={"storage": "file_storage/queue"})
    config["extensions"]["file_storage/queue"] = {"directory": str(tmp_path / "queue"), "create_directory": True}
    config["service"]["extensions"].append("file_storage/queue")
    config["exporters"]["debug"] = {"verbosity": "basic"}
    config["processors"] = {"memory_limiter": {"limit_mib": 512}, "filter": {"traces": {"span": ['name == "noise"']}},
                            "tail_sampling": {"decision_wait": "1s", "policies": [
                                {"name": "all", "type": "always_sample"},
                                # A plugin policy, so its failure counter is served too.
                                {"name": "kept", "type": "plugin",
                                 "plugin": {"path": str(REPO / "target/plugins/keep-all-sampler.wasm")}}]}}
    config["service"]["pipelines"]["traces"].update(processors=["memory_limiter", "filter", "tail_sampling"],
                                                     exporters=["otlp/sink", "debug"])
    config["service"]["telemetry"] = {"traces": {"endpoint": sink.endpoint, "tls": {"insecure": True}}}
    trailhead = start_trailhead(config)
    found = families(requests.get(trailhead.url("metrics", "/metrics"), timeout=5).text)

    def series(name, **labels):
        return [s for s in found.get(name, []) if all(s.get(k) == v for k, v in labels.items())]

    receivers = [("otlp", s) for s in ("traces", "metrics", "logs")] + [("zipkin", "traces")]
    for receiver, signal in receivers:
        for name in ["accepted_items_total", "refused_items_total", "malformed_requests_total"]:
            assert series(f"trailhead_receiver_{name}", receiver=receiver, signal=signal), (name, receiver, signal)
    for server in ["otlp (grpc)", "otlp (http)", "zipkin", "metrics", "health_check"]:
        for name in ["refused_connections_total", "unauthenticated_requests_total", "rate_limited_requests_total"]:
            assert series(f"trailhead_server_{name}", server=server), (name, server)
    exporters = [("otlp/sink", s) for s in ("traces", "metrics", "logs")] + [("debug", "traces")]
    for exporter, signal in exporters:
        for name in ["sent_items_total", "send_failed_items_total", "peer_rejected_items_total", "retries_total",
                     "queue_size", "queue_capacity", "batch_items"]:
            assert series(f"trailhead_exporter_{name}", exporter=exporter, signal=signal), (name, exporter, signal)
    for name in ["calls_total", "duration_seconds", "dropped_items_total", "skipped_batches_total", "swaps_total"]:
        assert series(f"trailhead_processor_{name}", processor="filter"), name
    failures = {s["kind"] for s in series("trailhead_processor_failures_total", processor="filter")}
    assert failures == {"timeout", "out_of_memory", "panic", "trap", "plugin_error"}
    assert series("trailhead_memory_limiter_used_bytes") and series("trailhead_memory_limiter_refused_requests_total")
    assert {s["result"] for s in series("trailhead_config_reloads_total")} == {"applied", "unchanged", "rejected"}
    assert series("trailhead_self_traces_dropped_spans_total")

    # One scheme, and the README documents exactly what is served.
    pattern = re.compile(r"^trailhead_(receiver|server|processor|exporter|memory_limiter|tail_sampling|config|kubernetes|self_traces|secret)_[a-z_]+$")
    assert all(pattern.match(name) for name in found), sorted(n for n in found if not pattern.match(n))
    served = documented() - KUBERNETES_ONLY - SECRETS_ONLY
    assert set(found) == served, set(found) ^ served
