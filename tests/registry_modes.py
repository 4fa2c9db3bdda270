"""Test infrastructure for registry configurations beyond ``analyzerd.testing.LocalRegistry``.

* :class:`TlsAuthRegistry`   -- Distribution over HTTPS (trustme CA) with htpasswd Basic auth.
* :class:`TokenAuthRegistry` -- Distribution with ``auth: token`` plus a Docker token server
  (RS256 JWTs whose ``x5c`` header carries the signing certificate).
* :class:`FaultProxy`        -- an HTTP reverse proxy that can truncate, corrupt, throttle or
  redirect blob downloads.
* :class:`BlobMirror`        -- a second host that serves blobs fetched from a registry and
  records the headers it was sent (to check that credentials are not leaked on redirects).

Everything listens on 127.0.0.1 only and keeps its state under the ``root`` directory it is
given. ``trustme``, ``bcrypt`` and ``pyjwt[crypto]`` (with ``cryptography``) are imported only
by the classes that need them, so the proxy and the mirror work with the standard library alone.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import http.client
import http.server
import json
import os
import secrets
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from typing import Any, NamedTuple

from analyzerd.testing import Blob, Image, LocalRegistry

__all__ = [
    "BlobMirror",
    "FaultProxy",
    "Headers",
    "ProxyRequest",
    "TlsAuthRegistry",
    "TokenAuthRegistry",
    "basic_auth",
    "fetch_bearer_token",
    "http_request",
    "libtrust_key_id",
    "parse_challenge",
]

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
              "te", "trailer", "trailers", "transfer-encoding", "upgrade"}
BLOB_MARK = "/blobs/sha256:"


# -- small HTTP client helpers (urllib) ----------------------------------------------------

class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D401 - urllib API
        return None


class Headers(dict):
    """A plain dict of headers (original spelling kept) with case-insensitive lookups."""

    def _key(self, name: str) -> str | None:
        lower = name.lower()
        for key in dict.keys(self):
            if key.lower() == lower:
                return key
        return None

    def __getitem__(self, name: str) -> str:
        key = self._key(name)
        if key is None:
            raise KeyError(name)
        return dict.__getitem__(self, key)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None

    def get(self, name: str, default: Any = None) -> Any:
        key = self._key(name)
        return default if key is None else dict.__getitem__(self, key)


def _headers_of(message: Any) -> Headers:
    out = Headers()
    for name, value in message.items():
        if name in out:  # repeated header: join as HTTP allows
            out[out._key(name)] = out[name] + ", " + value
        else:
            out[name] = value
    return out


def http_request(method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None, *,
                 context: ssl.SSLContext | None = None, follow_redirects: bool = False,
                 timeout: float = 60) -> tuple[int, Headers, bytes]:
    """One request with urllib; returns (status, headers, body) for every HTTP status.

    Redirects are *not* followed unless asked (a 3xx comes back as is)."""
    handlers: list[Any] = [urllib.request.HTTPSHandler(context=context)] if context else []
    if not follow_redirects:
        handlers.append(_NoRedirect())
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with opener.open(req, timeout=timeout) as resp:
            return resp.status, _headers_of(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read()
        except OSError:
            body = b""
        return exc.code, _headers_of(exc.headers), body


def basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Bearer realm="x",service="y",scope="a,b"`` -> ("bearer", {...}). Quoted values may hold commas."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " ,":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        key = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            i += 1
            value = []
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(rest[i])
                i += 1
            i += 1
            params[key] = "".join(value)
        else:
            end = rest.find(",", i)
            end = n if end < 0 else end
            params[key] = rest[i:end].strip()
            i = end
    return scheme.lower(), params


def fetch_bearer_token(www_authenticate: str, username: str | None = None, password: str | None = None, *,
                       context: ssl.SSLContext | None = None) -> str:
    """What a generic client does after a 401: GET realm?service=..&scope=.. and return the token."""
    scheme, params = parse_challenge(www_authenticate)
    if scheme != "bearer":
        raise ValueError(f"not a Bearer challenge: {www_authenticate!r}")
    query = [(k, params[k]) for k in ("service", "scope") if params.get(k)]
    url = params["realm"] + ("?" + urllib.parse.urlencode(query) if query else "")
    headers = {"Authorization": basic_auth(username, password)} if username is not None else {}
    status, _, body = http_request("GET", url, headers=headers, context=context)
    if status != 200:
        raise PermissionError(f"token server answered {status}: {body[:200]!r}")
    doc = json.loads(body)
    return doc.get("token") or doc["access_token"]


# -- pushing with auth/TLS -----------------------------------------------------------------

class _Pusher:
    """testing.push_image with an SSL context and an Authorization header."""

    def __init__(self, base: str, authorization: str | None = None, context: ssl.SSLContext | None = None):
        self.base, self.authorization, self.context = base.rstrip("/"), authorization, context

    def request(self, method: str, url: str, data: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, Headers, bytes]:
        h = dict(headers or {})
        if self.authorization:
            h["Authorization"] = self.authorization
        return http_request(method, url, data, h, context=self.context)

    def _abs(self, location: str) -> str:
        return location if location.startswith("http") else self.base + location

    def push_blob(self, repo: str, blob: Blob, chunk_size: int | None = None) -> None:
        status, _, _ = self.request("HEAD", f"{self.base}/v2/{repo}/blobs/{blob.digest}")
        if status == 200:
            return
        status, headers, body = self.request("POST", f"{self.base}/v2/{repo}/blobs/uploads/", b"")
        assert status == 202, (status, body)
        location = self._abs(headers["Location"])
        data = blob.data
        if chunk_size:
            offset = 0
            while offset < len(blob.data):
                piece = blob.data[offset:offset + chunk_size]
                status, headers, body = self.request("PATCH", location, piece, {
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(piece) - 1}"})
                assert status == 202, (status, body)
                location = self._abs(headers["Location"])
                offset += len(piece)
            data = b""
        sep = "&" if "?" in location else "?"
        status, _, body = self.request("PUT", f"{location}{sep}digest={blob.digest}", data,
                                       {"Content-Type": "application/octet-stream"})
        assert status == 201, (status, body)
        status, _, _ = self.request("HEAD", f"{self.base}/v2/{repo}/blobs/{blob.digest}")
        assert status == 200, status

    def push_manifest(self, repo: str, reference: str, manifest: Blob) -> None:
        status, _, body = self.request("PUT", f"{self.base}/v2/{repo}/manifests/{reference}", manifest.data,
                                       {"Content-Type": manifest.media_type})
        assert status == 201, (status, body)

    def push_image(self, repo: str, tag: str, image: Image, chunk_size: int | None = None) -> str:
        for blob in image.blobs():
            self.push_blob(repo, blob, chunk_size)
        self.push_manifest(repo, tag, image.manifest)
        return image.manifest.digest


class TlsAuthRegistry(LocalRegistry):
    """Distribution over HTTPS (certificate for 127.0.0.1 and localhost from a trustme CA)
    with htpasswd Basic auth (bcrypt)."""

    realm = "analyzerd-test-realm"

    def __init__(self, root: str, username: str = "analyzer", password: str | None = None) -> None:
        super().__init__(root)
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(16)
        self.url = f"https://{self.host}"
        self.ca_path = os.path.join(self.root, "ca.pem")
        self.cert_path = os.path.join(self.root, "server.pem")
        self.key_path = os.path.join(self.root, "server-key.pem")
        self.htpasswd_path = os.path.join(self.root, "htpasswd")
        self._ca: Any = None

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value for the right credentials."""
        return basic_auth(self.username, self.password)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA."""
        return ssl.create_default_context(cafile=self.ca_path)

    def _http_config(self) -> str:
        return f"""  tls:
    certificate: {self.cert_path}
    key: {self.key_path}
