"""Registry client over aiohttp: manifests, config blobs, streamed layer blobs.

The handshake is the distribution spec's (go-containerregistry's transport spells it out):
ping ``/v2/`` once per host; a 200 needs no auth, a 401 carries the challenge. ``Bearer``:
ask the realm for a token with ``repository:NAME:pull`` scope (anonymously, or with Basic
credentials), cache it per (registry, realm, service, scope) until it expires, and on the
registry's own 401 fetch a fresh one once. ``Basic``: send the credentials. Credentials
never appear in logs or errors. Where credentials may go is decided in ``auth`` (its
docstring states the policy); this module asks it at every request, token fetch and redirect.

Schemes: a host with a configured CA is HTTPS, verified with that CA. A host marked
``insecure`` and loopback hosts (as Docker treats localhost) try HTTPS without
verification, then plain HTTP. Everything else is HTTPS, verified.

Robustness: connection errors, 5xx and 429 are retried with exponential backoff and jitter
(honouring Retry-After), bounded by ``RetryPolicy``; redirects are followed by hand so the
registry's Authorization header never goes to another host (object storage), and a challenge
from such a host is an error naming it, never answered and never remembered; a blob
download that breaks is resumed with a Range request (or restarted, skipping what was
already delivered), so the consumer sees each byte once, in order, and its digest check
stays exact.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urljoin, urlsplit

import aiohttp

from ..errors import AuthError, IntegrityError, ManifestError, NotFoundError, RegistryError
from ..model import Descriptor
from ..oci import ACCEPT_MANIFESTS, MAX_MANIFEST_SIZE, validate_digest
from ..reference import DOCKER_HUB, ImageRef, is_loopback_host
from .auth import (Challenge, RegistrySettings, TokenCache, TokenKey, TokenRealm, parse_challenge,
                   redirect_challenge_error, sends_authorization, token_realm)

__all__ = ["READ_SIZE", "RegistryClient", "RetryPolicy"]

log = logging.getLogger(__name__)

#: Large reads keep the loop's per-byte cost low (64 KiB: 3-5x more CPU than 256 KiB; 1 MiB
#: saved another 0.2 CPU-s per GB on bigger:1 over 256 KiB, fewer wake-ups and hand-offs).
READ_SIZE: Final = 1024 * 1024
#: Error bodies are for messages; a registry that sends megabytes is not owed our memory.
MAX_ERROR_BODY: Final = 64 * 1024
MAX_TOKEN_RESPONSE: Final = 1024 * 1024
#: Browsers stop at 20; registries redirect once, to storage.
MAX_REDIRECTS: Final = 5
_TEMPORARY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_STREAM_ERRORS: Final = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError)
#: The distribution spec's tag grammar: what may follow /manifests/ when it is not a digest.
_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 4  #: tries in all, for connection errors, 5xx and 429
    backoff_seconds: float = 0.5  #: first wait; doubles each time, with jitter
    max_backoff_seconds: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(self.max_backoff_seconds * 4, max(retry_after, 0.0))
        base = min(self.max_backoff_seconds, self.backoff_seconds * 2.0 ** (attempt - 1))
        return base * (0.5 + random.random() / 2)


@dataclass(frozen=True, slots=True)
class _Host:
    """What one ping taught us about a registry host. Frozen: the challenge is the registry's
    answer at /v2/, and nothing another host says may change it for the process's life."""

    base: str  #: scheme://host[:port]
    ssl: ssl.SSLContext | bool
    challenge: Challenge


