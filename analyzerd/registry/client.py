"""Registry client over aiohttp: manifests, config blobs, streamed layer blobs.

The handshake follows the distribution spec (and go-containerregistry's transport):
a request that answers 401 with ``WWW-Authenticate: Bearer realm=…,service=…,scope=…``
is retried once with a token from the realm (anonymous here). Loopback registries are
spoken to over plain HTTP, as Docker does; everything else over HTTPS.

Connection errors, 5xx and 429 are retried a bounded number of times with exponential
backoff; other errors raise at once with the registry's own message and the reference.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Final

import aiohttp

from ..errors import AuthError, IntegrityError, NotFoundError, RegistryError
from ..model import Descriptor
from ..oci import ACCEPT_MANIFESTS, MAX_MANIFEST_SIZE
from ..reference import DOCKER_HUB, ImageRef, is_loopback_host

__all__ = ["RegistryClient", "RetryPolicy"]

log = logging.getLogger(__name__)

#: Reads of 256 KiB and more keep the per-byte cost of the loop low (64 KiB: 3-5x more CPU).
READ_SIZE: Final = 256 * 1024
#: Error bodies are for messages; a registry that sends megabytes is not owed our memory.
MAX_ERROR_BODY: Final = 64 * 1024
MAX_TOKEN_RESPONSE: Final = 1024 * 1024
_CHALLENGE_PARAM: Final = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_TEMPORARY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 4  #: tries in all, for connection errors, 5xx and 429
    backoff_seconds: float = 0.5  #: first wait; doubles each time, with jitter
    max_backoff_seconds: float = 8.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        base = min(self.max_backoff_seconds, self.backoff_seconds * (2 ** (attempt - 1)))
        if retry_after is not None:
            return min(self.max_backoff_seconds * 4, max(retry_after, 0.0))
        return base * (0.5 + random.random() / 2)


def _registry_host(registry: str) -> str:
    return "registry-1.docker.io" if registry == DOCKER_HUB else registry


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _CHALLENGE_PARAM.finditer(rest)}
    return scheme.lower(), params


class RegistryClient:
    """One per process: shares the aiohttp session (and its connection pool)."""

    def __init__(self, session: aiohttp.ClientSession, *, retry: RetryPolicy = RetryPolicy()) -> None:
        self._session = session
        self._retry = retry
        self._tokens: dict[tuple[str, str], str] = {}

    def _url(self, ref: ImageRef, path: str) -> str:
        scheme = "http" if is_loopback_host(ref.registry) else "https"
        return f"{scheme}://{_registry_host(ref.registry)}/v2/{ref.repository}/{path}"

    async def _fetch_token(self, ref: ImageRef, params: dict[str, str]) -> str:
        realm = params.get("realm")
        if not realm:
            raise AuthError(f"unauthorized: {ref}: the registry's Bearer challenge has no realm")
        query = {"scope": params.get("scope") or f"repository:{ref.repository}:pull"}
        if "service" in params:
            query["service"] = params["service"]
        try:
            async with self._session.get(realm, params=query) as resp:
                body = await resp.content.read(MAX_TOKEN_RESPONSE)
                if resp.status != 200:
                    raise AuthError(f"unauthorized: {ref}: token service answered {resp.status}",
                                    status=resp.status)
        except aiohttp.ClientError as exc:
            raise RegistryError(f"{ref}: token service unreachable: {exc}", temporary=True) from None
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise AuthError(f"unauthorized: {ref}: the token service returned no token")
        return token

    async def _request(self, ref: ImageRef, path: str, headers: dict[str, str],
                       what: str) -> aiohttp.ClientResponse:
        """GET with auth and retries; returns a 200 response whose body the caller reads."""
        url = self._url(ref, path)
        key = (ref.registry, ref.repository)
        authorized_once = False
        attempt = 0
        while True:
            attempt += 1
            send = dict(headers)
            token = self._tokens.get(key)
            if token:
                send["Authorization"] = f"Bearer {token}"
            retry_after: float | None = None
            try:
                resp = await self._session.get(url, headers=send, auto_decompress=False)
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                error: RegistryError = RegistryError(
                    f"{what} {ref}: cannot reach {_registry_host(ref.registry)}: "
                    f"{exc or type(exc).__name__}", temporary=True)
            else:
                if resp.status == 200:
                    return resp
                try:
                    if resp.status == 401 and not authorized_once:
                        scheme, params = _parse_challenge(resp.headers.get("WWW-Authenticate", ""))
                        if scheme == "bearer":
                            authorized_once = True
                            self._tokens[key] = await self._fetch_token(ref, params)
                            attempt -= 1
                            continue
                    error = await self._error(resp, ref, what)
                    if resp.status == 429 and "Retry-After" in resp.headers:
                        try:
                            retry_after = float(resp.headers["Retry-After"])
                        except ValueError:
                            retry_after = None
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

    async def _error(self, resp: aiohttp.ClientResponse, ref: ImageRef, what: str) -> RegistryError:
        body = await resp.content.read(MAX_ERROR_BODY)
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
            return AuthError(f"unauthorized: {text}" if "unauthorized" not in text.lower() else text,
                             status=status, code=code)
        return RegistryError(f"{what} {ref}: HTTP {status}: {message or resp.reason}",
                             status=status, code=code,
                             temporary=status in _TEMPORARY_STATUS or code == "TOOMANYREQUESTS")

    async def get_manifest(self, ref: ImageRef, reference: str) -> tuple[bytes, str, str]:
        """(bytes, media type, digest) of a manifest by tag or digest, verified if by digest."""
        resp = await self._request(ref, f"manifests/{reference}", {"Accept": ACCEPT_MANIFESTS}, "manifest")
        try:
            if (resp.content_length or 0) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {ref}: {resp.content_length} bytes exceed the "
                                    f"limit of {MAX_MANIFEST_SIZE}")
            body = await resp.content.read(MAX_MANIFEST_SIZE + 1)
            if len(body) > MAX_MANIFEST_SIZE:
                raise RegistryError(f"manifest {ref}: larger than the limit of {MAX_MANIFEST_SIZE} bytes")
            media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise RegistryError(f"manifest {ref}: download failed: {exc}", temporary=True) from None
        finally:
            resp.release()
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise IntegrityError(f"manifest {ref}: the registry served bytes hashing to {digest}")
        return body, media_type, digest

    async def get_blob(self, ref: ImageRef, desc: Descriptor, limit: int) -> bytes:
        """A small blob (an image config), whole and verified."""
        if desc.size > limit:
            raise RegistryError(f"blob {desc.digest} of {ref}: {desc.size} bytes exceed the limit of {limit}")
        chunks = [chunk async for chunk in self.blob_chunks(ref, desc)]
        body = b"".join(chunks)
        if len(body) != desc.size or "sha256:" + hashlib.sha256(body).hexdigest() != desc.digest:
            raise IntegrityError(f"blob {desc.digest} of {ref}: the bytes received do not match its digest")
        return body

    async def blob_chunks(self, ref: ImageRef, desc: Descriptor) -> AsyncIterator[bytes]:
        """The blob's bytes as they arrive. Not verified here: the consumer hashes them."""
        resp = await self._request(ref, f"blobs/{desc.digest}", {}, "blob")
        try:
            received = 0
            while True:
                try:
                    chunk = await resp.content.read(READ_SIZE)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    raise RegistryError(f"blob {desc.digest} of {ref}: download broke after "
                                        f"{received} bytes: {exc or type(exc).__name__}",
                                        temporary=True) from None
                if not chunk:
                    return
                received += len(chunk)
                if received > desc.size:
                    raise IntegrityError(f"blob {desc.digest} of {ref}: the registry sent more "
                                         f"than the {desc.size} bytes its descriptor declares")
                yield chunk
        finally:
            resp.release()