"""

    def _extra_config(self) -> str:
        return f"""auth:
  htpasswd:
    realm: {self.realm}
    path: {self.htpasswd_path}
"""

    def _probe_context(self) -> ssl.SSLContext | None:
        return self.ssl_context()

    def start(self) -> TlsAuthRegistry:
        import bcrypt
        import trustme

        self._ca = trustme.CA(organization_name="analyzerd test CA")
        leaf = self._ca.issue_cert("127.0.0.1", "localhost", common_name="127.0.0.1")
        self._ca.cert_pem.write_to_path(self.ca_path)
        with open(self.cert_path, "wb") as f:
            for pem in leaf.cert_chain_pems:
                f.write(pem.bytes())
        leaf.private_key_pem.write_to_path(self.key_path)
        os.chmod(self.key_path, 0o600)
        hashed = bcrypt.hashpw(self.password.encode(), bcrypt.gensalt(rounds=5)).decode()
        with open(self.htpasswd_path, "w") as f:
            f.write(f"{self.username}:{hashed}\n")
        self._launch()
        return self

    def push(self, repo: str, tag: str, image: Image, chunk_size: int | None = None) -> str:
        """Push blobs and manifest over verified TLS with Basic auth; returns the manifest digest."""
        return _Pusher(self.url, self.authorization, self.ssl_context()).push_image(repo, tag, image, chunk_size)


# -- threaded stdlib HTTP servers ------------------------------------------------------------

class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr: tuple[str, int], handler: type, owner: Any) -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address):  # type: ignore[override]
        with self._conns_lock:
            self._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):  # type: ignore[override]
        with self._conns_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request, client_address):  # type: ignore[override]
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        super().handle_error(request, client_address)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end on their own
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass

    def read_body(self) -> bytes | None:
        """The request body (Content-Length or chunked), or None when there is none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(parts)
        length = self.headers.get("Content-Length")
        if length is None:
            return None
        return self.rfile.read(int(length))

    def send_simple(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                    content_type: str = "application/json") -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)


