"""The Helm chart, checked offline: helm (built from its Go module) lints and renders it under
every example values file; every manifest passes kubernetes-validate --strict; the config it
renders passes `trailhead validate`; its schema refuses a misspelt key; RBAC follows the
config; and a plugin change never rolls the pods."""

import os
import subprocess

import pytest
import yaml

from conftest import BINARY, REPO, kubernetes_validate

HELM = REPO / "tests" / "peers" / "bin" / "helm"
CHART = REPO / "deploy" / "helm" / "trailhead"
VALUES = sorted((CHART / "ci").glob("*.yaml"))


def helm(*args):
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `make peers`")
    return subprocess.run([str(HELM), *map(str, args)], capture_output=True, text=True)


def render(*args):
    result = helm("template", "trailhead", CHART, "--namespace", "monitoring", *args)
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def find(manifests, kind, name=None):
    return [m for m in manifests if m["kind"] == kind and (name is None or m["metadata"]["name"] == name)]


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_renders_valid_manifests(values, tmp_path):
    lint = helm("lint", CHART, "--strict", "-f", values)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    manifests = render("-f", values)
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    kubernetes_validate(path)
    # The config trailhead gets is one trailhead accepts, plugins included.
    (config_map,) = find(manifests, "ConfigMap", "trailhead")
    config = tmp_path / "config.yaml"
    config.write_text(config_map["data"]["config.yaml"])
    validated = subprocess.run([str(BINARY), "validate", "--config", str(config)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr
    # The memory limiter guards every pipeline, first, unless a values file turns it off.
    rendered = yaml.safe_load(config_map["data"]["config.yaml"])
    limiter_on = yaml.safe_load(values.read_text() or "{}").get("presets", {}).get("memoryLimiter", {}).get("enabled", True)
    for pipeline in rendered["service"]["pipelines"].values():
        assert (pipeline["processors"][:1] == ["memory_limiter"]) == limiter_on, pipeline
    # Hardened by default, whatever the values.
    (workload,) = [m for m in manifests if m["kind"] in ("Deployment", "DaemonSet")]
    pod = workload["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}}
    assert container["livenessProbe"]["httpGet"]["port"] == 13133 and container["readinessProbe"]["httpGet"]["port"] == 13133


# The persistent-queue preset, on by default (Dapr's Zipkin exporter never retries, so an
# Alloy restart must cost disk): the exporter queue on an emptyDir mounted where file_storage
# writes, bounded in bytes below the volume's limit so kubelet never evicts the pod for it, and
# retried until Alloy is back. It can be turned off.
def test_persistent_queue_preset():
    for manifests, mib in ((render(), 2048), (render("--set", "presets.persistentQueue.sizeMiB=100"), 100)):
        (config_map,) = find(manifests, "ConfigMap", "trailhead")
        config = yaml.safe_load(config_map["data"]["config.yaml"])
        queue = config["exporters"]["otlp/alloy"]["sending_queue"]
        assert queue == {"storage": "file_storage/queue", "sizer": "bytes", "queue_size": mib * 1048576 * 8 // 10}
        assert config["exporters"]["otlp/alloy"]["retry_on_failure"] == {"max_elapsed_time": 0}
        assert config["extensions"]["file_storage/queue"]["directory"] == "/var/lib/trailhead/queue"
        assert "file_storage/queue" in config["service"]["extensions"]
        (workload,) = find(manifests, "Deployment")
        pod = workload["spec"]["template"]["spec"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == "queue"]
        assert volume == {"name": "queue", "emptyDir": {"sizeLimit": f"{mib}Mi"}}
        assert {"name": "queue", "mountPath": "/var/lib/trailhead"} in pod["containers"][0]["volumeMounts"]
    off = render("--set", "presets.persistentQueue.enabled=false")
    (config_map,) = find(off, "ConfigMap", "trailhead")
    (workload,) = find(off, "Deployment")
    assert not [v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "queue"]
    assert "sending_queue" not in yaml.safe_load(config_map["data"]["config.yaml"])["exporters"]["otlp/alloy"]


# The plugin-cache preset, on by default: compiled plugins kept on an emptyDir that trailhead
# finds through TRAILHEAD_PLUGIN_CACHE, so a restarted container does not compile them again.
def test_plugin_cache_preset():
    for manifests, mib in ((render(), 256), (render("--set", "presets.pluginCache.sizeMiB=64"), 64)):
        (workload,) = find(manifests, "Deployment")
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert {"name": "TRAILHEAD_PLUGIN_CACHE", "value": "/var/cache/trailhead"} in container["env"]
        assert {"name": "TRAILHEAD_PLUGIN_CACHE_MAX_MIB", "value": str(mib * 3 // 4)} in container["env"]
        assert {"name": "plugin-cache", "mountPath": "/var/cache/trailhead"} in container["volumeMounts"]
        assert {"name": "plugin-cache", "emptyDir": {"sizeLimit": f"{mib}Mi"}} in pod["volumes"]
    (workload,) = find(render("--set", "presets.pluginCache.enabled=false"), "Deployment")
    container = workload["spec"]["template"]["spec"]["containers"][0]
    assert not [e for e in container["env"] if e["name"] == "TRAILHEAD_PLUGIN_CACHE"]
    assert not [m for m in container["volumeMounts"] if m["name"] == "plugin-cache"]


# Secrets with certificates or tokens reach the pod through extraVolumes / extraVolumeMounts.
def test_extra_volumes():
    manifests = render("-f", CHART / "ci" / "production-values.yaml")
    (workload,) = find(manifests, "Deployment")
    pod = workload["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "trailhead-tls"}} in pod["volumes"]
    assert {"name": "tls", "mountPath": "/etc/trailhead/tls", "readOnly": True} in pod["containers"][0]["volumeMounts"]


def test_schema_refuses_a_misspelt_key():
    result = helm("template", "trailhead", CHART, "--set", "replicaCont=2")
    assert result.returncode != 0
    assert "replicaCont" in result.stderr, result.stderr
    result = helm("template", "trailhead", CHART, "--set", "mode=statefulset")
    assert result.returncode != 0 and "mode" in result.stderr, result.stderr


def rules(*args):
    roles = find(render(*args), "ClusterRole")
    return {(tuple(r["apiGroups"]), tuple(r["resources"])) for role in roles for r in role["rules"]}


# RBAC is what the config reads, no more: nothing without k8sattributes, pods for the
# defaults, namespaces or nodes for their labels, replicasets for deployment uids.
def test_rbac_follows_the_config():
    assert rules("--set", "presets.kubernetesAttributes.enabled=false") == set()
    assert rules() == {(("",), ("pods",))}
    assert rules("--set", "config.processors.k8sattributes.extract.labels[0].from=namespace",
                 "--set", "config.processors.k8sattributes.extract.labels[0].key=team") == {(("",), ("pods", "namespaces"))}
    assert rules("--set", "presets.kubernetesAttributes.enabled=false",
                 "--set", "config.processors.k8sattributes/x.extract.metadata={k8s.deployment.uid,k8s.node.uid}") == {
        (("",), ("pods", "nodes")), (("apps",), ("replicasets",))}


def checksum(*args):
    (workload,) = find(render(*args), "Deployment")
    return workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


# Changing a plugin swaps it in the running pods; only a config change rolls them.
def test_plugin_changes_do_not_roll_pods():
    base = ["--set", "plugins.configMap.create=true"]
    one = checksum(*base, "--set", "plugins.configMap.binaryData.a\\.wasm=AGFzbQ==")
    two = checksum(*base, "--set", "plugins.configMap.binaryData.a\\.wasm=AGFzbQE=")
    assert one == two
    assert checksum(*base, "--set", "alloy.endpoint=alloy.other:4317") != one


# `make deploy DRY_RUN=1` keeps every rendered file: the dashboards' trailhead.yaml no longer
# overwrites the rendered chart, so trailhead's Deployment, Service, RBAC and config are there.
def test_dry_run_keeps_the_rendered_chart(tmp_path):
    out = tmp_path / "rendered"
    run = subprocess.run(["bash", str(REPO / "deploy" / "deploy.sh")], capture_output=True, text=True,
                         env=dict(os.environ, DRY_RUN="1", OFFLINE="1", OUT=str(out), HELM=str(HELM)))
    assert run.returncode == 0, run.stdout + run.stderr
    manifests = [m for m in yaml.safe_load_all((out / "releases" / "trailhead.yaml").read_text()) if m]
    kinds = {m["kind"] for m in manifests}
    assert {"Deployment", "Service", "ConfigMap", "ClusterRole"} <= kinds, kinds
    assert list((out / "dashboards").glob("*.yaml")) and list((out / "dapr").glob("*.yaml"))


# The rebalancing preset, on by default: every receiver bounds its connections' age to two
# minutes (gRPC with the collector's keepalive keys, OTLP/HTTP and Zipkin with trailhead's
# max_connection_age), with a grace that lets an export finish and ends before the pod's
# termination grace period, so senders reach replicas the HPA adds within minutes. The
# rendered config is one trailhead accepts; the preset can be turned off.
def test_rebalance_connections_preset(tmp_path):
    manifests = render()
    (config_map,) = find(manifests, "ConfigMap", "trailhead")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    receivers = config["receivers"]
    assert receivers["otlp"]["protocols"]["grpc"]["keepalive"] == {
        "server_parameters": {"max_connection_idle": "5m", "max_connection_age": "2m", "max_connection_age_grace": "30s"}}
    for http in (receivers["otlp"]["protocols"]["http"], receivers["zipkin"]):
        assert (http["max_connection_age"], http["max_connection_age_grace"]) == ("2m", "30s")
    (workload,) = find(manifests, "Deployment")
    assert workload["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > 30
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    validated = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr
    (config_map,) = find(render("--set", "presets.rebalanceConnections.enabled=false"), "ConfigMap", "trailhead")
    receivers = yaml.safe_load(config_map["data"]["config.yaml"])["receivers"]
    assert "keepalive" not in receivers["otlp"]["protocols"]["grpc"]
    assert "max_connection_age" not in receivers["zipkin"]
    # The schema wants a duration the collector's way, not a bare number.
    result = helm("template", "trailhead", CHART, "--set", "presets.rebalanceConnections.maxConnectionAge=120")
    assert result.returncode != 0 and "maxConnectionAge" in result.stderr, result.stderr


# The two-tier preset: the front Deployment (with an HPA) sends traces through loadbalancing,
# routed by trace ID, to the sampling tier found by the k8s resolver through its headless
# Service; the sampling tier is a StatefulSet whose pods that Service selects (and the front
# Service does not), running tail_sampling then exporting to Alloy. Only this preset has RBAC
# for EndpointSlices: a namespaced Role, get/list/watch. Both rendered configs are ones
# trailhead accepts.
def test_two_tier_preset(tmp_path):
    manifests = render("-f", CHART / "ci" / "two-tier-values.yaml")
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(manifests))
    kubernetes_validate(path)
    (front,) = find(manifests, "ConfigMap", "trailhead")
    front = yaml.safe_load(front["data"]["config.yaml"])
    assert front["service"]["pipelines"]["traces"]["exporters"] == ["loadbalancing"]
    assert front["service"]["pipelines"]["metrics"]["exporters"] == ["otlp/alloy"]
    balancer = front["exporters"]["loadbalancing"]
    assert balancer["routing_key"] == "traceID"
    assert balancer["resolver"] == {"k8s": {"service": "trailhead-sampling.monitoring", "ports": [4317]}}
    assert "otlp" in balancer["protocol"]
    (hpa,) = find(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "Deployment" and hpa["spec"]["minReplicas"] == 2
    (deployment,) = find(manifests, "Deployment")
    assert "replicas" not in deployment["spec"]
    assert deployment["spec"]["template"]["spec"]["automountServiceAccountToken"] is True
    (statefulset,) = find(manifests, "StatefulSet", "trailhead-sampling")
    (headless,) = find(manifests, "Service", "trailhead-sampling")
    (front_service,) = find(manifests, "Service", "trailhead")
    assert headless["spec"]["clusterIP"] == "None"
    assert statefulset["spec"]["serviceName"] == "trailhead-sampling" and statefulset["spec"]["replicas"] == 3
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert headless["spec"]["selector"].items() <= pod_labels.items()
    assert not front_service["spec"]["selector"].items() <= pod_labels.items()
    assert not deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (sampling,) = find(manifests, "ConfigMap", "trailhead-sampling")
    sampling = yaml.safe_load(sampling["data"]["config.yaml"])
    traces = sampling["service"]["pipelines"]["traces"]
    assert traces["processors"][-1] == "tail_sampling" and traces["exporters"] == ["otlp/alloy"]
    assert sampling["processors"]["tail_sampling"]["decision_wait"] == "10s"
    (role,) = find(manifests, "Role")
    assert role["rules"] == [{"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
                              "verbs": ["get", "list", "watch"]}]
    (binding,) = find(manifests, "RoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == deployment["spec"]["template"]["spec"]["serviceAccountName"]
    for name, config in (("front", front), ("sampling", sampling)):
        written = tmp_path / f"{name}.yaml"
        written.write_text(yaml.safe_dump(config))
        validated = subprocess.run([str(BINARY), "validate", "--config", str(written)], capture_output=True, text=True)
        assert validated.returncode == 0, name + ": " + validated.stderr
    # Without the preset: no sampling tier, and no RBAC for EndpointSlices anywhere.
    for values in VALUES:
        if values.stem == "two-tier-values":
            continue
        manifests = render("-f", values)
        assert not find(manifests, "StatefulSet") and not find(manifests, "Role")
        assert "endpointslices" not in yaml.safe_dump_all(manifests)
    # The front tier is a Deployment: the preset refuses daemonset mode, saying why.
    result = helm("template", "trailhead", CHART, "--set", "twoTier.enabled=true", "--set", "mode=daemonset")
    assert result.returncode != 0 and "twoTier needs mode: deployment" in result.stderr, result.stderr
