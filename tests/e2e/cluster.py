"""A real Kubernetes control plane on 127.0.0.1 for the enrichment tests: etcd and
kube-apiserver built from their Go modules (`make peers`), driven with the kubectl on the
machine. There is no kubelet, scheduler or controller manager: tests create pods already bound
to a node and write their IPs into pod status themselves, which is what a kubelet would do.
"""

import json
import os
import subprocess
import time
from pathlib import Path

import requests

from conftest import free_port

REPO = Path(__file__).resolve().parents[2]
APISERVER = Path(os.environ.get("KUBE_APISERVER_BIN", REPO / "tests" / "peers" / "bin" / "kube-apiserver"))
ETCD = Path(os.environ.get("ETCD_BIN", REPO / "tests" / "peers" / "bin" / "etcd"))
TOKEN = "trailhead-test-token"


class Cluster:
    def __init__(self, workdir: Path):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        for binary in (APISERVER, ETCD):
            if not binary.exists():
                raise RuntimeError(f"{binary} is missing: run `make peers`")
        self.etcd_port = free_port()
        self.port = free_port()
        self._keys()
        self.etcd = self._start_etcd()
        self.apiserver = None
        self.start_apiserver()
        self.kubeconfig = self.dir / "kubeconfig"
        self.kubeconfig.write_text(self.kubeconfig_text(self.port))

    def _keys(self):
        run = lambda *args: subprocess.run(args, check=True, capture_output=True, cwd=self.dir)
        run("openssl", "genrsa", "-out", "sa.key", "2048")
        run("openssl", "rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        # A CA, and a serving certificate it signs, as clients (rustls in kube-rs) require.
        run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt")
        run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=kube-apiserver",
            "-keyout", "serving.key", "-out", "serving.csr")
        (self.dir / "serving.ext").write_text(
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
        run("openssl", "x509", "-req", "-in", "serving.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-days", "2", "-extfile", "serving.ext", "-out", "serving.crt")
        (self.dir / "tokens.csv").write_text(f'{TOKEN},admin,admin,"system:masters"\n')

    def _start_etcd(self):
        peer = free_port()
        log = open(self.dir / "etcd.log", "wb")
        process = subprocess.Popen([
            str(ETCD), "--name", "test", "--data-dir", str(self.dir / "etcd"), "--unsafe-no-fsync",
            "--listen-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{self.etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"test=http://127.0.0.1:{peer}",
        ], stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{self.etcd_port}/health", timeout=1).ok:
                    return process
            except requests.RequestException:
                time.sleep(0.2)
        process.kill()
        raise RuntimeError("etcd did not start:\n" + (self.dir / "etcd.log").read_text()[-3000:])

    def start_apiserver(self):
        """Starts (or restarts) kube-apiserver on the same port, over the same etcd."""
        log = open(self.dir / "apiserver.log", "ab")
        self.apiserver = subprocess.Popen([
            str(APISERVER),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--tls-cert-file={self.dir / 'serving.crt'}", f"--tls-private-key-file={self.dir / 'serving.key'}",
            f"--token-auth-file={self.dir / 'tokens.csv'}", "--authorization-mode=RBAC",
            f"--service-account-key-file={self.dir / 'sa.pub'}",
            f"--service-account-signing-key-file={self.dir / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--service-cluster-ip-range=10.96.0.0/16",
            # No controller manager runs to create each namespace's "default" service account.
            "--disable-admission-plugins=ServiceAccount",
        ], stdout=log, stderr=log)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.apiserver.poll() is not None:
                break
            try:
                ready = requests.get(f"https://127.0.0.1:{self.port}/readyz", verify=str(self.dir / "ca.crt"), timeout=2,
                                     headers={"Authorization": f"Bearer {TOKEN}"})
                if ready.ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.5)
        self.apiserver.kill()
        raise RuntimeError("kube-apiserver did not become ready:\n" + (self.dir / "apiserver.log").read_text()[-4000:])

    def stop_apiserver(self):
        """An outage: the API server goes away at once, open watches and all."""
        self.apiserver.kill()
        self.apiserver.wait(30)

    def kubeconfig_text(self, port):
        return json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {
                "server": f"https://127.0.0.1:{port}",
                "certificate-authority": str(self.dir / "ca.crt")}}],
            "users": [{"name": "admin", "user": {"token": TOKEN}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
        })

    def kubectl(self, *args, input=None):
        result = subprocess.run(["kubectl", f"--kubeconfig={self.kubeconfig}", *args], input=input,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout

    def apply(self, *manifests):
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(manifests)}))

    def uid(self, kind, name, namespace=None):
        args = ["get", kind, name, "-o", "jsonpath={.metadata.uid}"]
        return self.kubectl(*args, *(["-n", namespace] if namespace else []))

    def pod(self, name, namespace, ip, *, node="node-1", labels=None, annotations=None, owners=(),
            host_network=False, containers=(("app", "ghcr.io/mathtrail/app:1.0"),), start_time="2026-11-25T10:00:00Z"):
        """Creates a pod bound to `node`, then writes its IP and start time into its status."""
        self.apply({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}, "annotations": annotations or {},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": k, "name": n, "uid": u, "controller": True}
                                             for k, n, u in owners]},
            "spec": {"nodeName": node, "hostNetwork": host_network,
                     "containers": [{"name": c, "image": i} for c, i in containers]},
        })
        status = {"status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "startTime": start_time}}
        self.kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge", "-p", json.dumps(status))
        return self.uid("pod", name, namespace)

    def delete_pod(self, name, namespace):
        # No kubelet confirms the shutdown, so the deletion is forced, as a node eviction would be.
        self.kubectl("delete", "pod", name, "-n", namespace, "--grace-period=0", "--force")

    def stop(self):
        for process in (self.apiserver, self.etcd):
            if process and process.poll() is None:
                process.terminate()
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
