"""The k8sattributes built-in against a real kube-apiserver (and etcd), both built from their
Go modules; see cluster.py. Clients bind loopback source addresses: a client on 127.0.0.23 is
"the pod whose IP is 127.0.0.23", so association by connection is tested as in a cluster."""

import http.client
import json
import os
import time

import pytest

from cluster import Cluster, free_port
from conftest import REPO, Sink, gateway_config, run_collector

NS = "mathtrail"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        c.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": {"team": "learning"}}},
            {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-1", "labels": {"zone": "a"}}},
        )
        yield c
    finally:
        c.stop()


def k8s_config(sink, cluster, **processor):
    config = gateway_config(sink.endpoint)
    config["processors"] = {"k8sattributes": {"auth_type": "kubeconfig", **processor}}
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["k8sattributes"]
    return config


def start(start_trailhead, sink, cluster, kubeconfig=None, **processor):
    env = {"KUBECONFIG": str(kubeconfig or cluster.kubeconfig)}
    return start_trailhead(k8s_config(sink, cluster, **processor), extra_env=env)


def send(trailhead, source_ip, resource=None, name="work", headers=None):
    """One span over OTLP/HTTP JSON from `source_ip`; returns the HTTP status."""
    host, port = trailhead.address("otlp (http)").rsplit(":", 1)
    attributes = [{"key": k, "value": {"stringValue": v}} for k, v in {"service.name": "lessons", **(resource or {})}.items()]
    body = {"resourceSpans": [{"resource": {"attributes": attributes}, "scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": name}]}]}]}
    connection = http.client.HTTPConnection(host, int(port), source_address=(source_ip, 0), timeout=10)
    connection.request("POST", "/v1/traces", json.dumps(body), {"Content-Type": "application/json", **(headers or {})})
    status = connection.getresponse().status
    connection.close()
    return status


def resource_of(sink, name):
    """The resource attributes of the last span called `name` the sink got."""
    deadline = time.time() + 15
    while time.time() < deadline:
        with sink.lock:
            found = [rs for r in sink.requests["traces"] for rs in r.resource_spans
                     if any(s.name == name for ss in rs.scope_spans for s in ss.spans)]
        if found:
            return {a.key: plain(a.value) for a in found[-1].resource.attributes}
        time.sleep(0.05)
    raise AssertionError(f"no span {name!r} arrived")


def plain(value):
    """An attribute value as Python: a string, or a list of strings for an array."""
    if value.WhichOneof("value") == "array_value":
        return [v.string_value for v in value.array_value.values]
    return value.string_value


def sees_pod(trailhead, sink, source, pod):
    """A check for `eventually`: a new span from `source` is enriched as `pod`."""
    counter = iter(range(10_000))

    def check():
        name = f"{pod}-probe-{next(counter)}"
        send(trailhead, source, name=name)
        return resource_of(sink, name).get("k8s.pod.name") == pod

    return check


def eventually(check, timeout=20):
    """Retries `check` (which sends and inspects) until it returns truthy: watches are async."""
    deadline = time.time() + timeout
    while True:
        result = check()
        if result or time.time() > deadline:
            return result
        time.sleep(0.3)


