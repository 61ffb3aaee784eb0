"""The `resourcedetection` processor (the collector's, contrib v0.161.0) with its env and system
detectors, through trailhead to the sink.

The collector peer is built without resourcedetection (CI's build budget), so trailhead is not
compared side by side here: what arrives is checked against the collector's documented
behaviour (env first-wins over system in the order listed; `override: true` replaces what the
data has, `override: false` only fills what it lacks; a variable that does not parse fails the
start) and against what the OS itself reports, read with its own tools (`hostname -f`,
`uname -snrvm`, /etc/machine-id) and the Kubernetes API server (etcd and kube-apiserver, real,
as in test_kubernetes.py).
"""

import json
import subprocess
from pathlib import Path

import requests
import yaml

from conftest import BINARY, gateway_config, kv
from test_kubernetes import cluster  # noqa: F401 (the module-scoped API server fixture)

# What the data says about itself; the env variable and the host say otherwise for some keys.
RESOURCE = {"service.name": "cart", "deployment.environment": "dev", "host.name": "client-host"}
ENV = "deployment.environment=prod, team=a%20b+c,host.name=from-env"


def trace():
    return json.dumps({"resourceSpans": [{"resource": {"attributes": kv(RESOURCE)}, "scopeSpans": [
        {"spans": [{"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
                    "name": "checkout", "kind": 2, "startTimeUnixNano": "1", "endTimeUnixNano": "2"}]}]}]})


def config(sink, entry):
    cfg = gateway_config(sink.endpoint)
    cfg["processors"] = {"resourcedetection": entry}
    cfg["service"]["pipelines"]["traces"]["processors"] = ["resourcedetection"]
    return cfg


def resource_through(sink, trailhead):
    """The resource attributes of the one span sent, as it arrives at the sink."""
    sent = requests.post(trailhead.url("otlp (http)", "/v1/traces"), data=trace(), timeout=5,
                         headers={"Content-Type": "application/json"})
    assert sent.status_code == 200, sent.text
    assert sink.wait_for("traces", 1) == 1
    resource = sink.requests["traces"][0].resource_spans[0].resource
    return {a.key: a.value.string_value for a in resource.attributes}


def kernel_hostname():
    return Path("/proc/sys/kernel/hostname").read_text().strip()


# override: true (the default): the env detector's values replace the data's; env, listed
# first, keeps host.name over the system detector's; os.type is the system detector's.
def test_override_replaces_and_the_first_detector_wins(sink, start_trailhead):
    entry = {"detectors": ["env", "system"], "timeout": "2s"}
    trailhead = start_trailhead(config(sink, entry), extra_env={"OTEL_RESOURCE_ATTRIBUTES": ENV})
    assert resource_through(sink, trailhead) == {
        "service.name": "cart", "deployment.environment": "prod", "host.name": "from-env",
        "team": "a b c", "os.type": "linux"}


# override: false: what the data has stays; only missing keys are filled, from env then system.
def test_without_override_only_missing_keys_are_filled(sink, start_trailhead):
    entry = {"detectors": ["env", "system"], "override": False, "timeout": "2s"}
    trailhead = start_trailhead(config(sink, entry), extra_env={"OTEL_RESOURCE_ATTRIBUTES": ENV})
    assert resource_through(sink, trailhead) == {
        "service.name": "cart", "deployment.environment": "dev", "host.name": "client-host",
        "team": "a b c", "os.type": "linux"}


# The system detector alone, every attribute trailhead reads switched on: host.name is the
# FQDN (the `dns` source, first of the default [dns, os]) as `hostname -f` gives it, or the
# kernel's name where the OS has no FQDN; the rest as uname, os-release and machine-id say.
def test_system_values_are_what_the_os_reports(sink, start_trailhead):
    switched = {name: {"enabled": True} for name in ["host.id", "host.arch", "os.description"]}
    entry = {"detectors": ["system"], "system": {"resource_attributes": switched}}
    trailhead = start_trailhead(config(sink, entry))
    got = resource_through(sink, trailhead)
    fqdn = subprocess.run(["hostname", "-f"], capture_output=True, text=True)
    assert got["host.name"] == (fqdn.stdout.strip() if fqdn.returncode == 0 else kernel_hostname())
    assert got["host.id"] == Path("/etc/machine-id").read_text().strip()
    machine = subprocess.run(["uname", "-m"], capture_output=True, text=True).stdout.strip()
    assert got["host.arch"] == {"x86_64": "amd64", "aarch64": "arm64"}[machine]
    uname = subprocess.run(["uname", "-snrvm"], capture_output=True, text=True).stdout.strip()
    assert got["os.description"].endswith(f"({uname})"), got["os.description"]
    assert got["os.type"] == "linux" and got["service.name"] == "cart"


