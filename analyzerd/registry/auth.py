"""Registry credentials and tokens: where they come from, and how long they last. Pure.

Credentials come from the ``registries:`` entries of config.yaml first, then from a
Docker ``config.json`` (``auths``: ``auth`` = base64 "user:password", or ``username`` and
``password``). They are held in ``Credentials`` objects whose repr hides the secret, so
they cannot leak into logs or error messages by accident.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any, Final

from ..errors import ConfigError

__all__ = ["Challenge", "Credentials", "RegistrySettings", "TokenCache", "docker_config_credentials",
           "parse_challenge"]

# A key starts only where a word starts, and nothing gives back what it matched: linear in the
# header, which the registry (or whoever answers in its place) writes.
_PARAM: Final = re.compile(r'(?<!\w)(\w++)\s*+=\s*+(?:"((?:[^"\\]|\\.)*+)"|([^\s,]++))')
#: The token spec: "if expires_in is absent, 60 seconds should be assumed".
DEFAULT_TOKEN_SECONDS: Final = 60
#: Use a token only while it has this much life left, so it does not expire in flight.
TOKEN_MARGIN_SECONDS: Final = 10
_DOCKER_HUB_KEYS: Final = ("https://index.docker.io/v1/", "index.docker.io", "docker.io",
                           "registry-1.docker.io", "https://registry-1.docker.io")


@dataclass(frozen=True, slots=True)
class Credentials:
    username: str
    password: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=<hidden>)"

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")


@dataclass(frozen=True, slots=True, kw_only=True)
class RegistrySettings:
    """What config.yaml says about one registry host."""

    host: str
    credentials: Credentials | None = None
    ca_cert: str | None = None
    #: plain HTTP, or HTTPS without certificate verification, for this host only
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  #: "bearer", "basic" or "" (no auth needed)
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    """``WWW-Authenticate: Bearer realm="…",service="…",scope="…"``."""
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3))
              for m in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


def _decode_auth(entry: dict[str, Any], where: str) -> Credentials | None:
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{where}: 'auth' is not base64 of user:password") from None
        if not sep:
            raise ConfigError(f"{where}: 'auth' is not base64 of user:password")
        return Credentials(user, password)
    if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
        return Credentials(entry["username"], entry["password"])
    return None


def _normalize_key(key: str) -> str:
    key = key.strip()
    for scheme in ("https://", "http://"):
        key = key.removeprefix(scheme)
    return key.rstrip("/").split("/", 1)[0]


def docker_config_credentials(text: str, path: str) -> dict[str, Credentials]:
    """Credentials by registry host from a Docker config.json's ``auths``."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise ConfigError(f"docker config {path} is not valid JSON") from None
    auths = doc.get("auths") if isinstance(doc, dict) else None
    out: dict[str, Credentials] = {}
    if not isinstance(auths, dict):
        return out
    for key, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        creds = _decode_auth(entry, f"docker config {path}: auths[{key!r}]")
        if creds is None:
            continue
        host = _normalize_key(key)
        if key in _DOCKER_HUB_KEYS or host in _DOCKER_HUB_KEYS:
            host = "docker.io"
        out[host] = creds
    return out


class TokenCache:
    """Bearer tokens by (registry, scope), until shortly before they expire."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}

    def get(self, registry: str, scope: str) -> str | None:
        entry = self._tokens.get((registry, scope))
        if entry is None:
            return None
        token, expires = entry
        if self._clock() >= expires - TOKEN_MARGIN_SECONDS:
            del self._tokens[(registry, scope)]
            return None
        return token

    def put(self, registry: str, scope: str, token: str, expires_in: float | None) -> None:
        seconds = expires_in if expires_in and expires_in > 0 else DEFAULT_TOKEN_SECONDS
        self._tokens[(registry, scope)] = (token, self._clock() + seconds)

    def drop(self, registry: str, scope: str) -> None:
        self._tokens.pop((registry, scope), None)