def test_enriches_by_connection_and_by_attribute(cluster, sink, start_trailhead):
    rs_uid = "0b7d4f1e-1111-4c1e-9a55-000000000001"
    uid = cluster.pod("lessons-7c9f8b6d4-x2x7q", NS, "127.0.0.23", labels={"pod-template-hash": "7c9f8b6d4"},
                      owners=[("ReplicaSet", "lessons-7c9f8b6d4", rs_uid)])
    other = cluster.pod("quiz-0", NS, "127.0.0.24", owners=[("StatefulSet", "quiz", "0b7d4f1e-2222-4c1e-9a55-000000000002")])
    trailhead = start(start_trailhead, sink, cluster, wait_for_metadata=True)
    assert any(entry.get("message") == "Kubernetes metadata synced" for entry in trailhead.logs)

    assert send(trailhead, "127.0.0.23", name="by-connection") == 200
    assert resource_of(sink, "by-connection") == {
        "service.name": "lessons",
        "k8s.namespace.name": NS,
        "k8s.pod.name": "lessons-7c9f8b6d4-x2x7q",
        "k8s.pod.uid": uid,
        # The creation time, as the collector reports it (test_matches_the_collectors_k8sattributes).
        "k8s.pod.start_time": cluster.kubectl("get", "pod", "lessons-7c9f8b6d4-x2x7q", "-n", NS,
                                              "-o", "jsonpath={.metadata.creationTimestamp}"),
        "k8s.deployment.name": "lessons",
        "k8s.node.name": "node-1",
        "k8s.pod.ip": "127.0.0.23",
    }
    # A resource attribute outranks the connection (the collector's order), and what is set
    # upstream is never overwritten.
    send(trailhead, "127.0.0.23", {"k8s.pod.ip": "127.0.0.24", "k8s.namespace.name": "set-upstream"}, name="by-attribute")
    attrs = resource_of(sink, "by-attribute")
    assert attrs["k8s.pod.name"] == "quiz-0" and attrs["k8s.pod.uid"] == other
    assert attrs["k8s.namespace.name"] == "set-upstream" and attrs["k8s.pod.ip"] == "127.0.0.24"
    assert "k8s.deployment.name" not in attrs
    # A sender that is no pod is still stamped with its IP, so Alloy credits the sender.
    send(trailhead, "127.0.0.99", name="unknown-sender")
    assert resource_of(sink, "unknown-sender") == {"service.name": "lessons", "k8s.pod.ip": "127.0.0.99"}


def test_rules_labels_annotations_and_extra_metadata(cluster, sink, start_trailhead):
    cluster.pod("grader-5f6d", NS, "127.0.0.31",
                labels={"app.kubernetes.io/component": "grader", "team/owner": "core", "noise": "x"},
                annotations={"mathtrail.io/tier": "gold"},
                owners=[("Job", "grader-29170560", "0b7d4f1e-3333-4c1e-9a55-000000000003")],
                containers=(("grader", "ghcr.io/mathtrail/grader:2.1"),))
    trailhead = start(
        start_trailhead, sink, cluster,
        pod_association=[{"sources": [{"from": "resource_attribute", "name": "k8s.pod.name"},
                                      {"from": "resource_attribute", "name": "k8s.namespace.name"}]}],
        extract={
            "metadata": ["k8s.pod.name", "k8s.job.name", "k8s.cronjob.name", "k8s.namespace.uid", "k8s.node.uid",
                         "container.image.name", "container.image.tag"],
            "labels": [{"tag_name": "app.component", "key": "app.kubernetes.io/component", "from": "pod"},
                       {"tag_name": "team.$1", "key_regex": "team/(.*)", "from": "pod"},
                       {"key": "team", "from": "namespace"},
                       {"key": "zone", "from": "node"}],
            "annotations": [{"key": "mathtrail.io/tier"}],
        })
    send(trailhead, "127.0.0.1", {"k8s.pod.name": "grader-5f6d", "k8s.namespace.name": NS}, name="rules")
    attrs = resource_of(sink, "rules")
    assert attrs["app.component"] == "grader" and attrs["team.owner"] == "core"
    assert attrs["k8s.namespace.label.team"] == "learning" and attrs["k8s.node.label.zone"] == "a"
    assert attrs["k8s.pod.annotation.mathtrail.io/tier"] == "gold"
    assert attrs["k8s.job.name"] == "grader-29170560" and attrs["k8s.cronjob.name"] == "grader"
    assert attrs["k8s.namespace.uid"] == cluster.uid("namespace", NS)
    assert attrs["k8s.node.uid"] == cluster.uid("node", "node-1")
    assert (attrs["container.image.name"], attrs["container.image.tag"]) == ("ghcr.io/mathtrail/grader", "2.1")
    assert "k8s.pod.label.noise" not in attrs and "k8s.deployment.name" not in attrs
    assert attrs["k8s.pod.ip"] == "127.0.0.31"


def test_passthrough_only_stamps_the_ip(cluster, sink, start_trailhead):
    cluster.pod("passthrough-1", NS, "127.0.0.41")
    trailhead = start(start_trailhead, sink, cluster, passthrough=True)
    send(trailhead, "127.0.0.41", name="passthrough")
    assert resource_of(sink, "passthrough") == {"service.name": "lessons", "k8s.pod.ip": "127.0.0.41"}