class _ThreadedServer:
    """Owns one _Server in a background thread."""

    _handler: type

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.host = ""
        self.url = ""

    def _serve(self, port: int | None = None) -> None:
        # binding port 0 lets the kernel choose a free port atomically (no race with free_port)
        self._server = _Server(("127.0.0.1", port or 0), self._handler, self)
        self.port = self._server.server_address[1]
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"{type(self).__name__}:{self.port}", daemon=True)
        self._thread.start()

    def _shutdown(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(10)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()  # type: ignore[attr-defined]

    def __exit__(self, *exc: Any) -> None:
        self.stop()  # type: ignore[attr-defined]


# -- token auth ------------------------------------------------------------------------------

def libtrust_key_id(public_key: Any) -> str:
    """The libtrust fingerprint distribution uses for ``kid``: base32 of the first 240 bits of
    SHA-256 over the DER SubjectPublicKeyInfo, in groups of four joined by ':'."""
    from cryptography.hazmat.primitives import serialization
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


class _TokenHandler(_Handler):
    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path != "/token":
            self.send_simple(404, b'{"error":"not found"}')
            return
        query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
        self.server.owner._answer_token(self, query, self.headers.get("Authorization"), None, None)

    def do_POST(self) -> None:  # the OAuth2 flavour: grant_type=password
        parsed = urllib.parse.urlsplit(self.path)
        body = self.read_body() or b""
        if parsed.path != "/token":
            self.send_simple(404, b'{"error":"not found"}')
            return
        form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True)
        if form.get("grant_type", [""])[0] != "password":
            self.send_simple(400, b'{"error":"unsupported_grant_type"}')
            return
        self.server.owner._answer_token(self, form, None, form.get("username", [None])[0],
                                        form.get("password", [None])[0])


