"""Secrets rotated under a running trailhead, as cert-manager and the kubelet do it: a mounted
Secret is a folder whose files are symlinks into `..data`, itself a symlink that is swapped
atomically to a new timestamped folder. trailhead must pick up new TLS material and tokens for
new connections and requests without a restart, keep what is in flight, and keep the old
material serving when the new one is broken (logged and counted)."""

import os
import ssl
import threading
import time

import grpc
import pytest
import requests
import trustme

from conftest import Sink, gateway_config

SPAN = [{"traceId": "5b8efff798038103d269b633813fc60c", "id": "eee19b7ec3c1b174", "name": "rotated"}]


class MountedSecret:
    """A folder laid out as the kubelet mounts a Secret, updated the way it updates one."""

    def __init__(self, folder, files):
        self.folder = folder
        folder.mkdir()
        self.version = 0
        self.update(files)
        for name in files:
            (folder / name).symlink_to(f"..data/{name}")

    def update(self, files):
        self.version += 1
        data = self.folder / f"..2026_12_02_{self.version}"
        data.mkdir()
        for name, content in files.items():
            (data / name).write_bytes(content)
        staging = self.folder / "..data_tmp"
        staging.symlink_to(data.name)
        os.replace(staging, self.folder / "..data")  # the atomic swap

    def path(self, name):
        return str(self.folder / name)


def server_files(ca):
    """A Secret's files for a server certificate `ca` issues, and that certificate (DER)."""
    cert = ca.issue_cert("127.0.0.1", "localhost")
    files = {"tls.crt": b"".join(p.bytes() for p in cert.cert_chain_pems), "tls.key": cert.private_key_pem.bytes()}
    return files, ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())


def presented(address, ca_file):
    """The certificate (DER) the server presents to a new connection."""
    host, port = address.rsplit(":", 1)
    context = ssl.create_default_context(cafile=ca_file)
    with context.wrap_socket(__import__("socket").create_connection((host, int(port)), timeout=5),
                             server_hostname=host) as tls:
        return tls.getpeercert(binary_form=True)


def wait_until(check, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


# The receiver's certificate is rotated under a steady stream of new connections: every request
# succeeds, new connections get the new certificate within a few seconds, and a broken update
# (a key that is not the certificate's) leaves the last good one serving.
def test_receiver_certificate_rotates_under_load(tmp_path, sink, start_trailhead, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    first, second = trustme.CA(), trustme.CA()
    bundle = tmp_path / "cas.pem"
    bundle.write_bytes(first.cert_pem.bytes() + second.cert_pem.bytes())
    first_files, first_der = server_files(first)
    secret = MountedSecret(tmp_path / "tls", first_files)
    config = gateway_config(sink.endpoint)
    config["receivers"]["zipkin"]["tls"] = {"cert_file": secret.path("tls.crt"), "key_file": secret.path("tls.key")}
    trailhead = start_trailhead(config)
    address = trailhead.address("zipkin")
    url = f"https://{address}/api/v2/spans"
    statuses, stop = [], threading.Event()

    def load():
        while not stop.is_set():
            statuses.append(requests.post(url, json=SPAN, verify=str(bundle), timeout=5).status_code)
            time.sleep(0.02)
    thread = threading.Thread(target=load)
    thread.start()
    try:
        assert presented(address, str(bundle)) == first_der
        second_files, second_der = server_files(second)
        secret.update(second_files)
        assert wait_until(lambda: presented(address, str(bundle)) == second_der)
        time.sleep(0.5)
        mismatched = {"tls.crt": first_files["tls.crt"], "tls.key": second_files["tls.key"]}
        secret.update(mismatched)
        assert wait_until(lambda: trailhead.metric("trailhead_secret_reload_failures_total") == 1)
        assert presented(address, str(bundle)) == second_der
    finally:
        stop.set()
        thread.join()
    assert statuses and set(statuses) == {202}, statuses
    assert trailhead.metric("trailhead_secret_reloads_total", secret="receiver zipkin tls") == 1
    assert sink.wait_for("traces", len(statuses)) == len(statuses)
    assert any("do not build" in e.get("message", "") for e in trailhead.logs)


# A receiver's token file rotates: the new token is accepted and the old one refused, at once
# for new requests; an emptied file keeps the last good token.
def test_receiver_token_file_rotates(tmp_path, sink, start_trailhead):
    secret = MountedSecret(tmp_path / "token", {"token": b"first-token\n"})
    config = gateway_config(sink.endpoint)
    config["receivers"]["zipkin"]["auth"] = {"authenticator": "bearertokenauth/in"}
    config["extensions"]["bearertokenauth/in"] = {"filename": secret.path("token")}
    config["service"]["extensions"].append("bearertokenauth/in")
    trailhead = start_trailhead(config)
    url = trailhead.url("zipkin", "/api/v2/spans")
    post = lambda token: requests.post(url, json=SPAN, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code
    assert post("first-token") == 202
    secret.update({"token": b"second-token\n"})
    assert wait_until(lambda: post("second-token") == 202)
    assert post("first-token") == 401
    secret.update({"token": b""})
    assert wait_until(lambda: trailhead.metric("trailhead_secret_reload_failures_total") == 1)
    assert post("second-token") == 202


# The exporter's CA file and token file rotate together with the next hop's certificate: the
# next hop restarts with a certificate from a new CA and expects the new token; what trailhead
# sends after the rotation arrives, with the new token.
def test_exporter_ca_and_token_rotate(tmp_path, start_trailhead):
    first, second = trustme.CA(), trustme.CA()
    cert = first.issue_cert("127.0.0.1", "localhost")

    def credentials(cert):
        return grpc.ssl_server_credentials([(cert.private_key_pem.bytes(), b"".join(p.bytes() for p in cert.cert_chain_pems))])
    sink = Sink(credentials=credentials(cert))
    port = sink.port
    secret = MountedSecret(tmp_path / "alloy", {"ca.crt": first.cert_pem.bytes(), "token": b"old-token"})
    config = gateway_config(f"127.0.0.1:{port}", tls={"ca_file": secret.path("ca.crt")},
                            auth={"authenticator": "bearertokenauth/alloy"},
                            retry_on_failure={"initial_interval": "100ms", "max_interval": "200ms"})
    config["exporters"]["otlp/sink"]["endpoint"] = f"https://127.0.0.1:{port}"
    config["extensions"]["bearertokenauth/alloy"] = {"filename": secret.path("token")}
    config["service"]["extensions"].append("bearertokenauth/alloy")
    trailhead = start_trailhead(config)
    url = trailhead.url("zipkin", "/api/v2/spans")
    assert requests.post(url, json=SPAN, timeout=5).status_code == 202
    assert sink.wait_for("traces", 1) == 1
    assert sink.metadata[-1]["authorization"] == "Bearer old-token"
    sink.stop()
    sink = Sink(credentials=credentials(second.issue_cert("127.0.0.1", "localhost")), port=port)
    try:
        secret.update({"ca.crt": second.cert_pem.bytes(), "token": b"new-token"})
        assert wait_until(lambda: trailhead.metric("trailhead_secret_reloads_total", secret="exporter otlp/sink/traces") == 1)
        assert requests.post(url, json=SPAN, timeout=5).status_code == 202
        assert sink.wait_for("traces", 1) == 1
        assert sink.metadata[-1]["authorization"] == "Bearer new-token"
        assert trailhead.metric("trailhead_exporter_send_failed_items_total") == 0
    finally:
        sink.stop()