def test_forwarded_for_only_when_trusted(cluster, sink, start_trailhead):
    cluster.pod("behind-proxy", NS, "127.0.0.42")
    headers = {"X-Forwarded-For": "127.0.0.42, 10.0.0.1"}
    untrusting = start(start_trailhead, sink, cluster)
    send(untrusting, "127.0.0.43", name="untrusted", headers=headers)
    assert resource_of(sink, "untrusted").get("k8s.pod.name") is None
    trusting = start(start_trailhead, sink, cluster, trust_forwarded_for=True)
    send(trusting, "127.0.0.43", name="trusted", headers=headers)
    assert resource_of(sink, "trusted")["k8s.pod.name"] == "behind-proxy"


def test_host_network_and_ignored_pods_are_not_matched(cluster, sink, start_trailhead):
    cluster.pod("node-exporter", NS, "127.0.0.51", host_network=True)
    cluster.pod("opted-out", NS, "127.0.0.52", annotations={"opentelemetry.io/k8s-processor-ignore": "True"})
    trailhead = start(start_trailhead, sink, cluster, wait_for_metadata=True)
    send(trailhead, "127.0.0.51", name="host-network")
    send(trailhead, "127.0.0.52", name="ignored")
    assert resource_of(sink, "host-network") == {"service.name": "lessons", "k8s.pod.ip": "127.0.0.51"}
    assert resource_of(sink, "ignored") == {"service.name": "lessons", "k8s.pod.ip": "127.0.0.52"}


def test_node_and_namespace_filters(cluster, sink, start_trailhead):
    cluster.apply({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node-2"}},
                  {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})
    cluster.pod("on-node-1", NS, "127.0.0.111", node="node-1")
    cluster.pod("on-node-2", NS, "127.0.0.112", node="node-2")
    cluster.pod("elsewhere", "other", "127.0.0.113", node="node-2")
    # DaemonSet mode: the node comes from the downward API's environment variable.
    config = k8s_config(sink, cluster, wait_for_metadata=True, filter={"node_from_env_var": "K8S_NODE_NAME"})
    daemon = start_trailhead(config, extra_env={"KUBECONFIG": str(cluster.kubeconfig), "K8S_NODE_NAME": "node-2"})
    for ip, name in [("127.0.0.111", "node-filter-1"), ("127.0.0.112", "node-filter-2"), ("127.0.0.113", "node-filter-3")]:
        send(daemon, ip, name=name)
    assert "k8s.pod.name" not in resource_of(sink, "node-filter-1")
    assert resource_of(sink, "node-filter-2")["k8s.pod.name"] == "on-node-2"
    assert resource_of(sink, "node-filter-3")["k8s.pod.name"] == "elsewhere"
    scoped = start(start_trailhead, sink, cluster, wait_for_metadata=True, filter={"namespace": NS})
    send(scoped, "127.0.0.113", name="namespace-filter-other")
    send(scoped, "127.0.0.111", name="namespace-filter-mine")
    assert "k8s.pod.name" not in resource_of(sink, "namespace-filter-other")
    assert resource_of(sink, "namespace-filter-mine")["k8s.pod.name"] == "on-node-1"


def test_deleted_pod_lingers_then_its_ip_goes_to_the_new_pod(cluster, sink, start_trailhead):
    cluster.pod("worker-old", NS, "127.0.0.61")
    trailhead = start(start_trailhead, sink, cluster, wait_for_metadata=True)
    cluster.delete_pod("worker-old", NS)
    time.sleep(1)  # the deletion has reached the cache; the pod stays for its grace period
    send(trailhead, "127.0.0.61", name="after-delete")
    assert resource_of(sink, "after-delete")["k8s.pod.name"] == "worker-old"
    cluster.pod("worker-new", NS, "127.0.0.61")
    assert eventually(sees_pod(trailhead, sink, "127.0.0.61", "worker-new")), "the reused IP still points at the deleted pod"


def test_a_list_longer_than_one_page(cluster, sink, start_trailhead):
    # The watcher lists 50 objects a page (its memory during a relist): 120 pods take three.
    cluster.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "paged"}})
    cluster.apply(*[{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"paged-{i:03}", "namespace": "paged"},
                     "spec": {"nodeName": "node-1", "containers": [{"name": "app", "image": "ghcr.io/mathtrail/app:1.0"}]}}
                    for i in range(119)])
    cluster.pod("paged-last", "paged", "127.0.0.81")
    trailhead = start(start_trailhead, sink, cluster, wait_for_metadata=True, filter={"namespace": "paged"})
    assert trailhead.metric("trailhead_kubernetes_pods") == 120
    send(trailhead, "127.0.0.81", name="from-a-later-page")
    assert resource_of(sink, "from-a-later-page")["k8s.pod.name"] == "paged-last"


