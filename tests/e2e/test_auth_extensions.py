"""The collector's authenticator extensions: `oidc` side by side with the collector peer (which
has it), `basicauth` and `headers_setter` against the meaning of the collector's sources (the
peer cannot be built with them at v0.161.0: those modules are not served), with real clients:
`requests`, grpcio and the collector itself.

The OIDC provider is a small HTTP server here serving a discovery document and a JWKS, its
tokens signed with pyjwt + cryptography: a faithful stand-in for a provider, since go-oidc and
trailhead read nothing else of one (discovery, `jwks_uri`, signed JWTs)."""

import base64
import hashlib
import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bcrypt
import grpc
import jwt
import pytest
import requests
import trustme
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from conftest import BINARY, Sink, free_port, gateway_config, run_collector

AUDIENCE = "trailhead-gateway"
# trailhead's shortest time between two key fetches for unknown key ids (auth/oidc.rs).
MIN_REFRESH = 5


class Provider:
    """An OpenID provider on 127.0.0.1: discovery, a JWKS it can change, and fetch counts by
    client (Go's HTTP client names itself, hyper does not)."""

    def __init__(self):
        self.keys = {"k1": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                     "k2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
                     "e1": ec.generate_private_key(ec.SECP256R1())}
        self.published = {"k1", "e1"}
        self.fetches = {"go": 0, "other": 0}
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": provider.issuer + "/jwks",
                            "id_token_signing_alg_values_supported": ["RS256", "ES256"]}
                elif self.path == "/jwks":
                    who = "go" if "Go-http-client" in self.headers.get("User-Agent", "") else "other"
                    provider.fetches[who] += 1
                    body = {"keys": [provider.jwk(kid) for kid in sorted(provider.published)]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def jwk(self, kid):
        key = self.keys[kid].public_key()
        if kid.startswith("e"):
            jwk, alg = jwt.algorithms.ECAlgorithm.to_jwk(key, as_dict=True), "ES256"
        else:
            jwk, alg = jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True), "RS256"
        return dict(jwk, kid=kid, alg=alg, use="sig")

    def token(self, kid="k1", alg=None, signer=None, **claims):
        now = int(time.time())
        body = {"iss": self.issuer, "aud": AUDIENCE, "sub": "service-a", "iat": now, "exp": now + 300}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        alg = alg or ("ES256" if kid.startswith("e") else "RS256")
        return jwt.encode(body, self.keys[signer or kid], algorithm=alg, headers={"kid": kid})

    def stop(self):
        self.server.shutdown()


@pytest.fixture
def provider():
    p = Provider()
    yield p
    p.stop()


def otlp_config(grpc_endpoint, http_endpoint, extension, settings):
    """OTLP in (gRPC and HTTP, both behind `extension`), the debug exporter out."""
    auth = {"authenticator": extension}
    return {
        "extensions": {extension: settings},
        "receivers": {"otlp": {"protocols": {"grpc": {"endpoint": grpc_endpoint, "auth": auth},
                                             "http": {"endpoint": http_endpoint, "auth": auth}}}},
        "exporters": {"debug": {}},
        "service": {"extensions": [extension],
                    "pipelines": {"traces": {"receivers": ["otlp"], "exporters": ["debug"]}}},
    }