class TokenAuthRegistry(LocalRegistry):
    """Distribution with ``auth: token`` and a Docker token server on another port.

    Tokens are RS256 JWTs signed with a self-signed RSA certificate that is also the registry's
    ``rootcertbundle``; the JWT header carries it in ``x5c`` (and its libtrust ``kid``).
    Anonymous requests get pull (if ``anonymous_pull``), the right credentials get pull+push
    (and ``delete``/``*`` if asked), wrong credentials get 401 from the token server.

    ``strict_expiry``: distribution accepts a token until exp + 60 s (fixed leeway); with this on,
    the ``exp`` claim is set 60 s early so the registry starts refusing right at ``expires_in``.
    """

    service = "analyzerd-test-registry"
    issuer = "analyzerd-test-issuer"

    def __init__(self, root: str, username: str = "analyzer", password: str | None = None,
                 anonymous_pull: bool = True, token_ttl: int = 300, strict_expiry: bool = False) -> None:
        super().__init__(root)
        self.username = username
        self.password = password if password is not None else secrets.token_urlsafe(16)
        self.anonymous_pull = anonymous_pull
        self.token_ttl = token_ttl
        self.strict_expiry = strict_expiry
        self.url = f"http://{self.host}"
        self.token_requests: list[dict[str, Any]] = []
        self.issued: list[dict[str, Any]] = []  # claims of every token handed out
        self.signing_cert_path = os.path.join(self.root, "token-signing.pem")
        self.signing_key_path = os.path.join(self.root, "token-signing-key.pem")
        self._token_server = _ThreadedServer()
        self._token_server._handler = _TokenHandler
        self._token_server._answer_token = self._answer_token  # type: ignore[attr-defined]
        self._lock = threading.Lock()
        self._fault: list[Any] | None = None  # [status, remaining]
        self._key: Any = None
        self._x5c: list[str] = []
        self._kid = ""
        self.token_url = ""

    # -- knobs
    def token_fault(self, status: int, times: int = 1) -> None:
        """Answer the next ``times`` token requests with ``status`` (e.g. 500, 503)."""
        with self._lock:
            self._fault = [status, times]

    def reset(self) -> None:
        with self._lock:
            self._fault = None

    @property
    def authorization(self) -> str:
        return basic_auth(self.username, self.password)

    # -- lifecycle
    def _extra_config(self) -> str:
        return f"""auth:
  token:
    realm: {self.token_url}
    service: {self.service}
    issuer: {self.issuer}
    rootcertbundle: {self.signing_cert_path}
"""

    def _make_signing_cert(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "analyzerd test token signer")])
        now = _dt.datetime.now(_dt.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False, key_agreement=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .sign(key, hashes.SHA256()))
        with open(self.signing_cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(self.signing_key_path, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        os.chmod(self.signing_key_path, 0o600)
        self._key = key
        # x5c is standard (padded) base64 of DER, not base64url: distribution decodes it with StdEncoding
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self._kid = libtrust_key_id(key.public_key())

    def start(self) -> TokenAuthRegistry:
        import jwt  # noqa: F401 - fail early when pyjwt is missing

        self._make_signing_cert()
        self._token_server._serve()
        self.token_host = self._token_server.host
        self.token_url = f"{self._token_server.url}/token"
        try:
            self._launch()
        except BaseException:
            self._token_server._shutdown()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        self._token_server._shutdown()

    # -- tokens
    def issue_token(self, access: list[dict[str, Any]] | None = None, subject: str = "",
                    ttl: int | None = None, audience: str | None = None, issuer: str | None = None) -> str:
        """Mint a token directly (no HTTP). ``access``: [{"type","name","actions"}]."""
        import jwt

        ttl = self.token_ttl if ttl is None else ttl
        now = int(time.time())
        claims = {"iss": issuer or self.issuer, "sub": subject, "aud": audience or self.service,
                  "exp": now + ttl - (60 if self.strict_expiry else 0), "nbf": now - 1, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access or []}
        self.issued.append(claims)
        return jwt.encode(claims, self._key, algorithm="RS256",
                          headers={"typ": "JWT", "x5c": self._x5c, "kid": self._kid})

    def _grant(self, scopes: list[str], user: str | None) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            rtype, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if not rtype or not name:
                continue
            wanted = [a for a in actions.split(",") if a]
            if rtype == "repository":
                allowed = {"pull", "push", "delete", "*"} if user else {"pull"}
            else:  # registry:catalog:* and the like: authenticated users only
                allowed = {"*"} if user else set()
            granted = [a for a in wanted if a in allowed]
            access.append({"type": rtype, "name": name, "actions": granted})
        return access

    def _answer_token(self, handler: _Handler, query: dict[str, list[str]], authorization: str | None,
                      form_user: str | None, form_password: str | None) -> None:
        scopes = [s for raw in query.get("scope", []) for s in raw.split(" ") if s]
        service = query.get("service", [None])[0]
        record: dict[str, Any] = {"scope": " ".join(scopes) or None, "scopes": scopes, "service": service,
                                  "user": None, "status": None, "account": query.get("account", [None])[0],
                                  "method": handler.command}
        self.token_requests.append(record)
        with self._lock:
            fault = self._fault
            if fault and fault[1] > 0:
                fault[1] -= 1
                status = fault[0]
            else:
                status = None
        if status is not None:
            record["status"] = status
            handler.send_simple(status, json.dumps({"error": "injected fault"}).encode())
            return

        user: str | None = None
        given: tuple[str, str] | None = None
        if form_user is not None:
            given = (form_user, form_password or "")
        elif authorization and authorization.lower().startswith("basic "):
            try:
                u, _, p = base64.b64decode(authorization[6:].strip()).decode().partition(":")
                given = (u, p)
            except ValueError:
                given = ("", "")
        if given is not None:
            record["user"] = given[0]
            if not (secrets.compare_digest(given[0], self.username)
                    and secrets.compare_digest(given[1], self.password)):
                record["status"] = 401
                handler.send_simple(401, b'{"details":"incorrect username or password"}',
                                    {"WWW-Authenticate": 'Basic realm="analyzerd-test-token"'})
                return
            user = given[0]
        elif not self.anonymous_pull:
            record["status"] = 401
            handler.send_simple(401, b'{"details":"authentication required"}',
                                {"WWW-Authenticate": 'Basic realm="analyzerd-test-token"'})
            return

        token = self.issue_token(self._grant(scopes, user), subject=user or "",
                                 audience=service or self.service)
        issued_at = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({"token": token, "access_token": token, "expires_in": self.token_ttl,
                           "issued_at": issued_at}).encode()
        record["status"] = 200
        handler.send_simple(200, body)

    def get_token(self, scope: str | list[str] | None = None, username: str | None = None,
                  password: str | None = None) -> str:
        """Ask the token server over HTTP (Basic auth when username is given)."""
        query: list[tuple[str, str]] = [("service", self.service)]
        for s in ([scope] if isinstance(scope, str) else scope or []):
            query.append(("scope", s))
        headers = {"Authorization": basic_auth(username, password or "")} if username is not None else {}
        status, _, body = http_request("GET", f"{self.token_url}?{urllib.parse.urlencode(query)}", headers=headers)
        if status != 200:
            raise PermissionError(f"token server answered {status}: {body[:200]!r}")
        return json.loads(body)["token"]

    def push(self, repo: str, tag: str, image: Image, chunk_size: int | None = None) -> str:
        """Get a pull+push token with the right credentials and push with ``Authorization: Bearer``."""
        token = self.get_token(f"repository:{repo}:pull,push", self.username, self.password)
        return _Pusher(self.url, f"Bearer {token}").push_image(repo, tag, image, chunk_size)


# -- fault-injecting reverse proxy -----------------------------------------------------------

class ProxyRequest(NamedTuple):
    method: str
    path: str  # path with query, as received
    headers: Headers
    received_at: float = 0.0  # time.monotonic() when it arrived


def _error_body(status: int) -> bytes:
    code = {429: "TOOMANYREQUESTS", 401: "UNAUTHORIZED", 403: "DENIED", 404: "BLOB_UNKNOWN"}.get(status, "UNAVAILABLE")
    return json.dumps({"errors": [{"code": code, "message": f"injected {status}", "detail": None}]}).encode()


class _ProxyHandler(_Handler):
    def _handle(self) -> None:
        self.server.owner._proxy(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _handle


class FaultProxy(_ThreadedServer):
    """A reverse proxy on 127.0.0.1 in front of ``upstream`` (``http://host:port``).

    Forwards method, path, query, headers (Host too, so upload Locations point back at the
    proxy) and body; relays status, headers and body (streamed). Faults apply to requests whose
    path contains ``/blobs/sha256:`` (the body faults to GETs answered 200/206 only):

    * ``drop_after(n, times)``: send headers and n body bytes, then close the connection.
    * ``slow_blobs(seconds)``: pause before each 64 KiB of every blob body.
    * ``status_burst(status, times, retry_after, all_paths)``: answer without asking upstream.
    * ``corrupt(times)``: flip one byte in the middle of the body.
    * ``redirect_blobs_to(base, times=None)``: 307 to base + path + query (until reset by default).

    ``requests`` lists every request received; ``injected`` lists (fault, method, path) applied.
    """

    _handler = _ProxyHandler

    def __init__(self, upstream: str, port: int | None = None, upstream_context: ssl.SSLContext | None = None) -> None:
        super().__init__()
        parts = urllib.parse.urlsplit(upstream)
        self.upstream = upstream.rstrip("/")
        self._up_scheme = parts.scheme
        self._up_host = parts.hostname or "127.0.0.1"
        self._up_port = parts.port or (443 if parts.scheme == "https" else 80)
        self._up_prefix = parts.path.rstrip("/")
        self._up_context = upstream_context
        self._want_port = port
        self.requests: list[ProxyRequest] = []
        self.injected: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self.reset()

    # -- lifecycle
    def start(self) -> FaultProxy:
        self._serve(self._want_port)
        return self

    def stop(self) -> None:
        self._shutdown()

    # -- knobs (thread-safe)
    def reset(self) -> None:
        """Clear every fault (not the request log)."""
        with self._lock:
            self._drop: list[int] = [0, 0]  # [n_bytes, remaining]
            self._pause = 0.0  # seconds before each 64 KiB of a blob body
            self._corrupt = 0
            self._status: dict[str, Any] | None = None
            self._redirect: dict[str, Any] | None = None

    def slow_blobs(self, seconds_per_64k: float) -> None:
        """Every blob body trickles: a pause before each 64 KiB (a slow or stalled registry)."""
        with self._lock:
            self._pause = seconds_per_64k

    def drop_after(self, n_bytes: int, times: int = 1) -> None:
        with self._lock:
            self._drop = [n_bytes, times]

    def status_burst(self, status: int, times: int, retry_after: int | str | None = None,
                     all_paths: bool = False, path_contains: str | None = None, bare: bool = False) -> None:
        """``path_contains``: only requests whose path holds it (``/manifests/``), instead of blobs.
        ``bare``: no error body (a CDN or load balancer in front of the registry answers so)."""
        with self._lock:
            self._status = {"status": status, "remaining": times, "retry_after": retry_after,
                            "all_paths": all_paths, "path_contains": path_contains, "bare": bare}

    def corrupt(self, times: int = 1) -> None:
        with self._lock:
            self._corrupt = times

    def redirect_blobs_to(self, other_base_url: str, times: int | None = None) -> None:
        with self._lock:
            self._redirect = {"base": other_base_url.rstrip("/"), "remaining": times}

    def clear_requests(self) -> None:
        self.requests.clear()
        self.injected.clear()

    def blob_requests(self, method: str = "GET") -> list[ProxyRequest]:
        return [r for r in self.requests if r.method == method and BLOB_MARK in r.path]

    # -- decisions
    def _take_early(self, method: str, path: str) -> tuple[str, Any] | None:
        is_blob = BLOB_MARK in urllib.parse.urlsplit(path).path
        with self._lock:
            st = self._status
            wanted = st is not None and (st["all_paths"] or (
                st["path_contains"] in path if st["path_contains"] else is_blob))
            if st and st["remaining"] > 0 and wanted:
                st["remaining"] -= 1
                return "status", st
            rd = self._redirect
            if rd and is_blob and method == "GET" and (rd["remaining"] is None or rd["remaining"] > 0):
                if rd["remaining"] is not None:
                    rd["remaining"] -= 1
                return "redirect", rd["base"]
        return None

    def _take_body_faults(self, method: str, path: str, status: int) -> tuple[int | None, bool]:
        if method != "GET" or status not in (200, 206) or BLOB_MARK not in urllib.parse.urlsplit(path).path:
            return None, False
        with self._lock:
            drop = None
            if self._drop[1] > 0:
                self._drop[1] -= 1
                drop = self._drop[0]
            corrupt = self._corrupt > 0
            if corrupt:
                self._corrupt -= 1
        return drop, corrupt

    # -- the proxying
    def _connect(self) -> http.client.HTTPConnection:
        if self._up_scheme == "https":
            return http.client.HTTPSConnection(self._up_host, self._up_port, timeout=60, context=self._up_context)
        return http.client.HTTPConnection(self._up_host, self._up_port, timeout=60)

    def _proxy(self, h: _Handler) -> None:
        method, path = h.command, h.path
        self.requests.append(ProxyRequest(method, path, _headers_of(h.headers), time.monotonic()))
        early = self._take_early(method, path)
        if early is not None and early[0] == "status":
            st = early[1]
            self.injected.append((f"status:{st['status']}", method, path))
            body = _error_body(st["status"]) if method != "HEAD" and not st.get("bare") else b""
            h.read_body()
            extra = {"Retry-After": str(st["retry_after"])} if st["retry_after"] is not None else {}
            h.send_simple(st["status"], body, extra)
            return
        if early is not None and early[0] == "redirect":
            self.injected.append(("redirect", method, path))
            h.read_body()
            h.send_simple(307, b"", {"Location": early[1] + path}, content_type="")
            return

        body = h.read_body()
        conn = self._connect()
        try:
            conn.putrequest(method, self._up_prefix + path, skip_host=True, skip_accept_encoding=True)
            for name, value in h.headers.items():
                if name.lower() in HOP_BY_HOP or name.lower() in ("content-length", "expect"):
                    continue
                conn.putheader(name, value)
            if "Host" not in h.headers:
                conn.putheader("Host", f"{self._up_host}:{self._up_port}")
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
        except OSError as exc:
            conn.close()
            h.send_simple(502, json.dumps({"errors": [{"code": "UNAVAILABLE", "message": str(exc)}]}).encode())
            return
        try:
            self._relay(h, resp, method, path)
        finally:
            conn.close()

    def _relay(self, h: _Handler, resp: http.client.HTTPResponse, method: str, path: str) -> None:
        status = resp.status
        no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
        length_header = resp.getheader("Content-Length")
        if no_body:
            data = None
            length = None
        elif length_header is not None:
            data = None
            length = int(length_header)
        else:  # chunked or read-to-close upstream: buffer it and send with a length
            data = resp.read()
            length = len(data)
        drop, corrupt = (None, False) if no_body else self._take_body_faults(method, path, status)

        h.send_response_only(status, resp.reason)
        for name, value in resp.getheaders():
            lower = name.lower()
            if lower in HOP_BY_HOP or (lower == "content-length" and data is not None):
                continue
            h.send_header(name, value)
        if data is not None:
            h.send_header("Content-Length", str(length))
        h.end_headers()
        if no_body:
            h.wfile.flush()
            return

        flip_at = length // 2 if corrupt and length else None
        if flip_at is not None:
            self.injected.append(("corrupt", method, path))
        sent = 0
        limit = length if drop is None else min(drop, length or 0)
        source = _BytesReader(data) if data is not None else resp
        pause = self._pause if BLOB_MARK in urllib.parse.urlsplit(path).path else 0.0
        while sent < limit:
            if pause:
                time.sleep(pause)
            chunk = source.read(min(65536, limit - sent))
            if not chunk:
                break
            if flip_at is not None and sent <= flip_at < sent + len(chunk):
                buf = bytearray(chunk)
                buf[flip_at - sent] ^= 0xFF
                chunk = bytes(buf)
            try:
                h.wfile.write(chunk)
            except OSError:
                h.close_connection = True
                return
            sent += len(chunk)
        if drop is not None:
            self.injected.append((f"drop:{drop}", method, path))
            try:
                h.wfile.flush()
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            h.close_connection = True
        elif sent < (length or 0):  # upstream ended early: do not pretend the body is complete
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _BytesReader:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int) -> bytes:
        chunk = self._data[self._pos:self._pos + n]
        self._pos += len(chunk)
        return chunk


# -- another host serving blobs --------------------------------------------------------------

class _MirrorHandler(_Handler):
    def _handle(self) -> None:
        self.server.owner._serve_blob(self)

    do_GET = do_HEAD = _handle


class BlobMirror(_ThreadedServer):
    """A second host that serves ``GET/HEAD /v2/<name>/blobs/<digest>`` by fetching the blob from
    ``upstream`` (forwarding Range only, never the client's Authorization). For an upstream with
    auth it answers the challenge itself: Bearer (token from the realm, with ``username`` and
    ``password`` if given, else anonymous) or Basic. ``requests`` lists the header dict of every
    request received, ``paths`` the matching paths."""

    _handler = _MirrorHandler
    RELAYED = ("Content-Type", "Content-Length", "Content-Range", "Accept-Ranges", "Docker-Content-Digest",
               "ETag", "Last-Modified")

    def __init__(self, upstream: str, username: str | None = None, password: str | None = None,
                 context: ssl.SSLContext | None = None, port: int | None = None) -> None:
        super().__init__()
        self.upstream = upstream.rstrip("/")
        self.username, self.password, self.context = username, password, context
        self._want_port = port
        self.requests: list[Headers] = []
        self.paths: list[str] = []

    def start(self) -> BlobMirror:
        self._serve(self._want_port)
        return self

    def stop(self) -> None:
        self._shutdown()

    def _fetch(self, method: str, path: str, range_header: str | None) -> tuple[int, Headers, bytes]:
        headers = {"Range": range_header} if range_header else {}
        url = self.upstream + path
        status, resp_headers, body = http_request(method, url, headers=headers, context=self.context,
                                                  follow_redirects=True)
        challenge = resp_headers.get("WWW-Authenticate", "")
        if status == 401 and challenge:
            scheme, _ = parse_challenge(challenge)
            if scheme == "bearer":
                token = fetch_bearer_token(challenge, self.username, self.password, context=self.context)
                headers["Authorization"] = f"Bearer {token}"
            elif scheme == "basic" and self.username is not None:
                headers["Authorization"] = basic_auth(self.username, self.password or "")
            else:
                return status, resp_headers, body
            status, resp_headers, body = http_request(method, url, headers=headers, context=self.context,
                                                      follow_redirects=True)
        return status, resp_headers, body

    def _serve_blob(self, h: _Handler) -> None:
        self.requests.append(_headers_of(h.headers))
        self.paths.append(h.path)
        if not urllib.parse.urlsplit(h.path).path.startswith("/v2/") or "/blobs/" not in h.path:
            h.send_simple(404, _error_body(404))
            return
        try:
            status, headers, body = self._fetch(h.command, h.path, h.headers.get("Range"))
        except (OSError, PermissionError) as exc:
            h.send_simple(502, json.dumps({"errors": [{"code": "UNAVAILABLE", "message": str(exc)}]}).encode())
            return
        h.send_response(status)
        for name in self.RELAYED:
            if name != "Content-Length" and headers.get(name) is not None:
                h.send_header(name, headers[name])
        length = headers.get("Content-Length") if h.command == "HEAD" else str(len(body))
        h.send_header("Content-Length", length or "0")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)