def test_survives_an_api_server_restart(cluster, sink, start_trailhead):
    cluster.pod("steady", NS, "127.0.0.71")
    trailhead = start(start_trailhead, sink, cluster, wait_for_metadata=True)
    cluster.stop_apiserver()
    try:
        send(trailhead, "127.0.0.71", name="during-outage")
        assert resource_of(sink, "during-outage")["k8s.pod.name"] == "steady"
    finally:
        cluster.start_apiserver()
    cluster.pod("arrived-later", NS, "127.0.0.72")
    assert eventually(sees_pod(trailhead, sink, "127.0.0.72", "arrived-later"), timeout=60), \
        "the watch did not resume after the API server came back"
    assert any(entry.get("message", "").startswith("Kubernetes watch failed") for entry in trailhead.logs)
    # The outage is counted per kind, and the cache's size is there to alert on.
    assert trailhead.metric("trailhead_kubernetes_watch_failures_total", kind="pods") >= 1
    assert trailhead.metric("trailhead_kubernetes_pods") >= 2


def test_no_cluster(cluster, sink, start_trailhead, tmp_path):
    nowhere = tmp_path / "nowhere.kubeconfig"
    nowhere.write_text(cluster.kubeconfig_text(free_port()))
    # Without wait_for_metadata it starts, says so once, and passes data through.
    trailhead = start(start_trailhead, sink, cluster, kubeconfig=nowhere)
    assert send(trailhead, "127.0.0.81", name="no-cluster") == 200
    assert resource_of(sink, "no-cluster") == {"service.name": "lessons", "k8s.pod.ip": "127.0.0.81"}
    time.sleep(3)  # several retries with kube's backoff, each of which must stay quiet
    warnings = [e for e in trailhead.logs if e.get("message", "").startswith("Kubernetes watch failed")]
    assert len(warnings) == 1, warnings
    # With it, trailhead refuses to run unenriched past the timeout, and says why.
    waiting = start(start_trailhead, sink, cluster, kubeconfig=nowhere, wait_for_metadata=True, wait_for_metadata_timeout="1s")
    assert waiting.process.wait(20) != 0
    assert any("did not sync within wait_for_metadata_timeout" in str(e) for e in waiting.logs), waiting.logs


def test_the_charts_rbac_is_enough(cluster, sink, start_trailhead, tmp_path):
    from test_chart import find, render
    (role,) = find(render(), "ClusterRole")
    cluster.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "trailhead", "namespace": "monitoring"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "trailhead-test"},
         "rules": role["rules"]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "trailhead-test"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "trailhead-test"},
         "subjects": [{"kind": "ServiceAccount", "name": "trailhead", "namespace": "monitoring"}]},
    )
    token = cluster.kubectl("create", "token", "trailhead", "-n", "monitoring").strip()
    kubeconfig = tmp_path / "sa.kubeconfig"
    kubeconfig.write_text(cluster.kubeconfig_text(cluster.port).replace("trailhead-test-token", token))
    cluster.pod("rbac-check", NS, "127.0.0.91")
    # The chart's default config with only its RBAC: enrichment works.
    trailhead = start(start_trailhead, sink, cluster, kubeconfig=kubeconfig, wait_for_metadata=True)
    send(trailhead, "127.0.0.91", name="rbac")
    assert resource_of(sink, "rbac")["k8s.pod.name"] == "rbac-check"
    # Namespace labels need namespaces, which that role does not grant: the API server says so.
    denied = start(start_trailhead, sink, cluster, kubeconfig=kubeconfig,
                   extract={"labels": [{"key": "team", "from": "namespace"}]})
    assert eventually(lambda: any("forbidden" in str(e).lower() for e in denied.logs), timeout=15), denied.logs


