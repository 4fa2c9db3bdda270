"""Passwords of the HTTP endpoint's users, stored as scrypt hashes (stdlib hashlib)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import Counter
from collections.abc import Iterable
from typing import Final

from .errors import ConfigError

__all__ = ["check_password_hash", "dummy_hash", "hash_password", "verify_password"]

#: scrypt cost: ~50 ms per check here; the endpoint checks off the event loop and remembers
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
SALT_BYTES: Final = 16
DIGEST_BYTES: Final = 32
#: scrypt needs 128 * r * n bytes (16 MiB with the parameters above); a stored hash that
#: needs more than this is refused when the config is loaded, not at every login
SCRYPT_MAXMEM: Final = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    salt = os.urandom(SALT_BYTES)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=DIGEST_BYTES)
    return _format(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, digest)


def _format(n: int, r: int, p: int, salt: bytes, digest: bytes) -> str:
    return "scrypt:{}:{}:{}:{}:{}".format(n, r, p, base64.b64encode(salt).decode(), base64.b64encode(digest).decode())


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """(n, r, p, salt, digest) of a stored hash; raises ValueError for anything else."""
    scheme, n, r, p, salt, digest = stored.split(":")
    if scheme != "scrypt":
        raise ValueError("not an scrypt hash")
    try:
        return int(n), int(r), int(p), base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison of scrypt digests; a malformed stored hash never matches."""
    try:
        n, r, p, salt, expected = _parse(stored)
        got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(expected),
                             maxmem=SCRYPT_MAXMEM)
    except ValueError:
        return False
    return hmac.compare_digest(got, expected)


def dummy_hash(stored: Iterable[str] = ()) -> str:
    """A hash no password matches, with the scrypt parameters, salt and digest lengths most
    of ``stored`` use (this module's own when there are none).

    An unknown user's password is checked against it, so that a failed login costs the same
    scrypt work whether the user exists or not: the time of a 401 does not tell user names.
    Its digest is random bytes, not an scrypt output: nothing hashes to it (but with
    probability 2**-256), and making it costs nothing.
    """
    shapes: Counter[tuple[int, int, int, int, int]] = Counter()
    for value in stored:
        try:
            n, r, p, salt, digest = _parse(value)
        except ValueError:
            continue
        shapes[(n, r, p, len(salt), len(digest))] += 1
    n, r, p, salt_bytes, digest_bytes = shapes.most_common(1)[0][0] if shapes else \
        (SCRYPT_N, SCRYPT_R, SCRYPT_P, SALT_BYTES, DIGEST_BYTES)
    return _format(n, r, p, os.urandom(salt_bytes), os.urandom(digest_bytes))


def check_password_hash(key: str, stored: str) -> str:
    """For the config loader: refuse a value that is not a password hash (a plain password),
    or one whose scrypt parameters scrypt would refuse at every login."""
    parts = stored.split(":")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ConfigError(f"{key}: expected a hash made by `analyzerd hash-password`, not a password")
    try:
        n, r, p, salt, digest = _parse(stored)
    except ValueError:
        raise ConfigError(f"{key}: not a valid scrypt hash (expected scrypt:N:r:p:SALT:DIGEST, "
                          "as `analyzerd hash-password` prints)") from None
    if n < 2 or n & (n - 1) or r < 1 or p < 1 or not salt or len(digest) < 16:
        raise ConfigError(f"{key}: scrypt parameters n={n} r={r} p={p} are not valid "
                          "(n a power of 2, r and p at least 1, a salt, a digest of 16 bytes or more)")
    if 128 * r * (n + p + 2) > SCRYPT_MAXMEM:
        raise ConfigError(f"{key}: scrypt parameters n={n} r={r} need more than "
                          f"{SCRYPT_MAXMEM // 2**20} MiB per check")
    return stored