def _digest_of(data: bytes, like: str) -> str:
    """The digest of ``data`` with the algorithm of ``like`` (a digest validate_digest accepted,
    so one hashlib has), to compare with ``like``."""
    algorithm = like.partition(":")[0]
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _network_host(registry: str) -> str:
    return "registry-1.docker.io" if registry == DOCKER_HUB else registry


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, or its first ``limit`` bytes. ``content.read(n)`` returns what has arrived so
    far (one read of the socket), not n bytes: a body that comes in several reads needs several."""
    parts: list[bytes] = []
    size = 0
    while size < limit and (part := await resp.content.read(limit - size)):
        parts.append(part)
        size += len(part)
    return b"".join(parts)


def _retry_after(resp: aiohttp.ClientResponse) -> float | None:
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


class RegistryClient:
    """One per process: shares the aiohttp session (and its connection pool)."""

    def __init__(self, session: aiohttp.ClientSession, *,
                 settings: Callable[[str], RegistrySettings] | None = None,
                 retry: RetryPolicy = RetryPolicy()) -> None:
        self._session = session
        self._settings = settings or (lambda host: RegistrySettings(host=host))
        self._retry = retry
        self._tokens = TokenCache()
        self._hosts: dict[str, _Host] = {}
        self._host_locks: dict[str, asyncio.Lock] = {}

    # -- hosts ---------------------------------------------------------------------------

    def _candidates(self, settings: RegistrySettings) -> list[tuple[str, ssl.SSLContext | bool]]:
        if settings.ca_cert:
            context = ssl.create_default_context(cafile=settings.ca_cert)
            return [("https", context)]
        if settings.insecure or is_loopback_host(settings.host):
            return [("https", False), ("http", False)]
        return [("https", True)]

    async def _host(self, ref: ImageRef) -> _Host:
        known = self._hosts.get(ref.registry)
        if known is not None:
            return known
        lock = self._host_locks.setdefault(ref.registry, asyncio.Lock())
        async with lock:
            if ref.registry not in self._hosts:
                self._hosts[ref.registry] = await self._ping(ref)
        return self._hosts[ref.registry]

    async def _ping(self, ref: ImageRef) -> _Host:
        settings = self._settings(ref.registry)
        network_host = _network_host(ref.registry)
        attempt = 0
        while True:
            attempt += 1
            errors = []
            for scheme, ssl_param in self._candidates(settings):
                base = f"{scheme}://{network_host}"
                try:
                    async with self._session.get(f"{base}/v2/", ssl=ssl_param, allow_redirects=False) as resp:
                        await resp.content.read(MAX_ERROR_BODY)
                        if resp.status == 401:
                            return _Host(base, ssl_param, parse_challenge(resp.headers.get("WWW-Authenticate", "")))
                        if resp.status < 500 and resp.status != 429:
                            # 200; and a 404 from a registry that does not implement /v2/ but serves the rest
                            return _Host(base, ssl_param, Challenge("", {}))
                        errors.append(f"{base}/v2/ answered HTTP {resp.status}")
                except (aiohttp.ClientConnectionError, asyncio.TimeoutError, ssl.SSLError) as exc:
                    errors.append(f"{scheme}: {str(exc) or type(exc).__name__}")
            error = RegistryError(f"cannot reach {network_host} for {ref}: {'; '.join(errors)}", temporary=True)
            if attempt >= self._retry.attempts:
                if attempt > 1:
                    error.args = (f"{error.message} (after {attempt} attempts)",)
                raise error
            delay = self._retry.delay(attempt)
            log.info("event=registry_retry ref=%s what=ping attempt=%d delay=%.2f error=%r",
                     ref, attempt, delay, error.message)
            await asyncio.sleep(delay)

    # -- auth ----------------------------------------------------------------------------

    def _scope(self, ref: ImageRef) -> str:
        return f"repository:{ref.repository}:pull"

    async def _authorization(self, host: _Host, ref: ImageRef, challenge: Challenge, *,
                             fresh: bool = False) -> str | None:
        """The Authorization value for a request to the registry itself, answering
        ``challenge`` (the registry's own, from /v2/ or from its own 401)."""
        settings = self._settings(ref.registry)
        creds = settings.credentials
        if challenge.scheme == "basic":
            if creds is None:
                raise AuthError(f"unauthorized: {ref}: the registry requires credentials",
                                hint="Add them under 'registries:' in config.yaml, or `docker login`.")
            return creds.basic()
        if challenge.scheme != "bearer":
            return None
        realm = token_realm(challenge, settings, _network_host(ref.registry))
        service = challenge.params.get("service", "")
        key = TokenKey(ref.registry, realm.url, service, self._scope(ref))
        if fresh:
            self._tokens.drop(key)
        token = self._tokens.get(key)
        if token is None:
            token, expires_in = await self._fetch_token(ref, host, realm, service, key.scope, settings)
            self._tokens.put(key, token, expires_in)
        return f"Bearer {token}"

    def _realm_ssl(self, host: _Host, realm: TokenRealm, settings: RegistrySettings) -> ssl.SSLContext | bool:
        if realm.on_registry_host:
            return host.ssl  # the registry's own host: its CA, or its `insecure`
        if settings.ca_cert:
            # A private registry's token service usually has a certificate from the same private
            # CA; trusting that CA besides the system's still verifies every certificate.
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=settings.ca_cert)
            return context
        return True  # `insecure` is for the registry's host only, never for a realm elsewhere

    async def _fetch_token(self, ref: ImageRef, host: _Host, realm: TokenRealm, service: str, scope: str,
                           settings: RegistrySettings) -> tuple[str, float | None]:
        query = {"scope": scope}
        if service:
            query["service"] = service
        headers = {"Authorization": settings.credentials.basic()} if settings.credentials else {}
        try:
            # No redirects: the realm the registry named is where the credentials may go, not
            # wherever that host sends us next.
            async with self._session.get(realm.url, params=query, headers=headers, allow_redirects=False,
                                         ssl=self._realm_ssl(host, realm, settings)) as resp:
                body = await _read_at_most(resp, MAX_TOKEN_RESPONSE)
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RegistryError(f"{ref}: token service {realm.url} unreachable: {str(exc) or type(exc).__name__}",
                                temporary=True) from None
        if status in (401, 403):
            who = f" for user {settings.credentials.username!r}" if settings.credentials else " (anonymous)"
            raise AuthError(f"unauthorized: {ref}: the token service refused access{who}", status=status)
        if status != 200:
            raise RegistryError(f"{ref}: token service answered HTTP {status}", status=status,
                                temporary=status in _TEMPORARY_STATUS)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
            expires_in = doc.get("expires_in")
        except (ValueError, AttributeError):
            token, expires_in = None, None
        if not isinstance(token, str) or not token:
            raise AuthError(f"unauthorized: {ref}: the token service returned no token")
        return token, float(expires_in) if isinstance(expires_in, (int, float)) else None

    # -- requests ------------------------------------------------------------------------

    async def _get(self, url: str, host: _Host,
                   headers: dict[str, str]) -> tuple[aiohttp.ClientResponse, str | None]:
        """GET following redirects by hand (aiohttp's own following would decide on its own
        what to forward). Returns the response and, when a redirect left the registry's origin,
        the URL that answered (None: the registry itself answered)."""
        left_registry = False
        for _ in range(MAX_REDIRECTS + 1):
            same_origin = _origin(url) == _origin(host.base)
            if sends_authorization(url, host.base, left_registry=left_registry):
                send = headers
            else:
                send = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            left_registry = left_registry or not same_origin
            resp = await self._session.get(url, headers=send, allow_redirects=False,
                                           ssl=host.ssl if same_origin else True)
            if resp.status not in _REDIRECTS or "Location" not in resp.headers:
                return resp, (url if left_registry else None)
            url = urljoin(url, resp.headers["Location"])
            resp.release()
        raise RegistryError(f"more than {MAX_REDIRECTS} redirects fetching {urlsplit(url).path}")

    async def _request(self, ref: ImageRef, path: str, headers: dict[str, str],
                       what: str) -> aiohttp.ClientResponse:
        """GET with auth and retries; returns a 200/206 response whose body the caller reads."""
        host = await self._host(ref)
        url = f"{host.base}/v2/{ref.repository}/{path}"
        challenge = host.challenge
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            send = dict(headers)
            authorization = await self._authorization(host, ref, challenge)
            if authorization:
                send["Authorization"] = authorization
            retry_after: float | None = None
            try:
                resp, redirect_target = await self._get(url, host, send)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                error: RegistryError = RegistryError(
                    f"{what} {ref}: cannot reach {_network_host(ref.registry)}: "
                    f"{str(exc) or type(exc).__name__}", temporary=True)
            else:
                if resp.status in (200, 206):
                    return resp
                try:
                    if redirect_target is not None:
                        # Not the registry: its challenge is not ours to answer or to keep.
                        if resp.status == 401 or "WWW-Authenticate" in resp.headers:
                            raise redirect_challenge_error(f"{what} {ref}", redirect_target,
                                                           _network_host(ref.registry), resp.status)
                        error = await self._redirect_target_error(resp, ref, what, redirect_target)
                    elif resp.status == 401 and not refreshed and challenge.scheme == "bearer":
                        # the token may have expired or lack the scope: one fresh one, asked where
                        # the registry's own 401 says (for this request; /v2/'s answer stays)
                        refreshed = True
                        answered = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                        if answered.scheme == "bearer" and answered.params.get("realm"):
                            challenge = answered
                        await self._authorization(host, ref, challenge, fresh=True)
                        attempt -= 1
                        continue
                    else:
                        error = await self._error(resp, ref, what)
                    retry_after = _retry_after(resp) if resp.status in (429, 503) else None
                finally:
                    resp.release()
            if not error.temporary or attempt >= self._retry.attempts:
                if error.temporary and attempt > 1:
                    error.args = (f"{error.message} (after {attempt} attempts)",)
                raise error
            delay = self._retry.delay(attempt, retry_after)
            log.info("event=registry_retry ref=%s what=%s attempt=%d delay=%.2f error=%r",
                     ref, what, attempt, delay, error.message)
            await asyncio.sleep(delay)

    async def _redirect_target_error(self, resp: aiohttp.ClientResponse, ref: ImageRef, what: str,
                                     target_url: str) -> RegistryError:
        """An error answer from a host the registry redirected to, named as that host's: its
        body is not the registry's error format, and is not read into the message."""
        await resp.content.read(MAX_ERROR_BODY)
        status = resp.status
        text = (f"{what} {ref}: {urlsplit(target_url).netloc}, where registry {_network_host(ref.registry)} "
                f"redirected the download, answered HTTP {status}")
        if status == 404:
            return NotFoundError(text, status=status)
        if status == 403:
            return AuthError(f"unauthorized: {text}", status=status)
        return RegistryError(text, status=status, temporary=status in _TEMPORARY_STATUS)

    async def _error(self, resp: aiohttp.ClientResponse, ref: ImageRef, what: str) -> RegistryError:
        body = await _read_at_most(resp, MAX_ERROR_BODY)
        code = message = None
        try:
            errors = json.loads(body).get("errors") or []
            if errors and isinstance(errors[0], dict):
                code, message = errors[0].get("code"), errors[0].get("message")
        except (ValueError, AttributeError):
            pass
        status = resp.status
        text = f"{message or resp.reason or 'HTTP ' + str(status)}: {ref}"
        if status == 404 or code in ("MANIFEST_UNKNOWN", "BLOB_UNKNOWN", "NAME_UNKNOWN"):
            return NotFoundError(text, status=status, code=code)
        if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            return AuthError(text if "unauthorized" in text.lower() else f"unauthorized: {text}",
                             status=status, code=code)
        return RegistryError(f"{what} {ref}: HTTP {status}: {message or resp.reason}",
                             status=status, code=code,
                             temporary=status in _TEMPORARY_STATUS or code == "TOOMANYREQUESTS")

    # -- the API -------------------------------------------------------------------------

    async def get_manifest(self, ref: ImageRef, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest by tag or digest, verified if by digest."""
        # Checked again here, before it becomes a URL path, whoever parsed it.
        if ":" in reference:
            validate_digest(reference, f"manifest {ref}")
        elif not _TAG.match(reference):
            raise ManifestError(f"manifest {ref}: invalid tag {reference[:200]!r}")
        resp = await self._request(ref, f"manifests/{reference}", {"Accept": ACCEPT_MANIFESTS}, "manifest")
        try:
            if (resp.content_length or 0) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {ref}: {resp.content_length} bytes exceed the "
                                    f"limit of {MAX_MANIFEST_SIZE}")
            body = await _read_at_most(resp, MAX_MANIFEST_SIZE + 1)
            if len(body) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {ref}: larger than the limit of {MAX_MANIFEST_SIZE} bytes")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        except _STREAM_ERRORS as exc:
            raise RegistryError(f"manifest {ref}: download failed: {exc}", temporary=True) from None
        finally:
            resp.release()
        if ":" in reference:
            served = _digest_of(body, like=reference)
            if served != reference:
                raise IntegrityError(f"manifest {ref}: the registry served bytes hashing to {served}")
            return body, media_type, reference
        return body, media_type, "sha256:" + hashlib.sha256(body).hexdigest()

    async def get_blob(self, ref: ImageRef, desc: Descriptor, limit: int) -> bytes:
        """A small blob (an image config), whole and verified."""
        if desc.size > limit:
            raise RegistryError(f"blob {desc.digest} of {ref}: {desc.size} bytes exceed the limit of {limit}")
        body = b"".join([chunk async for chunk in self.blob_chunks(ref, desc)])
        served = _digest_of(body, like=desc.digest)
        if len(body) != desc.size or served != desc.digest:
            raise IntegrityError(f"blob {desc.digest} of {ref}: digest mismatch, the bytes received hash to "
                                 f"{served} ({len(body)} bytes)")
        return body

    async def blob_chunks(self, ref: ImageRef, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes as they arrive, resuming broken downloads. Not verified here:
        the consumer hashes them (and sees each byte exactly once, in order)."""
        # Checked again here, before it becomes a URL path, whoever made the descriptor.
        validate_digest(desc.digest, f"blob of {ref}")
        received = 0
        breaks = 0
        while True:
            headers = {"Range": f"bytes={received}-"} if received else {}
            resp = await self._request(ref, f"blobs/{desc.digest}", headers, "blob")
            try:
                skip = 0
                if received:
                    content_range = resp.headers.get("Content-Range", "")
                    if resp.status != 206 or not content_range.startswith(f"bytes {received}-"):
                        skip = received  # no range support: the whole blob again, minus what we have
                error: BaseException | None = None
                try:
                    while True:
                        chunk = await resp.content.read(READ_SIZE)
                        if not chunk:
                            break
                        if skip:
                            if len(chunk) <= skip:
                                skip -= len(chunk)
                                continue
                            chunk, skip = chunk[skip:], 0
                        received += len(chunk)
                        if received > desc.size:
                            raise IntegrityError(f"blob {desc.digest} of {ref}: the registry sent more "
                                                 f"than the {desc.size} bytes its descriptor declares")
                        yield chunk
                except _STREAM_ERRORS as exc:
                    error = exc
            finally:
                resp.release()
            if error is None and (received >= desc.size or skip):
                return  # complete (or shorter than declared: the consumer's size check says so)
            breaks += 1
            reason = f"{error or 'connection closed early'}"
            if breaks >= self._retry.attempts:
                raise RegistryError(f"blob {desc.digest} of {ref}: download broke after {received} "
                                    f"of {desc.size} bytes, {breaks} times: {reason}", temporary=True)
            delay = self._retry.delay(breaks)
            log.info("event=blob_resume ref=%s blob=%s received=%d of=%d delay=%.2f error=%r",
                     ref, desc.digest, received, desc.size, delay, reason)
            await asyncio.sleep(delay)

    async def url_chunks(self, url: str, desc: Descriptor) -> AsyncIterator[bytes]:
        """A foreign layer from one of its descriptor's URLs (no registry credentials)."""
        try:
            async with self._session.get(url) as resp:
                if resp.status != 200:
                    raise RegistryError(f"layer {desc.digest}: {url} answered HTTP {resp.status}",
                                        temporary=resp.status in _TEMPORARY_STATUS)
                while chunk := await resp.content.read(READ_SIZE):
                    yield chunk
        except _STREAM_ERRORS as exc:
            raise RegistryError(f"layer {desc.digest}: download from {url} failed: {exc}",
                                temporary=True) from None
