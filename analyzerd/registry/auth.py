"""Registry credentials and tokens: where they come from, where they may go, how long they
last. Pure: the client asks this module, and only this module, before it sends a credential.

Credentials come from the ``registries:`` entries of config.yaml first, then from a
Docker ``config.json`` (``auths``: ``auth`` = base64 "user:password", or ``username`` and
``password``). They are held in ``Credentials`` objects whose repr hides the secret, so
they cannot leak into logs or error messages by accident.

Where they may go (the threat model: registries and storage hosts are not trusted with each
other's secrets):

- the registry's credentials, or a token it accepts, in an ``Authorization`` header: only to
  the registry's own origin, and never once a redirect has left it (``sends_authorization``);
- the credentials, to ask for a token: only to the realm named by the registry's own
  challenge (its ``/v2/`` answer, or its own 401), over https; plain http only for an
  ``insecure`` registry's own host, or from a loopback registry to a loopback realm
  (``token_realm``);
- a challenge from anywhere else (a storage host the registry redirected to) is an error,
  never an input (``redirect_challenge_error``);
- ``insecure`` (no TLS verification, or plain http) covers the registry's host only.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple
from urllib.parse import urlsplit

from ..errors import AuthError, ConfigError
from ..reference import is_loopback_host

__all__ = ["Challenge", "Credentials", "RegistrySettings", "TokenCache", "TokenKey", "TokenRealm",
           "docker_config_credentials", "parse_challenge", "redirect_challenge_error",
           "sends_authorization", "token_realm"]

# A key starts only where a word starts, and nothing gives back what it matched: linear in the
# header, which the registry (or whoever answers in its place) writes.
_PARAM: Final = re.compile(r'(?<!\w)(\w++)\s*+=\s*+(?:"((?:[^"\\]|\\.)*+)"|([^\s,]++))')
#: The token spec: "if expires_in is absent, 60 seconds should be assumed".
DEFAULT_TOKEN_SECONDS: Final = 60
#: Use a token only while it has this much life left, so it does not expire in flight.
TOKEN_MARGIN_SECONDS: Final = 10
#: Hostile URLs and challenges are quoted in errors only this far.
_MAX_QUOTED: Final = 200
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


def _quoted(text: str) -> str:
    return repr(text[:_MAX_QUOTED]) + ("..." if len(text) > _MAX_QUOTED else "")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _hostname(netloc: str) -> str:
    """``host`` of ``host[:port]`` (brackets of an IPv6 literal removed), lowercased."""
    return (urlsplit(f"//{netloc}").hostname or "").lower()


def sends_authorization(url: str, registry_base: str, *, left_registry: bool) -> bool:
    """Whether a request to ``url`` may carry the registry's ``Authorization`` header: only at
    the registry's own origin (scheme, host and port), and not once a redirect chain has been
    somewhere else. A storage host that redirects back to the registry must not get a request
    made with our credentials to a path it chose."""
    return not left_registry and _origin(url) == _origin(registry_base)


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRealm:
    """Where a bearer token may be asked for, with the registry's credentials."""

    url: str
    #: On the registry's own host (any port): the registry's TLS settings (its CA, or
    #: ``insecure``) apply. Anywhere else TLS is verified, whatever the registry's settings.
    on_registry_host: bool


def token_realm(challenge: Challenge, settings: RegistrySettings, registry_host: str) -> TokenRealm:
    """The realm of the registry's own Bearer challenge, if credentials may go there.

    ``registry_host`` is the host[:port] the registry is reached at. https realms are allowed
    anywhere (the token service is often a separate host, as auth.docker.io is). A plain http
    realm would carry the password in cleartext, so it is allowed only where the user already
    accepted cleartext: the host of a registry configured ``insecure``, or, for a loopback
    registry (which Docker, and analyzerd, pull over http), a realm on loopback too, where the
    bytes do not leave the machine. Raises AuthError naming the registry and the realm.
    """
    realm = challenge.params.get("realm", "")
    if not realm:
        raise AuthError(f"unauthorized: {registry_host}: the registry's Bearer challenge has no realm")
    try:
        parts = urlsplit(realm)
        scheme, realm_host, has_userinfo = parts.scheme.lower(), (parts.hostname or "").lower(), "@" in parts.netloc
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:  # a bad port or IPv6 literal
        scheme, realm_host, has_userinfo = "", "", False
    if scheme not in ("https", "http") or not realm_host or has_userinfo:
        raise AuthError(f"registry {registry_host} names token realm {_quoted(realm)}, which is not an "
                        "http(s) URL of a host without user info: no credentials sent")
    on_registry_host = realm_host == _hostname(registry_host)
    if scheme == "http":
        insecure_host = settings.insecure and on_registry_host
        both_loopback = is_loopback_host(registry_host) and is_loopback_host(realm_host)
        if not (insecure_host or both_loopback):
            raise AuthError(
                f"registry {registry_host} names token realm {_quoted(realm)} over plain http: "
                "refusing to send credentials in cleartext",
                hint="The token realm must be https, unless it is on the host of a registry "
                     "configured 'insecure: true' (or both are on loopback).")
    return TokenRealm(url=realm, on_registry_host=on_registry_host)


def redirect_challenge_error(what: str, target_url: str, registry_host: str, status: int) -> AuthError:
    """The error for a challenge (or 401) from a host the registry redirected us to. That host
    is not the registry: it gets no credentials, and its challenge changes nothing we keep."""
    target = urlsplit(target_url).netloc or _quoted(target_url)
    return AuthError(
        f"unauthorized: {what}: {target}, where registry {registry_host} redirected the download, "
        f"asked for credentials (HTTP {status}); credentials go only to {registry_host} and its "
        "token realm, so none were sent", status=status)


class TokenKey(NamedTuple):
    """A token is good for the registry, realm, service and scope it was issued for."""

    registry: str
    realm: str
    service: str
    scope: str


class TokenCache:
    """Bearer tokens by ``TokenKey``, until shortly before they expire."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tokens: dict[TokenKey, tuple[str, float]] = {}

    def get(self, key: TokenKey) -> str | None:
        entry = self._tokens.get(key)
        if entry is None:
            return None
        token, expires = entry
        if self._clock() >= expires - TOKEN_MARGIN_SECONDS:
            del self._tokens[key]
            return None
        return token

    def put(self, key: TokenKey, token: str, expires_in: float | None) -> None:
        seconds = expires_in if expires_in and expires_in > 0 else DEFAULT_TOKEN_SECONDS
        self._tokens[key] = (token, self._clock() + seconds)

    def drop(self, key: TokenKey) -> None:
        self._tokens.pop(key, None)