# With `hostname_sources: [os]` host.name is the kernel's own name.
def test_os_hostname_source(sink, start_trailhead):
    entry = {"detectors": ["system"], "system": {"hostname_sources": ["os"]}}
    trailhead = start_trailhead(config(sink, entry))
    assert resource_through(sink, trailhead)["host.name"] == kernel_hostname()


# A variable that does not parse fails the start, as the collector's does, with its message.
def test_a_bad_variable_fails_the_start(tmp_path, sink):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config(sink, {"detectors": ["env"]}), sort_keys=False))
    env = {"OTEL_RESOURCE_ATTRIBUTES": "a=%zz", "PATH": "/usr/bin:/bin"}
    ran = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True, env=env)
    assert ran.returncode != 0
    assert 'invalid resource format in attribute: "a=%zz", err: invalid URL escape "%zz"' in ran.stderr, ran.stderr


# A detector trailhead does not build is refused at its line and column, saying so; an
# agent's detector says why it is not a gateway's; the other spelling is the same processor.
def test_detectors_not_built_are_refused_where_they_are(tmp_path, sink):
    for detector, why in [("ec2", "detector `ec2` is not built in trailhead"),
                          ("docker", "detector `docker` is out of trailhead's scope"),
                          ("nope", "invalid detector key: nope")]:
        cfg = config(sink, {"detectors": ["env", detector]})
        cfg["processors"] = {"resource_detection": cfg["processors"]["resourcedetection"]}
        cfg["service"]["pipelines"]["traces"]["processors"] = ["resource_detection"]
        text = yaml.safe_dump(cfg, sort_keys=False)
        path = tmp_path / "check.yaml"
        path.write_text(text)
        lines = text.splitlines()
        line = next(i for i, l in enumerate(lines, 1) if l.strip() == f"- {detector}")
        column = lines[line - 1].index("-") + 3
        ran = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)
        assert ran.returncode != 0
        assert f"check.yaml:{line}:{column}" in ran.stderr and why in ran.stderr, ran.stderr


# k8snode against the real kube-apiserver: the node named by K8S_NODE_NAME, its UID as the API
# server reports it (read back with kubectl); another variable with `node_from_env_var`.
def test_k8snode_reads_the_node_uid_from_the_api_server(cluster, sink, start_trailhead):  # noqa: F811
    entry = {"detectors": ["k8snode"], "k8snode": {"auth_type": "kubeConfig", "node_from_env_var": "MY_NODE"}}
    env = {"KUBECONFIG": str(cluster.kubeconfig), "MY_NODE": "node-1"}
    trailhead = start_trailhead(config(sink, entry), extra_env=env)
    got = resource_through(sink, trailhead)
    assert got["k8s.node.name"] == "node-1"
    assert got["k8s.node.uid"] == cluster.uid("node", "node-1") != ""


# Without the variable, or for a node the API server does not have, the start fails as the
# collector's does.
def test_k8snode_without_its_node_fails_the_start(cluster, tmp_path, sink):  # noqa: F811
    path = tmp_path / "k8snode.yaml"
    entry = {"detectors": ["k8snode"], "k8snode": {"auth_type": "kubeConfig"}}
    path.write_text(yaml.safe_dump(config(sink, entry), sort_keys=False))
    base = {"KUBECONFIG": str(cluster.kubeconfig), "PATH": "/usr/bin:/bin"}
    for env, want in [({}, "node name can't be found"),
                      ({"K8S_NODE_NAME": "node-9"}, "failed to fetch node with name node-9 from K8s API")]:
        ran = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True,
                             env={**base, **env})
        assert ran.returncode != 0 and want in ran.stderr, ran.stderr