def http_status(address, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    answer = requests.post(f"http://{address}/v1/traces", json={}, headers=headers, timeout=10)
    return answer.status_code, answer.text


def grpc_code(address, authorization):
    stub = trace_service_pb2_grpc.TraceServiceStub(grpc.insecure_channel(address))
    metadata = [] if authorization is None else [("authorization", authorization)]
    try:
        stub.Export(trace_service_pb2.ExportTraceServiceRequest(), metadata=metadata, timeout=10)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as refused:
        return refused.code(), refused.details()


@pytest.fixture
def oidc_pair(provider, tmp_path, start_trailhead):
    """The collector peer and trailhead on the same oidc config: {name: (grpc, http)}."""
    settings = {"issuer_url": provider.issuer, "audience": AUDIENCE}
    grpc_port, http_port = free_port(), free_port()
    collector = run_collector(otlp_config(f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}", "oidc", settings),
                              tmp_path, http_port)
    trailhead = start_trailhead(otlp_config("127.0.0.1:0", "127.0.0.1:0", "oidc", dict(settings)))
    yield {"collector": (f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}"),
           "trailhead": (trailhead.address("otlp (grpc)"), trailhead.address("otlp (http)"))}
    collector.terminate()
    collector.wait(10)


# The same tokens get the same answer from the collector and trailhead, on OTLP/HTTP (200 or
# 401) and gRPC (OK or UNAUTHENTICATED): what go-oidc checks (algorithm, key, signature, iss,
# aud, exp without leeway, nbf with five minutes) and what the extension reads of the header.
def test_oidc_side_by_side(provider, oidc_pair):
    now = int(time.time())
    cases = {
        "valid": (f"Bearer {provider.token()}", True),
        "valid ES256": (f"Bearer {provider.token('e1')}", True),
        "any scheme word": (f"Token {provider.token()}", True),
        "audience in a list": (f"Bearer {provider.token(aud=['other', AUDIENCE])}", True),
        "nbf inside the leeway": (f"Bearer {provider.token(nbf=now + 120)}", True),
        "nbf past the leeway": (f"Bearer {provider.token(nbf=now + 900)}", False),
        "expired": (f"Bearer {provider.token(exp=now - 60)}", False),
        "no exp": (f"Bearer {provider.token(exp=None)}", False),
        "wrong audience": (f"Bearer {provider.token(aud='someone-else')}", False),
        "wrong issuer": (f"Bearer {provider.token(iss='http://127.0.0.1:1')}", False),
        "unknown kid": (f"Bearer {provider.token('k2')}", False),
        "bad signature": (f"Bearer {provider.token('k1', signer='k2')}", False),
        "algorithm not offered": (f"Bearer {provider.token('k1', alg='PS256')}", False),
        "shared secret": ("Bearer " + jwt.encode({"iss": provider.issuer, "aud": AUDIENCE,
                                                  "exp": now + 300}, "secret-long-enough-for-hmac-sha256!",
                                                 algorithm="HS256"), False),
        "no token": ("Bearer", False),
        "two spaces": (f"Bearer  {provider.token()}", False),
        "missing": (None, False),
    }
    for name, (authorization, accepted) in cases.items():
        answers = {}
        for who, (grpc_address, http_address) in oidc_pair.items():
            status, _ = http_status(http_address, authorization)
            code, _ = grpc_code(grpc_address, authorization)
            answers[who] = (status, code)
        expected = (200, grpc.StatusCode.OK) if accepted else (401, grpc.StatusCode.UNAUTHENTICATED)
        assert answers["collector"] == expected, (name, answers)
        assert answers["trailhead"] == expected, (name, answers)
    # The reasons are the collector's.
    expired = f"Bearer {provider.token(exp=now - 60)}"
    for who, (grpc_address, _) in oidc_pair.items():
        _, details = grpc_code(grpc_address, expired)
        assert "failed to verify token: oidc: token is expired" in details, (who, details)
    _, missing = grpc_code(oidc_pair["trailhead"][0], None)
    assert missing == "authentication didn't succeed"


CORS = {"allowed_origins": ["https://*.example.com", "http://ui.test"], "allowed_headers": ["Content-Type", "Authorization"],
        "exposed_headers": ["X-Trace"], "max_age": 600}


def cors_headers(answer):
    """What a browser reads of an answer under CORS: the status and the Access-Control and Vary
    headers (Vary as a set of names: one header or several carry the same)."""
    found = {k.lower(): v for k, v in answer.headers.items() if k.lower().startswith("access-control-")}
    vary = {v.strip().lower() for v in answer.headers.get("Vary", "").split(",") if v.strip()}
    return answer.status_code, found, vary


# CORS side by side with the collector (confighttp wraps its handler, auth included, in
# rs/cors): preflights allowed and refused by origin, method and header; requests served and
# refused (401 without a token), from allowed and other origins. Same status, same headers.
def test_cors_side_by_side(provider, tmp_path, start_trailhead):
    settings = {"issuer_url": provider.issuer, "audience": AUDIENCE}
    grpc_port, http_port = free_port(), free_port()
    config = otlp_config(f"127.0.0.1:{grpc_port}", f"127.0.0.1:{http_port}", "oidc", settings)
    config["receivers"]["otlp"]["protocols"]["http"]["cors"] = CORS
    collector = run_collector(config, tmp_path, http_port)
    config = otlp_config("127.0.0.1:0", "127.0.0.1:0", "oidc", dict(settings))
    config["receivers"]["otlp"]["protocols"]["http"]["cors"] = CORS
    trailhead = start_trailhead(config)
    token = {"Authorization": f"Bearer {provider.token()}"}

    def preflight(origin, method="POST", headers="authorization,content-type"):
        asked = {"Origin": origin, "Access-Control-Request-Method": method}
        if headers:
            asked["Access-Control-Request-Headers"] = headers
        return lambda url: requests.options(url, headers=asked, timeout=10)

    def post(origin, extra=None):
        return lambda url: requests.post(url, json={}, headers={"Origin": origin, **(extra or {})}, timeout=10)

    cases = {
        "preflight, allowed origin": preflight("https://ui.example.com"),
        "preflight, exact origin": preflight("http://ui.test"),
        "preflight, other origin": preflight("https://evil.test"),
        "preflight, method not allowed": preflight("https://ui.example.com", method="PUT"),
        "preflight, header not allowed": preflight("https://ui.example.com", headers="x-custom"),
        "preflight, no headers asked": preflight("https://ui.example.com", headers=None),
        "post with token, allowed origin": post("https://a.b.example.com", token),
        "post with token, other origin": post("https://evil.test", token),
        "post without token, allowed origin": post("https://ui.example.com"),
        "post without token, other origin": post("https://evil.test"),
    }
    addresses = {"collector": f"127.0.0.1:{http_port}", "trailhead": trailhead.address("otlp (http)")}
    try:
        for name, send in cases.items():
            answers = {who: cors_headers(send(f"http://{address}/v1/traces")) for who, address in addresses.items()}
            assert answers["trailhead"] == answers["collector"], (name, answers)
    finally:
        collector.terminate()
        collector.wait(10)



# Keys: fetched when a token first needs them, cached, and fetched again for a key id the cache
# lacks, at most once per cool-down however many tokens name unknown keys (go-oidc fetches for
# every such token); a key the provider publishes later is then accepted by both. Each of
# trailhead's listeners (gRPC, HTTP) keeps its own cache, the collector one per extension.
def test_oidc_keys_are_cached_and_refreshed(provider, oidc_pair):
    trailhead_grpc, trailhead_http = oidc_pair["trailhead"]
    assert http_status(trailhead_http, f"Bearer {provider.token()}")[0] == 200
    assert provider.fetches["other"] == 1
    for _ in range(5):
        assert http_status(trailhead_http, f"Bearer {provider.token()}")[0] == 200
    assert provider.fetches["other"] == 1, "a known key is never fetched again"
    unknown = f"Bearer {provider.token('k2')}"
    for _ in range(20):
        assert http_status(trailhead_http, unknown)[0] == 401
        assert grpc_code(trailhead_grpc, unknown)[0] == grpc.StatusCode.UNAUTHENTICATED
    assert provider.fetches["other"] <= 2, provider.fetches
    for _ in range(3):
        assert http_status(oidc_pair["collector"][1], unknown)[0] == 401
    assert provider.fetches["go"] >= 3, provider.fetches
    # The provider rotates: k2 is published. After the cool-down, both accept its tokens.
    provider.published.add("k2")
    time.sleep(MIN_REFRESH + 0.5)
    for who, (grpc_address, http_address) in oidc_pair.items():
        assert http_status(http_address, unknown)[0] == 200, who
        assert grpc_code(grpc_address, unknown)[0] == grpc.StatusCode.OK, who
    assert provider.fetches["other"] <= 4, provider.fetches


# A provider that cannot be reached fails the start, in the collector and in trailhead.
def test_oidc_unreachable_provider_fails_the_start(tmp_path):
    config = otlp_config("127.0.0.1:0", "127.0.0.1:0", "oidc",
                         {"issuer_url": f"http://127.0.0.1:{free_port()}", "audience": AUDIENCE})
    path = tmp_path / "trailhead.yaml"
    path.write_text(json.dumps(config))
    run = subprocess.run([str(BINARY), "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "failed to get configuration from the auth server" in run.stderr, run.stderr[-2000:]


def basic(user, password):
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# basicauth as a server: users of an htpasswd file (bcrypt, as `htpasswd -B` writes) and of
# inline lines ({SHA} and plain; inline wins over the file), checked on OTLP/HTTP with
# requests' own basic auth and on gRPC with grpcio, refused with the collector's messages.
def test_basicauth_server(tmp_path, start_trailhead):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:" + bcrypt.hashpw(b"wonderland", bcrypt.gensalt(5)).decode() + "\ncarol:old\n")
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"builder").digest()).decode()
    settings = {"htpasswd": {"file": str(htpasswd), "inline": f"bob:{sha}\ncarol:new\n"}}
    trailhead = start_trailhead(otlp_config("127.0.0.1:0", "127.0.0.1:0", "basicauth/in", settings))
    url = trailhead.url("otlp (http)", "/v1/traces")
    for user, password in [("alice", "wonderland"), ("bob", "builder"), ("carol", "new")]:
        assert requests.post(url, json={}, auth=(user, password), timeout=5).status_code == 200, user
    refusals = {
        "invalid credentials": {"Authorization": basic("carol", "old")},
        "no basic auth provided": {},
        "invalid authorization scheme prefix": {"Authorization": "Bearer x"},
        "invalid authorization format": {"Authorization": "Basic !!notbase64"},
    }
    for message, headers in refusals.items():
        refused = requests.post(url, json={}, headers=headers, timeout=5)
        assert refused.status_code == 401 and message in refused.text, (message, refused.text)
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
    grpc_address = trailhead.address("otlp (grpc)")
    assert grpc_code(grpc_address, basic("alice", "wonderland"))[0] == grpc.StatusCode.OK
    assert grpc_code(grpc_address, basic("alice", "guess")) == (grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    assert not any("wonderland" in json.dumps(entry) for entry in trailhead.logs)


@pytest.fixture
def tls_sink(tmp_path):
    """The gRPC sink behind TLS, with its CA as a file: credentials go over TLS only."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    key = cert.private_key_pem.bytes()
    chain = b"".join(p.bytes() for p in cert.cert_chain_pems)
    s = Sink(credentials=grpc.ssl_server_credentials([(key, chain)]))
    s.ca_file = str(ca_file)
    yield s
    s.stop()


def export_one_span(trailhead):
    requests.post(trailhead.url("otlp (http)", "/v1/traces"), timeout=5, json={"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "op"}]}]}]})


# basicauth as a client: the otlp exporter sends `authorization: Basic …` (from files, as the
# collector's `username_file`/`password_file`) over TLS; over plain text the start is refused,
# as grpc-go refuses to send these credentials there.
def test_basicauth_client(tmp_path, tls_sink, start_trailhead):
    (tmp_path / "user").write_text("gateway\n")
    (tmp_path / "password").write_text("p4ss\n")
    client = {"client_auth": {"username_file": str(tmp_path / "user"), "password_file": str(tmp_path / "password")}}
    config = gateway_config(tls_sink.endpoint, auth={"authenticator": "basicauth/out"})
    config["exporters"]["otlp/sink"]["tls"] = {"ca_file": tls_sink.ca_file}
    config["extensions"]["basicauth/out"] = client
    config["service"]["extensions"].append("basicauth/out")
    trailhead = start_trailhead(config)
    export_one_span(trailhead)
    assert tls_sink.wait_for("traces", 1) == 1
    assert tls_sink.metadata[0]["authorization"] == basic("gateway", "p4ss")

    config["exporters"]["otlp/sink"]["tls"] = {"insecure": True}
    path = tmp_path / "plain.yaml"
    path.write_text(json.dumps(config))
    run = subprocess.run([str(BINARY), "run", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "only over TLS" in run.stderr, run.stderr[-2000:]
    assert "p4ss" not in run.stderr


class HeaderCapture:
    """An OTLP/HTTP endpoint that records each request's headers."""

    def __init__(self):
        self.headers = []
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                capture.headers.append({k.lower(): v for k, v in self.headers.items()})
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# headers_setter: `value`, `value_file`, and a context source behind a batch processor (where
# the collector drops the context too, so both send `default_value`), with the collector's
# actions: on HTTP they see the exporter's configured headers (`delete` removes one, `insert`
# keeps one); on gRPC they start from an empty map sent beside them.
def test_headers_setter(tmp_path, sink, start_trailhead):
    (tmp_path / "team").write_text("platform\n")
    capture = HeaderCapture()
    setter = {"headers": [
        {"key": "X-Scope-OrgID", "value": "tenant-a", "action": "upsert"},
        {"key": "X-Team", "value_file": str(tmp_path / "team")},
        {"key": "X-Client", "from_context": "client", "default_value": "anonymous", "action": "insert"},
        {"key": "X-Drop", "action": "delete"},
        {"key": "X-Keep", "value": "setter", "action": "insert"},
    ]}
    config = gateway_config(sink.endpoint, auth={"authenticator": "headers_setter/out"},
                            headers={"X-Drop": "configured", "X-Keep": "configured"})
    config["exporters"]["otlp_http/capture"] = {"endpoint": capture.url, "auth": {"authenticator": "headers_setter/out"},
                                                "headers": {"X-Drop": "configured", "X-Keep": "configured"}}
    config["processors"] = {"batch": {"timeout": "20ms"}}
    config["extensions"]["headers_setter/out"] = setter
    config["service"]["extensions"].append("headers_setter/out")
    for pipeline in config["service"]["pipelines"].values():
        pipeline["processors"] = ["batch"]
    config["service"]["pipelines"]["traces"]["exporters"].append("otlp_http/capture")
    trailhead = start_trailhead(config)
    export_one_span(trailhead)
    assert sink.wait_for("traces", 1) == 1
    deadline = time.time() + 10
    while not capture.headers and time.time() < deadline:
        time.sleep(0.05)
    sent = capture.headers[0]
    assert (sent["x-scope-orgid"], sent["x-team"], sent["x-client"]) == ("tenant-a", "platform", "anonymous")
    assert "x-drop" not in sent and sent["x-keep"] == "configured"
    grpc_sent = sink.metadata[0]
    assert (grpc_sent["x-scope-orgid"], grpc_sent["x-team"], grpc_sent["x-client"]) == ("tenant-a", "platform", "anonymous")
    assert grpc_sent["x-drop"] == "configured"
    capture.server.shutdown()


def validate(tmp_path, config):
    path = tmp_path / "check.yaml"
    path.write_text(json.dumps(config, indent=2))
    return subprocess.run([str(BINARY), "validate", "--config", str(path)], capture_output=True, text=True)


# What the collector refuses, or what trailhead cannot do faithfully, is refused at its line:
# an authenticator on the side it cannot serve, basicauth with both sides, and a context
# source where the collector would send the request's value and trailhead only the default.
def test_refusals(tmp_path, sink):
    def config_with(extension, settings, receiver_auth=None, exporter_auth=None, include_metadata=False):
        config = gateway_config(sink.endpoint)
        config["receivers"]["otlp"]["protocols"]["http"]["include_metadata"] = include_metadata
        config["extensions"][extension] = settings
        config["service"]["extensions"].append(extension)
        if receiver_auth:
            config["receivers"]["otlp"]["protocols"]["grpc"]["auth"] = {"authenticator": extension}
        if exporter_auth:
            config["exporters"]["otlp/sink"]["auth"] = {"authenticator": extension}
        return config

    oidc = {"issuer_url": "http://127.0.0.1:1", "audience": AUDIENCE}
    checks = [
        (config_with("oidc", oidc, exporter_auth=True), "is not a client authenticator"),
        (config_with("headers_setter", {"headers": [{"key": "a", "value": "b"}]}, receiver_auth=True),
         "is not a server authenticator"),
        (config_with("basicauth", {"htpasswd": {"inline": "a:b"}}, exporter_auth=True), "is not a client authenticator"),
        (config_with("basicauth", {"htpasswd": {"inline": "a:b"}, "client_auth": {"username": "u"}}),
         "only one of `htpasswd` or `client_auth`"),
        (config_with("headers_setter", {"headers": [{"key": "X-Tenant", "from_context": "tenant"}]}, exporter_auth=True,
                     include_metadata=True),
         "from_context: tenant: trailhead keeps no request context"),
        (config_with("oidc", {"audience": AUDIENCE}), "no IssuerURL provided"),
    ]
    for config, message in checks:
        checked = validate(tmp_path, config)
        assert checked.returncode != 0 and message in checked.stderr + checked.stdout, (message, checked.stderr)
        assert "check.yaml:" in checked.stderr + checked.stdout

    # Without `include_metadata` (or `auth`, for `from_attribute`) on its receivers, the
    # collector's context has nothing for the source either and it sends default_value, as
    # trailhead does: accepted.
    for source in ("from_context", "from_attribute"):
        setter = {"headers": [{"key": "X-Tenant", source: "tenant", "default_value": "none"}]}
        checked = validate(tmp_path, config_with("headers_setter", setter, exporter_auth=True))
        assert checked.returncode == 0, (source, checked.stderr)
