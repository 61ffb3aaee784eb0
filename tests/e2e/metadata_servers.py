"""Stand-ins for the three cloud metadata servers the resourcedetection processor's `ec2`,
`gcp` and `azure` detectors ask. No real one can run off its cloud, so these are fakes; each
speaks the protocol the collector's client libraries use, as the real server does, and refuses
what the real server refuses, so a detector that skips a step of the protocol fails its test:

- EC2 IMDS (what aws-sdk-go-v2's feature/ec2/imds sends; IMDSv2 "HttpTokens=required"): a
  `PUT /latest/api/token` must carry `X-aws-ec2-metadata-token-ttl-seconds` (1 to 21600, else
  400) and no `X-Forwarded-For` (403); the answer is the token with the TTL echoed in
  `X-Aws-Ec2-Metadata-Token-Ttl-Seconds`. A `GET` without a valid, unexpired token is 401.
  Paths: `/latest/meta-data/{instance-id,hostname,tags/instance[/<key>]}` (tag keys one a
  line) and `/latest/dynamic/instance-identity/document` (JSON); anything else is 404.
- GCE's metadata server (what cloud.google.com/go/compute/metadata sends): every request must
  carry `Metadata-Flavor: Google` (else 403) and no `X-Forwarded-For` (403); every answer
  carries `Metadata-Flavor: Google` back; values are plain text under `/computeMetadata/v1/`,
  a key the instance lacks is 404.
- Azure IMDS (what the collector's azure metadata provider sends): `Metadata: true` is required
  (else 400), so is an `api-version` (else 400), `X-Forwarded-For` is refused (400); the
  compute document is JSON with IMDS's own field names (`vmId`, `subscriptionId`...).

Every request is recorded (method, path, headers with lowercase names) so tests can check
what was asked.
"""

import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class _Server:
    """A threaded HTTP server on 127.0.0.1 at a port chosen by the OS."""

    def __init__(self, handler):
        self.requests = []
        outer = self

        class Handler(handler):
            server_state = outer

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state = None

    def _record(self):
        headers = {name.lower(): value for name, value in self.headers.items()}
        self.server_state.requests.append((self.command, self.path, headers))

    def _answer(self, status, body="", headers=None, content_type="text/plain"):
        data = body.encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class Imds(_Server):
    """EC2 IMDS with IMDSv2 required."""

    def __init__(self, document, hostname, tags):
        self.document, self.hostname, self.tags = document, hostname, tags
        self.tokens = {}
        super().__init__(_ImdsHandler)

    def values(self):
        tags = self.tags
        found = {"/latest/meta-data/instance-id": self.document["instanceId"],
                 "/latest/meta-data/hostname": self.hostname,
                 "/latest/dynamic/instance-identity/document": json.dumps(self.document, indent=2)}
        if tags is not None:  # None: InstanceMetadataTags disabled, the category is absent
            found["/latest/meta-data/tags/instance"] = "\n".join(tags)
            found.update({f"/latest/meta-data/tags/instance/{k}": v for k, v in tags.items()})
        return found


class _ImdsHandler(_Handler):
    def do_PUT(self):
        self._record()
        if self.path != "/latest/api/token":
            return self._answer(404, "Not Found")
        if "X-Forwarded-For" in self.headers:
            return self._answer(403, "Forbidden")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds", "")
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._answer(400, "Bad Request")
        token = secrets.token_urlsafe(32)
        self.server_state.tokens[token] = time.monotonic() + int(ttl)
        self._answer(200, token, {"X-Aws-Ec2-Metadata-Token-Ttl-Seconds": ttl})

    def do_GET(self):
        self._record()
        token = self.headers.get("X-aws-ec2-metadata-token")
        expires = self.server_state.tokens.get(token)
        if expires is None or expires < time.monotonic():
            return self._answer(401, "Unauthorized")
        value = self.server_state.values().get(self.path)
        if value is None:
            return self._answer(404, "Not Found")
        self._answer(200, value)


class GceMetadata(_Server):
    """GCE's metadata server, with the values given under /computeMetadata/v1/."""

    def __init__(self, values):
        self.values = values
        super().__init__(_GceHandler)


class _GceHandler(_Handler):
    def do_GET(self):
        self._record()
        flavor = {"Metadata-Flavor": "Google"}
        if self.headers.get("Metadata-Flavor") != "Google" or "X-Forwarded-For" in self.headers:
            return self._answer(403, "Missing required header", flavor)
        path = urlsplit(self.path).path
        prefix = "/computeMetadata/v1/"
        value = self.server_state.values.get(path[len(prefix):]) if path.startswith(prefix) else None
        if value is None:
            return self._answer(404, "Not Found", flavor, "text/html")
        self._answer(200, value, flavor, "application/text")


class AzureImds(_Server):
    """Azure IMDS serving one compute document."""

    def __init__(self, compute):
        self.compute = compute
        super().__init__(_AzureHandler)


class _AzureHandler(_Handler):
    def do_GET(self):
        self._record()
        url = urlsplit(self.path)
        query = parse_qs(url.query)

        def refuse(why):
            return self._answer(400, json.dumps({"error": why}), content_type="application/json")

        if self.headers.get("Metadata") != "true" or "X-Forwarded-For" in self.headers:
            return refuse("Bad request. Required metadata header not specified")
        if "api-version" not in query:
            return refuse("Bad request. api-version was not specified in the request.")
        if url.path != "/metadata/instance/compute":
            return self._answer(404, json.dumps({"error": "Not found"}), content_type="application/json")
        self._answer(200, json.dumps(self.server_state.compute), content_type="application/json")