def test_matches_the_collectors_k8sattributes(cluster, sink, start_trailhead, tmp_path):
    """The collector's own k8sattributes (built into the collector peer) and trailhead's, on the
    same cluster, the same pods and the same spans: the resource attributes must be the same."""
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "diff-app", "namespace": NS},
                  "spec": {"selector": {"matchLabels": {"app": "diff-app"}},
                           "template": {"metadata": {"labels": {"app": "diff-app"}},
                                        "spec": {"containers": [{"name": "app", "image": "ghcr.io/mathtrail/diff:3.1"}]}}}}
    cluster.apply(deployment)
    replicaset = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": {"name": "diff-app-5d8f7c6b9", "namespace": NS, "labels": {"app": "diff-app", "pod-template-hash": "5d8f7c6b9"},
                               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "diff-app",
                                                    "uid": cluster.uid("deployment", "diff-app", NS), "controller": True}]},
                  "spec": {"selector": {"matchLabels": {"app": "diff-app", "pod-template-hash": "5d8f7c6b9"}},
                           "template": {"metadata": {"labels": {"app": "diff-app", "pod-template-hash": "5d8f7c6b9"}},
                                        "spec": {"containers": [{"name": "app", "image": "ghcr.io/mathtrail/diff:3.1"}]}}}}
    cluster.apply(replicaset)
    cluster.pod("diff-app-5d8f7c6b9-q7k2p", NS, "127.0.0.101",
                labels={"app": "diff-app", "pod-template-hash": "5d8f7c6b9", "team/owner": "core"},
                annotations={"mathtrail.io/tier": "gold"},
                owners=[("ReplicaSet", "diff-app-5d8f7c6b9", cluster.uid("replicaset", "diff-app-5d8f7c6b9", NS))],
                containers=(("app", "ghcr.io/mathtrail/diff:3.1"),))
    cluster.pod("diff-sts-0", NS, "127.0.0.102",
                owners=[("StatefulSet", "diff-sts", "0b7d4f1e-4444-4c1e-9a55-000000000004")])

    defaults = ["k8s.namespace.name", "k8s.pod.name", "k8s.pod.uid", "k8s.pod.start_time", "k8s.deployment.name", "k8s.node.name"]
    # (trailhead's settings, the collector's). The collector v1 also adds container.image.name
    # and .tags by default; trailhead keeps the six defaults its issue names, so the collector
    # is given those six explicitly.
    processors = {
        "defaults": ({}, {"extract": {"metadata": defaults}}),
        "rules": ({"extract": {
            "metadata": defaults + ["k8s.replicaset.name", "k8s.replicaset.uid", "k8s.statefulset.name",
                                    "k8s.statefulset.uid", "k8s.node.uid",
                                    "container.image.name", "container.image.tags"],
            "labels": [{"tag_name": "team.$1", "key_regex": "team/(.*)", "from": "pod"},
                       {"key": "app", "from": "pod"},
                       {"key": "team", "from": "namespace"},
                       {"key": "zone", "from": "node"}],
            "annotations": [{"tag_name": "tier", "key": "mathtrail.io/tier", "from": "pod"},
                            {"key": "mathtrail.io/tier"}]}},),
    }
    spans = [("127.0.0.101", {}), ("127.0.0.101", {"k8s.pod.ip": "127.0.0.102"}), ("127.0.0.103", {})]
    for case, (settings, *collector_settings) in processors.items():
        collector_settings = collector_settings[0] if collector_settings else settings
        port = free_port()
        theirs = Sink()
        collector = run_collector({
            "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{port}"}}}},
            # The collector's config expands `$`, so its capture-group references are written `$$1`.
            "processors": {"k8sattributes": {"auth_type": "kubeConfig", "wait_for_metadata": True,
                                             **json.loads(json.dumps(collector_settings).replace("$", "$$"))}},
            "exporters": {"otlp": {"endpoint": theirs.endpoint, "tls": {"insecure": True}}},
            "service": {"pipelines": {"traces": {"receivers": ["otlp"], "processors": ["k8sattributes"], "exporters": ["otlp"]}}},
        }, tmp_path, port, env={"KUBECONFIG": str(cluster.kubeconfig)})
        ours = Sink()
        trailhead = start(start_trailhead, ours, cluster, wait_for_metadata=True, **settings)
        try:
            for i, (source, resource) in enumerate(spans):
                name = f"{case}-{i}"
                send(trailhead, source, resource, name=name)
                send(Endpoint(f"127.0.0.1:{port}"), source, resource, name=name)
                # trailhead also stamps k8s.pod.ip on what the collector leaves without it
                # (association by connection), so Alloy downstream credits the sender.
                expected = resource_of(theirs, name)
                expected.setdefault("k8s.pod.ip", resource.get("k8s.pod.ip", source))
                assert resource_of(ours, name) == expected, (case, source, resource)
        finally:
            collector.terminate()
            collector.wait(10)
            theirs.stop()
            ours.stop()


