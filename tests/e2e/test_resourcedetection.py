"""The `resourcedetection` processor (the collector's, contrib v0.161.0) with its env, system,
k8snode and cloud (ec2, gcp, azure) detectors, through trailhead to the sink.

The collector peer is built without resourcedetection (CI's build budget), so trailhead is not
compared side by side here: what arrives is checked against the collector's documented
behaviour (env first-wins over system in the order listed; `override: true` replaces what the
data has, `override: false` only fills what it lacks; a variable that does not parse fails the
start) and against what the OS itself reports, read with its own tools (`hostname -f`,
`uname -snrvm`, /etc/machine-id) and the Kubernetes API server (etcd and kube-apiserver, real,
as in test_kubernetes.py). The cloud detectors ask stand-ins for their metadata servers
(metadata_servers.py: fakes, as no real one runs off its cloud, speaking and refusing what the
real ones do), and their attributes are checked against the collector's sources.
"""

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest
import requests
import yaml

from conftest import BINARY, gateway_config, kv
from metadata_servers import AzureImds, GceMetadata, Imds
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
    for detector, why in [("eks", "detector `eks` is not built in trailhead"),
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


# The cloud detectors against stand-ins for their metadata servers (tests/e2e/metadata_servers.py
# says what of each protocol they speak and refuse). The collector peer is built without
# resourcedetection, so the expected attributes are the collector's as its sources set them
# (contrib v0.161.0 internal/{aws/ec2,gcp,azure}, with their default `enabled` switches).

IDENTITY = {"accountId": "123456789012", "architecture": "x86_64", "availabilityZone": "eu-west-1b",
            "imageId": "ami-0abc", "instanceId": "i-0123456789abcdef0", "instanceType": "m5.large",
            "pendingTime": "2026-12-01T10:00:00Z", "privateIp": "10.0.1.5", "region": "eu-west-1",
            "version": "2017-09-30"}


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def imds():
    server = Imds(IDENTITY, "ip-10-0-1-5.eu-west-1.compute.internal",
                  {"Name": "gateway-1", "env": "prod", "team": "obs", "cost": "42"})
    yield server
    server.close()


# IMDSv2 as the SDK speaks it: one token PUT with a TTL, every GET carrying the token; the
# instance's attributes (host.image.id switched off) and the tags from IMDS whose keys match.
def test_ec2_reads_the_instance_through_imdsv2(imds, sink, start_trailhead):
    entry = {"detectors": ["ec2"], "ec2": {"tags": ["^env$", "tea"], "tags_from_imds": True,
                                           "resource_attributes": {"host.image.id": {"enabled": False}}}}
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{imds.address}"}
    trailhead = start_trailhead(config(sink, entry), extra_env=env)
    assert resource_through(sink, trailhead) == {
        **RESOURCE, "cloud.provider": "aws", "cloud.platform": "aws_ec2", "cloud.region": "eu-west-1",
        "cloud.account.id": "123456789012", "cloud.availability_zone": "eu-west-1b",
        "host.id": "i-0123456789abcdef0", "host.type": "m5.large",
        "host.name": "ip-10-0-1-5.eu-west-1.compute.internal", "ec2.tag.env": "prod", "ec2.tag.team": "obs"}
    puts = [r for r in imds.requests if r[0] == "PUT"]
    assert len(puts) == 1 and puts[0][2]["x-aws-ec2-metadata-token-ttl-seconds"] == "300"
    gets = [r for r in imds.requests if r[0] == "GET"]
    assert gets and all(r[2].get("x-aws-ec2-metadata-token") in imds.tokens for r in gets)
    assert not any(path.endswith("/cost") for _, path, _ in gets)


# Not on EC2 (IMDS disabled by the SDK's variable, or nothing listening) the detector yields
# nothing and the data passes unchanged; with fail_on_missing_metadata the start fails.
def test_ec2_off_ec2_yields_nothing_unless_metadata_is_required(imds, tmp_path, sink, start_trailhead):
    entry = {"detectors": ["ec2"], "timeout": "3s"}
    env = {"AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://{imds.address}", "AWS_EC2_METADATA_DISABLED": "true"}
    trailhead = start_trailhead(config(sink, entry), extra_env=env)
    assert resource_through(sink, trailhead) == RESOURCE
    assert imds.requests == []
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(config(sink, {**entry, "fail_on_missing_metadata": True}), sort_keys=False))
    env = {**os.environ, "AWS_EC2_METADATA_SERVICE_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    ran = subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True, env=env)
    assert ran.returncode != 0
    assert "detector `ec2` failed: failed to get instance-id from IMDS" in ran.stderr, ran.stderr


GCE = {"project/project-id": "shop-prod", "instance/id": "4520031799277581759",
       "instance/zone": "projects/123456/zones/us-central1-a",
       "instance/machine-type": "projects/123456/machineTypes/e2-standard-4",
       "instance/name": "gateway-7x2k", "instance/hostname": "gateway-7x2k.us-central1-a.c.shop-prod.internal",
       "instance/attributes/created-by": "projects/123456/zones/us-central1-a/instanceGroupManagers/gateways"}


@pytest.fixture
def gce():
    server = GceMetadata(dict(GCE))
    yield server
    server.close()


# GCE through GCE_METADATA_HOST: every request carries Metadata-Flavor; the instance's
# attributes with the collector's defaults (instance name switched on), its managed group.
def test_gcp_on_gce(gce, sink, start_trailhead):
    entry = {"detectors": ["gcp"], "gcp": {"resource_attributes": {"gcp.gce.instance.name": {"enabled": True}}}}
    trailhead = start_trailhead(config(sink, entry), extra_env={"GCE_METADATA_HOST": gce.address})
    assert resource_through(sink, trailhead) == {
        **RESOURCE, "cloud.provider": "gcp", "cloud.platform": "gcp_compute_engine",
        "cloud.account.id": "shop-prod", "cloud.availability_zone": "us-central1-a", "cloud.region": "us-central1",
        "host.type": "projects/123456/machineTypes/e2-standard-4", "host.id": "4520031799277581759",
        "host.name": "gateway-7x2k", "gcp.gce.instance.name": "gateway-7x2k",
        "gcp.gce.instance_group_manager.name": "gateways", "gcp.gce.instance_group_manager.zone": "us-central1-a"}
    assert all(headers.get("metadata-flavor") == "Google" for _, _, headers in gce.requests)


# GKE: Kubernetes in the environment and a cluster-location attribute; a regional cluster
# gives the region alone, and host.type (the Compute API's) is not set.
def test_gcp_on_gke(gce, sink, start_trailhead):
    gce.values.update({"instance/attributes/cluster-name": "prod-1",
                       "instance/attributes/cluster-location": "europe-west4"})
    env = {"GCE_METADATA_HOST": gce.address, "KUBERNETES_SERVICE_HOST": "10.96.0.1"}
    trailhead = start_trailhead(config(sink, {"detectors": ["gcp"]}), extra_env=env)
    assert resource_through(sink, trailhead) == {
        **RESOURCE, "cloud.provider": "gcp", "cloud.platform": "gcp_kubernetes_engine",
        "cloud.account.id": "shop-prod", "cloud.region": "europe-west4", "k8s.cluster.name": "prod-1",
        "host.id": "4520031799277581759", "host.name": "gateway-7x2k"}


AZURE = {"azEnvironment": "AzurePublicCloud", "location": "westeurope", "name": "gw-vm-3",
         "osProfile": {"adminUsername": "azureuser", "computerName": "gw-host-3", "disablePasswordAuthentication": "true"},
         "resourceGroupName": "rg-observability", "subscriptionId": "8d1f6c3e-0000-4a8b-9c1d-2b3e4f5a6b7c",
         "vmId": "02aab8a4-74ef-476e-8182-f6d2ba4166a6", "vmScaleSetName": "", "vmSize": "Standard_D4s_v5",
         "zone": "2", "tagsList": [{"name": "env", "value": "prod"}, {"name": "owner", "value": "sre"}]}


# Azure IMDS through trailhead's own TRAILHEAD_AZURE_METADATA_ENDPOINT (the collector's
# provider has no variable): Metadata: true and an api-version asked; IMDS's field names
# (vmId, subscriptionId) read; the zone switched on, tags matching `^env$` added.
def test_azure_reads_the_vm_from_imds(sink, start_trailhead):
    server = AzureImds(AZURE)
    try:
        entry = {"detectors": ["azure"], "azure": {"tags": ["^env$"], "resource_attributes": {
            "cloud.availability_zone": {"enabled": True}}}}
        env = {"TRAILHEAD_AZURE_METADATA_ENDPOINT": f"http://{server.address}"}
        trailhead = start_trailhead(config(sink, entry), extra_env=env)
        assert resource_through(sink, trailhead) == {
            **RESOURCE, "cloud.provider": "azure", "cloud.platform": "azure.vm", "host.name": "gw-host-3",
            "cloud.region": "westeurope", "host.id": "02aab8a4-74ef-476e-8182-f6d2ba4166a6",
            "cloud.account.id": "8d1f6c3e-0000-4a8b-9c1d-2b3e4f5a6b7c", "cloud.availability_zone": "2",
            "azure.vm.name": "gw-vm-3", "azure.vm.size": "Standard_D4s_v5",
            "azure.resourcegroup.name": "rg-observability", "azure.tag.env": "prod"}
        (method, path, headers), = server.requests
        assert headers["metadata"] == "true" and "api-version=" in path
    finally:
        server.close()


# aks then azure, run at once and merged first-wins in the order listed: on Kubernetes the
# platform is aks's `azure.aks`, the cluster named from the node resource group
# (MC_<group>_<cluster>_<location>); azure adds the VM's attributes.
def test_aks_before_azure_names_the_cluster(sink, start_trailhead):
    server = AzureImds({**AZURE, "resourceGroupName": "MC_rg-observability_prod-aks_westeurope"})
    try:
        entry = {"detectors": ["aks", "azure"], "aks": {"resource_attributes": {"k8s.cluster.name": {"enabled": True}}}}
        env = {"TRAILHEAD_AZURE_METADATA_ENDPOINT": f"http://{server.address}", "KUBERNETES_SERVICE_HOST": "10.0.0.1"}
        trailhead = start_trailhead(config(sink, entry), extra_env=env)
        got = resource_through(sink, trailhead)
        assert got["cloud.platform"] == "azure.aks" and got["k8s.cluster.name"] == "prod-aks"
        assert got["azure.resourcegroup.name"] == "MC_rg-observability_prod-aks_westeurope"
        assert got["host.name"] == "gw-host-3" and len(server.requests) == 2
    finally:
        server.close()


# The stand-ins refuse what the real servers refuse, so a detector that left out a step of
# the protocol could not pass the tests above.
def test_the_stand_ins_refuse_what_the_real_servers_refuse(imds, gce):
    azure = AzureImds(AZURE)
    try:
        base = f"http://{imds.address}/latest"
        assert requests.get(f"{base}/meta-data/instance-id", timeout=5).status_code == 401
        assert requests.put(f"{base}/api/token", timeout=5).status_code == 400
        token = requests.put(f"{base}/api/token", headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"}, timeout=5)
        assert token.headers["X-Aws-Ec2-Metadata-Token-Ttl-Seconds"] == "60"
        got = requests.get(f"{base}/meta-data/instance-id", headers={"X-aws-ec2-metadata-token": token.text}, timeout=5)
        assert got.text == IDENTITY["instanceId"]
        refused = requests.get(f"http://{gce.address}/computeMetadata/v1/project/project-id", timeout=5)
        assert refused.status_code == 403 and refused.headers["Metadata-Flavor"] == "Google"
        compute = f"http://{azure.address}/metadata/instance/compute"
        assert requests.get(f"{compute}?api-version=2020-09-01", timeout=5).status_code == 400
        assert requests.get(compute, headers={"Metadata": "true"}, timeout=5).status_code == 400
    finally:
        azure.close()
