#!/usr/bin/env python3
"""Writes the Grafana dashboards as ConfigMaps for the Grafana chart's dashboard sidecar
(label grafana_dashboard=1). The panels are declared here, once, and laid out two to a row;
edit this file and run it, never the YAML. `generate.py --check` fails when the YAML is stale.

Every metrics panel queries the datasource picked in the dashboard's `datasource` variable
(Mimir by default), so one dashboard serves any Prometheus-compatible store. The MathTrail
services dashboard also shows the traces, logs and CPU flame graph of the services picked in its
`service` variable, from the Tempo, Loki and Pyroscope datasources that grafana.values.yaml
provisions (fixed uids), and its per-service series link back to it with that variable set.
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "[$__rate_interval]"


# The uids grafana.values.yaml gives the other signals' datasources.
TEMPO = {"type": "tempo", "uid": "tempo"}
LOKI = {"type": "loki", "uid": "loki"}
PYROSCOPE = {"type": "grafana-pyroscope-datasource", "uid": "pyroscope"}
CPU = "process_cpu:cpu:nanoseconds:cpu:nanoseconds"


def panel(title, targets, unit="short", description="", stack=False, links=()):
    """A time series panel; targets are (PromQL, legend) pairs; links are data links."""
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "custom": {"stacking": {"mode": "normal" if stack else "none"}, "fillOpacity": 10},
                **({"links": list(links)} if links else {}),
            },
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
            for i, (expr, legend) in enumerate(targets)
        ],
    }


def signal_panel(kind, title, datasource, target, description):
    """A panel of another signal (a trace table, logs, a flame graph) on a fixed datasource."""
    return {
        "type": kind, "title": title, "description": description, "datasource": datasource,
        "targets": [dict(target, refId="A", datasource=datasource)],
    }


def service_link(label):
    """A data link from a series to this dashboard's traces, logs and flame graph of its service,
    keeping the time range."""
    return {
        "title": f"Traces, logs and profiles of ${{__field.labels.{label}}}",
        "url": f"/d/mathtrail-services/mathtrail-services?var-service=${{__field.labels.{label}}}&${{__url_time_range}}",
    }


def row(title):
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def quantiles(histogram, by, selector, legend):
    """p50 and p99 of a Prometheus histogram, per `by`."""
    return [
        (f"histogram_quantile({q}, sum by (le, {by}) (rate({histogram}_bucket{{{selector}}}{RATE})))",
         f"p{int(q * 100)} {legend}")
        for q in (0.5, 0.99)
    ]


def variable(name, label, query):
    return {
        "type": "query", "name": name, "label": label, "datasource": DATASOURCE,
        "query": {"query": query, "refId": name}, "definition": query,
        "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2, "sort": 1,
        "current": {"text": "All", "value": "$__all"},
    }


def dashboard(uid, title, description, variables, panels):
    laid_out, x, y, next_id = [], 0, 0, 1
    for p in panels:
        p = dict(p, id=next_id)
        next_id += 1
        if p["type"] == "row":
            y += 0 if x == 0 else 8
            p["gridPos"], x, y = {"h": 1, "w": 24, "x": 0, "y": y}, 0, y + 1
        else:
            p["gridPos"] = {"h": 8, "w": 12, "x": x, "y": y}
            x, y = (12, y) if x == 0 else (0, y + 8)
        laid_out.append(p)
    source = {
        "type": "datasource", "name": "datasource", "label": "Data source", "query": "prometheus",
        "current": {"text": "Mimir", "value": "mimir"}, "refresh": 1,
    }
    return {
        "uid": uid, "title": title, "description": description,
        "tags": ["mathtrail", "trailhead"], "timezone": "browser", "schemaVersion": 39,
        "editable": True, "graphTooltip": 1, "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": [source] + variables},
        "panels": laid_out,
    }


def trailhead():
    sel = 'namespace=~"$namespace", pod=~"$pod"'
    proc = f'{sel}, processor=~"$processor"'
    return dashboard(
        "trailhead", "trailhead",
        "The gateway itself: what it takes in, refuses and sends to Alloy, its export queues, and its Wasm plugins.",
        [
            variable("namespace", "Namespace", "label_values(trailhead_receiver_accepted_items_total, namespace)"),
            variable("pod", "Pod", 'label_values(trailhead_receiver_accepted_items_total{namespace=~"$namespace"}, pod)'),
            variable("processor", "Processor", 'label_values(trailhead_processor_calls_total{namespace=~"$namespace"}, processor)'),
        ],
        [
            row("Throughput"),
            panel("Accepted items/s", [(f"sum by (receiver, signal) (rate(trailhead_receiver_accepted_items_total{{{sel}}}{RATE}))", "{{receiver}} {{signal}}")],
                  "short", "Spans, data points and log records accepted by each receiver.", stack=True),
            panel("Sent items/s", [(f"sum by (exporter, signal) (rate(trailhead_exporter_sent_items_total{{{sel}}}{RATE}))", "{{exporter}} {{signal}}")],
                  "short", "Items the peer (Alloy) acknowledged.", stack=True),
            row("Refusals and failures"),
            panel("Refused items/s", [
                (f"sum by (receiver, signal) (rate(trailhead_receiver_refused_items_total{{{sel}}}{RATE}))", "refused {{receiver}} {{signal}}"),
                (f"sum by (receiver, signal) (rate(trailhead_receiver_malformed_requests_total{{{sel}}}{RATE}))", "malformed requests {{receiver}} {{signal}}"),
            ], "short", "Refused: the pipeline was full and the sender was told to retry. Malformed: rejected for good."),
            panel("Exporter failures/s", [
                (f"sum by (exporter, signal) (rate(trailhead_exporter_send_failed_items_total{{{sel}}}{RATE}))", "lost {{exporter}} {{signal}}"),
                (f"sum by (exporter, signal) (rate(trailhead_exporter_peer_rejected_items_total{{{sel}}}{RATE}))", "rejected by peer {{exporter}} {{signal}}"),
                (f"sum by (exporter, signal) (rate(trailhead_exporter_retries_total{{{sel}}}{RATE}))", "retries {{exporter}} {{signal}}"),
            ], "short", "Lost items were given up on after retries; any value above zero needs a look."),
            row("Export queue"),
            panel("Queue fill", [(f"max by (exporter, signal) (trailhead_exporter_queue_size{{{sel}}} / trailhead_exporter_queue_capacity{{{sel}}})", "{{exporter}} {{signal}}")],
                  "percentunit", "Share of the export queue in use; at 100% receivers refuse with a retryable error."),
            panel("Batch size", quantiles("trailhead_exporter_batch_items", "exporter", sel, "{{exporter}}"),
                  "short", "Items per request sent to the peer."),
            row("Plugins"),
            panel("Plugin calls/s", [
                (f"sum by (processor) (rate(trailhead_processor_calls_total{{{proc}}}{RATE}))", "{{processor}}"),
                (f"sum by (processor) (rate(trailhead_processor_skipped_batches_total{{{proc}}}{RATE}))", "skipped (circuit open) {{processor}}"),
            ], "short"),
            panel("Plugin failures/s", [(f"sum by (processor, kind) (rate(trailhead_processor_failures_total{{{proc}}}{RATE}))", "{{processor}} {{kind}}")],
                  "short", "By kind: timeout, out_of_memory, panic, trap, plugin_error."),
            panel("Plugin latency", quantiles("trailhead_processor_duration_seconds", "processor", proc, "{{processor}}"),
                  "s", "Time inside the plugin per batch."),
            panel("Items dropped by plugins/s", [(f"sum by (processor) (rate(trailhead_processor_dropped_items_total{{{proc}}}{RATE}))", "{{processor}}")],
                  "short", "Filtered noise, and batches dropped by on_failure: drop."),
            panel("Plugin swaps", [(f"sum by (processor, result) (increase(trailhead_processor_swaps_total{{{proc}}}{RATE}))", "{{processor}} {{result}}")],
                  "short", "Hot swaps: applied, rejected (the old version kept serving) or rolled_back."),
            panel("Config reloads", [(f"sum by (result) (increase(trailhead_config_reloads_total{{{sel}}}{RATE}))", "{{result}}")],
                  "short", "SIGHUP and POST /reload: applied, unchanged, or rejected."),
        ],
    )


def services():
    span = 'service=~"$service", span_kind="SPAN_KIND_SERVER"'
    dapr = 'app_id=~"$service"'
    by_service, by_app = [service_link("service")], [service_link("app_id")]
    return dashboard(
        "mathtrail-services", "MathTrail services",
        "Rate, errors and duration per service: from the traces (Tempo's span metrics) and from the Dapr sidecars; "
        "then the picked services' traces, logs and CPU flame graph.",
        [variable("service", "Service", "label_values(traces_spanmetrics_calls_total, service)")],
        [
            row("From traces (Tempo span metrics)"),
            panel("Requests/s", [(f"sum by (service) (rate(traces_spanmetrics_calls_total{{{span}}}{RATE}))", "{{service}}")], "reqps",
                  stack=True, links=by_service),
            panel("Error ratio", [(
                f'sum by (service) (rate(traces_spanmetrics_calls_total{{{span}, status_code="STATUS_CODE_ERROR"}}{RATE}))'
                f" / sum by (service) (rate(traces_spanmetrics_calls_total{{{span}}}{RATE}))", "{{service}}")],
                "percentunit", "Server spans with status ERROR.", links=by_service),
            panel("Duration", quantiles("traces_spanmetrics_latency", "service", span, "{{service}}"), "s", links=by_service),
            panel("Slowest operations (p99)", [(
                f"topk(10, histogram_quantile(0.99, sum by (le, service, span_name) (rate(traces_spanmetrics_latency_bucket{{{span}}}{RATE}))))",
                "{{service}} {{span_name}}")], "s", links=by_service),
            row("From the Dapr sidecars"),
            panel("Sidecar requests/s", [(f"sum by (app_id) (rate(dapr_http_server_request_count{{{dapr}}}{RATE}))", "{{app_id}}")], "reqps",
                  stack=True, links=by_app),
            panel("Sidecar 5xx ratio", [(
                f'sum by (app_id) (rate(dapr_http_server_response_count{{{dapr}, status=~"5.."}}{RATE}))'
                f" / sum by (app_id) (rate(dapr_http_server_response_count{{{dapr}}}{RATE}))", "{{app_id}}")], "percentunit",
                links=by_app),
            panel("Sidecar latency", quantiles("dapr_http_server_latency", "app_id", dapr, "{{app_id}}"), "ms", links=by_app),
            panel("Service invocation calls/s", [(f"sum by (app_id, status) (rate(dapr_grpc_io_server_completed_rpcs{{{dapr}}}{RATE}))", "{{app_id}} {{status}}")],
                  "reqps", links=by_app),
            # The same `service` variable picks the traces (service.name), the pod logs (Loki's
            # service_name: the pod's app.kubernetes.io/name, which MathTrail sets to the service
            # name) and the profiles (pyroscope-go's application name, the service name).
            row("Traces, logs and profiles"),
            signal_panel("table", "Server traces", TEMPO, {
                "queryType": "traceql", "tableType": "traces", "limit": 20,
                "query": '{resource.service.name=~"${service:regex}" && kind=server}'},
                "The latest server traces; a trace id opens the trace, its spans link to their logs and profiles."),
            signal_panel("logs", "Logs (services and Dapr sidecars)", LOKI, {
                "queryType": "range", "expr": '{namespace="mathtrail", service_name=~"${service:regex}"}'},
                "Pod logs of the services and their sidecars; a line's trace_id links to its trace."),
            signal_panel("flamegraph", "CPU flame graph", PYROSCOPE, {
                "queryType": "profile", "profileTypeId": CPU, "groupBy": [],
                "labelSelector": '{service_name=~"${service:regex}"}'},
                "Where the services spend CPU over the time range (pyroscope-go)."),
        ],
    )


def user_activity():
    # Prometheus names of the OpenTelemetry HTTP server metric and MathTrail's session gauge;
    # `job` is service.namespace/service.name.
    sel = 'job=~"$service", http_route=~"$route"'
    return dashboard(
        "mathtrail-user-activity", "MathTrail user activity",
        "Requests and active sessions per service and route, from what the services report over OTLP through trailhead.",
        [
            variable("service", "Service", "label_values(http_server_request_duration_seconds_count, job)"),
            variable("route", "Route", 'label_values(http_server_request_duration_seconds_count{job=~"$service"}, http_route)'),
        ],
        [
            row("Requests"),
            panel("Requests/s by route", [(f"sum by (job, http_route) (rate(http_server_request_duration_seconds_count{{{sel}}}{RATE}))", "{{job}} {{http_route}}")], "reqps", stack=True),
            panel("Requests by route (last hour)", [(f"sum by (job, http_route) (increase(http_server_request_duration_seconds_count{{{sel}}}[1h]))", "{{job}} {{http_route}}")], "short"),
            panel("Failed requests/s by route", [(
                f'sum by (job, http_route) (rate(http_server_request_duration_seconds_count{{{sel}, http_response_status_code=~"5.."}}{RATE}))',
                "{{job}} {{http_route}}")], "reqps"),
            panel("Request duration by route", quantiles("http_server_request_duration_seconds", "job, http_route", sel, "{{job}} {{http_route}}"), "s"),
            row("Sessions"),
            panel("Active sessions by route", [(f"sum by (job, http_route) (mathtrail_sessions_active{{{sel}}})", "{{job}} {{http_route}}")],
                  "short", "Sessions that made a request on the route in the last five minutes.", stack=True),
            panel("Active sessions by service", [(f"max by (job) (mathtrail_sessions_active{{{sel}}})", "{{job}}")],
                  "short", "The busiest route's count: a session on several routes is counted once per route."),
        ],
    )


DASHBOARDS = {"trailhead": trailhead, "mathtrail-services": services, "mathtrail-user-activity": user_activity}


def configmap(name, board):
    body = json.dumps(board, indent=2)
    indented = "\n".join("    " + line for line in body.splitlines())
    return (
        f"# Generated by generate.py; edit that and run it.\n"
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dashboard-{name}\n  namespace: monitoring\n"
        f"  labels:\n    grafana_dashboard: \"1\"\n"
        f"data:\n  {name}.json: |\n{indented}\n"
    )


def main():
    stale = []
    for name, build in DASHBOARDS.items():
        path, text = HERE / f"{name}.yaml", configmap(name, build())
        if "--check" in sys.argv:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        sys.exit(f"stale dashboards, run {Path(__file__).name}: {', '.join(stale)}")


if __name__ == "__main__":
    main()
