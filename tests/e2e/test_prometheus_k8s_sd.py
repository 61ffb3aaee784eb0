"""The `prometheus` receiver's `kubernetes_sd_configs` (role pod) against the real
kube-apiserver and etcd of cluster.py: pods whose status says podIP 127.0.0.1 and whose container
ports are local `prometheus_client` servers. trailhead keeps the pods annotated
`prometheus.io/scrape: "true"` (the charts' pattern), copies namespace and pod name into labels,
and follows pods as they are deleted and added, without a restart."""

import json
import time

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Gauge

from cluster import Cluster
from conftest import free_port

NS = "shop"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "elsewhere"}},
                {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"zone": "a"}}})
        yield c
    finally:
        c.stop()


class App:
    """A metrics endpoint on 127.0.0.1: what a pod's container would serve."""

    def __init__(self):
        registry = CollectorRegistry()
        Gauge("shop_served", "Requests in flight.", registry=registry).set(1)
        self.port = free_port()
        self.server, _ = prometheus_client.start_http_server(self.port, addr="127.0.0.1", registry=registry)

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def apps():
    started = {}

    def app(name):
        started[name] = App()
        return started[name]

    yield app
    for a in started.values():
        a.stop()


def create_pod(cluster, name, port, namespace=NS, scrape=True):
    """A pod on node-1 whose one container declares `port`, running at 127.0.0.1."""
    annotations = {"prometheus.io/scrape": "true"} if scrape else {}
    cluster.apply({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "shop"}, "annotations": annotations},
        "spec": {"nodeName": "node-1", "containers": [
            {"name": "app", "image": "shop:1", "ports": [{"name": "metrics", "containerPort": port}]}]},
    })
    status = {"status": {"phase": "Running", "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
                         "conditions": [{"type": "Ready", "status": "True"}]}}
    cluster.kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge",
                    "-p", json.dumps(status))


def sd_config(sink, cluster, *, with_k8sattributes=False):
    job = {
        "job_name": "pods",
        "scrape_interval": "1s",
        "kubernetes_sd_configs": [{"role": "pod", "kubeconfig_file": str(cluster.kubeconfig)}],
        "relabel_configs": [
            {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"], "action": "keep",
             "regex": "true"},
            {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
            {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
            {"source_labels": ["__meta_kubernetes_pod_container_port_name"], "target_label": "port_name"},
        ],
    }
    config = {
        "receivers": {"prometheus": {"config": {"scrape_configs": [job]}}},
        "exporters": {"otlp/sink": {"endpoint": sink.endpoint, "tls": {"insecure": True},
                                    "batch": {"timeout": "20ms"}}},
        "service": {"pipelines": {"metrics": {"receivers": ["prometheus"], "exporters": ["otlp/sink"]}}},
    }
    if with_k8sattributes:
        config["processors"] = {"k8sattributes": {"auth_type": "kubeconfig"}}
        config["service"]["pipelines"]["metrics"]["processors"] = ["k8sattributes"]
    return config


def scraped(sink):
    """How many `shop_served` points arrived per (namespace, pod, port_name)."""
    counts = {}
    with sink.lock:
        requests = list(sink.requests["metrics"])
    for request in requests:
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    if metric.name != "shop_served":
                        continue
                    for point in metric.gauge.data_points:
                        attributes = {a.key: a.value.string_value for a in point.attributes}
                        key = (attributes.get("namespace"), attributes.get("pod"), attributes.get("port_name"))
                        counts[key] = counts.get(key, 0) + 1
    return counts


def eventually(check, timeout=20, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def test_scrapes_annotated_pods_and_follows_them(cluster, sink, start_trailhead, apps):
    web_a, web_b, quiet, web_c = apps("web-a"), apps("web-b"), apps("quiet"), apps("web-c")
    create_pod(cluster, "web-a", web_a.port)
    create_pod(cluster, "web-b", web_b.port)
    create_pod(cluster, "quiet", quiet.port, scrape=False)
    trailhead = start_trailhead(sd_config(sink, cluster))
    a, b = (NS, "web-a", "metrics"), (NS, "web-b", "metrics")
    eventually(lambda: {a, b} <= set(scraped(sink)), what="scrapes of web-a and web-b")
    assert all(pod != "quiet" for _, pod, _ in scraped(sink)), "an unannotated pod is not kept"

    # A pod goes: its loop stops. A pod comes: it is scraped, without a restart.
    cluster.delete_pod("web-a", NS)
    create_pod(cluster, "web-c", web_c.port, namespace="elsewhere")
    c = ("elsewhere", "web-c", "metrics")
    eventually(lambda: c in scraped(sink), what="a scrape of the new pod web-c")
    settled = scraped(sink)[a]
    time.sleep(2.5)
    now = scraped(sink)
    assert now[a] == settled, "web-a is scraped no more after its deletion"
    assert now[b] > settled and now[b] > 2, "web-b is still scraped"
    assert trailhead.process.poll() is None


def test_shares_the_pod_watch_of_k8sattributes(cluster, sink, start_trailhead, apps):
    web = apps("web-s")
    create_pod(cluster, "web-s", web.port)
    trailhead = start_trailhead(sd_config(sink, cluster, with_k8sattributes=True),
                                extra_env={"KUBECONFIG": str(cluster.kubeconfig)})
    eventually(lambda: (NS, "web-s", "metrics") in scraped(sink), what="a scrape of web-s")
    messages = [json.dumps(line) for line in trailhead.logs]
    assert any("shares a running pod watch" in m for m in messages), "\n".join(messages[-20:])
    assert not any("starts a pod watch" in m for m in messages)
    cluster.delete_pod("web-s", NS)