class Endpoint:
    """Something `send` can post OTLP/HTTP to."""

    def __init__(self, address):
        self._address = address

    def address(self, _name):
        return self._address


# The pod watcher is a long-lived task like the others (test_faults): if it dies, the cache
# would go stale while health said 200, so trailhead names it, drains and exits 1.
def test_a_dead_watcher_ends_the_process(cluster, sink, start_trailhead):
    env = {"KUBECONFIG": str(cluster.kubeconfig), "TRAILHEAD_TEST_FAULT": "kubernetes watch pods@1500"}
    trailhead = start_trailhead(k8s_config(sink, cluster), extra_env=env)
    assert trailhead.process.wait(20) == 1
    stopped = [e for e in trailhead.logs if e.get("message", "").startswith("a long-lived task stopped")]
    assert stopped and stopped[0]["task"] == "kubernetes watch pods", trailhead.logs[-10:]


def test_console_kubernetes_view(cluster, sink, start_trailhead, tmp_path):
    """The console's Kubernetes view, in Chromium: the cache's size and each watch's last list
    from the same state /metrics reads, a pod looked up by IP, and a failing watch's outage."""
    from test_console import AXE, browser_session, serious_violations

    cluster.pod("console-lookup", NS, "127.0.0.191", labels={"app": "console"})
    # The cache keeps the labels `extract` reads, and the lookup shows what the cache keeps.
    trailhead = start(start_trailhead, sink, cluster, wait_for_metadata=True,
                      extract={"labels": [{"key": "app", "from": "pod"}]})
    nowhere = tmp_path / "nowhere.kubeconfig"
    nowhere.write_text(cluster.kubeconfig_text(free_port()))
    cut_off = start(start_trailhead, sink, cluster, kubeconfig=nowhere)
    with browser_session() as page:
        page.goto(trailhead.url("metrics", "/#kubernetes"))
        page.wait_for_selector('#k8s-watches tr[data-kind="pods"]')
        listed = page.locator('#k8s-watches tr[data-kind="pods"] td').nth(1)
        assert listed.text_content() != "not yet"
        assert page.text_content("#k8s-summary").split()[0].isdigit()
        page.fill("#pod-ip", "127.0.0.191")
        page.click("#pod-find")
        page.wait_for_function("document.getElementById('pod-status').textContent.includes(' is ')")
        assert page.text_content("#pod-status") == f"127.0.0.191 is {NS}/console-lookup"
        assert "app=console" in page.text_content("#pod")
        if os.environ.get("TRAILHEAD_SCREENSHOTS") == "1":
            page.screenshot(path=str(REPO / "docs" / "console" / "kubernetes.png"), full_page=True)
        page.fill("#pod-ip", "127.0.0.199")
        page.click("#pod-find")
        page.wait_for_function("document.getElementById('pod-status').textContent.startsWith('no pod')")
        assert "no pod with IP 127.0.0.199 among the" in page.text_content("#pod-status")
        page.add_script_tag(path=str(AXE))
        assert serious_violations(page) == []

        # A watch that cannot reach its API server: counted, and its outage noted with the error.
        page.goto(cut_off.url("metrics", "/#kubernetes"))
        failing = page.locator('#k8s-watches tr[data-kind="pods"]')
        page.wait_for_function(
            """() => document.querySelector('#k8s-watches tr[data-kind="pods"]')?.cells[3].textContent.includes('failing')""",
            timeout=15000)
        assert failing.locator("td").nth(1).text_content() == "not yet"
        assert int(failing.locator("td").nth(2).text_content()) >= 1
