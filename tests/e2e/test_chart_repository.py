"""The mathtrail-charts repository: `make chart` packages trailhead's chart, signed with a GnuPG
key made here for the test (helm's provenance file), and indexes it; served on 127.0.0.1 by
Python's http.server, it is what `helm repo add` and `helm install --verify --dry-run` read
(against a real kube-apiserver, cluster.py, which checks the manifests without running them),
and what deploy.sh installs from when MATHTRAIL_CHARTS_URL is set. The same package is pushed to an
OCI registry (go-containerregistry's, in memory: tests/peers/registry) and installed from there.
helm runs with its own HELM_* homes, so the user's repositories are untouched."""

import contextlib
import functools
import hashlib
import os
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from cluster import Cluster
from conftest import REPO
from test_chart import HELM, find

CHART = REPO / "deploy" / "helm" / "trailhead"
VALUES = REPO / "deploy" / "stack" / "trailhead.values.yaml"
KEY = "mathtrail-charts test <charts@mathtrail.invalid>"
REGISTRY = REPO / "tests" / "peers" / "bin" / "registry-peer"


@pytest.fixture
def keyring(tmp_path):
    """A fresh RSA signing key without a passphrase: (secret keyring, public keyring)."""
    gpg = shutil.which("gpg")
    if not gpg:
        pytest.fail("gpg is missing: the chart's provenance file is signed with a key generated here")
    home = tmp_path / "gnupg"
    home.mkdir(mode=0o700)
    env = dict(os.environ, GNUPGHOME=str(home))
    quiet = ["--batch", "--pinentry-mode", "loopback", "--passphrase", ""]
    # RSA 2048: about a second to generate.
    subprocess.run([gpg, *quiet, "--quick-gen-key", KEY, "rsa2048", "sign", "never"], env=env, check=True, capture_output=True)
    secret, public = tmp_path / "secring.gpg", tmp_path / "pubring.gpg"
    secret.write_bytes(subprocess.run([gpg, *quiet, "--export-secret-keys"], env=env, check=True, capture_output=True).stdout)
    public.write_bytes(subprocess.run([gpg, "--batch", "--export"], env=env, check=True, capture_output=True).stdout)
    yield secret, public
    subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=env, capture_output=True)


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on 127.0.0.1: (folder, URL)."""
    folder = tmp_path / "charts"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield folder, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def helm_env(tmp_path):
    homes = {name: tmp_path / "helm" / name.lower() for name in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME")}
    return dict(os.environ, **{k: str(v) for k, v in homes.items()})


@pytest.fixture
def apiserver(tmp_path):
    cluster = Cluster(tmp_path / "cluster")
    yield cluster
    cluster.stop()


def test_chart_repository_serves_a_signed_chart(tmp_path, keyring, served, apiserver):
    secret, public = keyring
    folder, url = served
    made = subprocess.run(["make", "-s", "chart", f"CHARTS={folder}", f"CHART_SIGN_KEY={KEY}", f"CHART_KEYRING={secret}"],
                          cwd=REPO, capture_output=True, text=True)
    assert made.returncode == 0, made.stdout + made.stderr
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    package = folder / f"trailhead-{version}.tgz"
    assert package.exists() and (folder / f"{package.name}.prov").exists()
    (entry,) = yaml.safe_load((folder / "index.yaml").read_text())["entries"]["trailhead"]
    assert entry["version"] == version and entry["urls"] == [package.name]
    assert entry["digest"] == hashlib.sha256(package.read_bytes()).hexdigest()

    # The provenance file vouches for these bytes only.
    assert subprocess.run([str(HELM), "verify", str(package), "--keyring", str(public)], capture_output=True).returncode == 0
    tampered = tmp_path / "tampered" / package.name
    tampered.parent.mkdir()
    tampered.write_bytes(package.read_bytes() + b"\0")
    shutil.copy(folder / f"{package.name}.prov", tampered.parent)
    assert subprocess.run([str(HELM), "verify", str(tampered), "--keyring", str(public)], capture_output=True).returncode != 0

    # As the README says: helm repo add, then install (verified) from it.
    env = helm_env(tmp_path)
    added = subprocess.run([str(HELM), "repo", "add", "mathtrail-charts", url], env=env, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    installed = subprocess.run([str(HELM), "install", "trailhead", "mathtrail-charts/trailhead", "--namespace", "monitoring",
                                "--create-namespace", "-f", str(VALUES), "--dry-run=server", "--verify", "--keyring", str(public),
                                "--kubeconfig", str(apiserver.kubeconfig)], env=env, capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr
    assert "STATUS: pending-install" in installed.stdout and "kind: Deployment" in installed.stdout
    # A dry run installs nothing.
    assert "trailhead" not in apiserver.kubectl("get", "deployments", "-A", "-o", "name")

    # deploy.sh takes trailhead's chart from the repository when it is configured: what it
    # renders is what the chart in this tree renders.
    out = tmp_path / "rendered"
    run = subprocess.run(["bash", str(REPO / "deploy" / "deploy.sh")], capture_output=True, text=True,
                         env=dict(env, DRY_RUN="1", OFFLINE="1", OUT=str(out), HELM=str(HELM), MATHTRAIL_CHARTS_URL=url))
    assert run.returncode == 0, run.stdout + run.stderr
    from_repository = [m for m in yaml.safe_load_all((out / "releases" / "trailhead.yaml").read_text()) if m]
    local = subprocess.run([str(HELM), "template", "trailhead", str(CHART), "--namespace", "monitoring", "-f", str(VALUES)],
                           env=env, capture_output=True, text=True)
    assert local.returncode == 0, local.stderr
    assert from_repository == [m for m in yaml.safe_load_all(local.stdout) if m]
    assert find(from_repository, "ConfigMap", "trailhead")
    # Offline, deploy.sh added only our repository, in the helm homes given to it.
    repositories = subprocess.run([str(HELM), "repo", "list", "-o", "yaml"], env=env, capture_output=True, text=True).stdout
    assert {r["name"]: r["url"] for r in yaml.safe_load(repositories)} == {"mathtrail-charts": url}

    # Or from an OCI registry, as deploy/README.md shows: helm push, then install by reference.
    with oci_registry() as registry:
        pushed = subprocess.run([str(HELM), "push", str(package), f"oci://{registry}/mathtrail-charts", "--plain-http"],
                                env=env, capture_output=True, text=True)
        assert pushed.returncode == 0, pushed.stderr
        digest = next(line.split()[-1] for line in pushed.stdout.splitlines() + pushed.stderr.splitlines()
                      if line.startswith("Digest:"))
        shown = subprocess.run([str(HELM), "show", "chart", f"oci://{registry}/mathtrail-charts/trailhead", "--version", version,
                                "--plain-http"], env=env, capture_output=True, text=True)
        assert shown.returncode == 0, shown.stderr
        assert yaml.safe_load(shown.stdout)["version"] == version
        installed = subprocess.run([str(HELM), "install", "trailhead", f"oci://{registry}/mathtrail-charts/trailhead",
                                    "--version", version, "--plain-http", "--namespace", "monitoring", "-f", str(VALUES),
                                    "--dry-run=server", "--kubeconfig", str(apiserver.kubeconfig)],
                                   env=env, capture_output=True, text=True)
        assert installed.returncode == 0, installed.stderr
        assert f"Digest: {digest}" in installed.stdout + installed.stderr  # the very package pushed
        assert "STATUS: pending-install" in installed.stdout and "kind: Deployment" in installed.stdout


@contextlib.contextmanager
def oci_registry():
    """go-containerregistry's in-memory OCI registry (tests/peers/registry) on 127.0.0.1: its address."""
    if not REGISTRY.exists():
        pytest.fail(f"{REGISTRY} is missing: run `make peers`")
    process = subprocess.Popen([str(REGISTRY)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait(10)
