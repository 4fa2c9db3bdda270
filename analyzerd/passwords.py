"""Passwords of the HTTP endpoint's users, stored as scrypt hashes (stdlib hashlib)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Final

from .errors import ConfigError

__all__ = ["check_password_hash", "hash_password", "verify_password"]

#: scrypt cost: ~50 ms per check here; the endpoint checks off the event loop and remembers
SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    return "scrypt:{}:{}:{}:{}:{}".format(SCRYPT_N, SCRYPT_R, SCRYPT_P, base64.b64encode(salt).decode(),
                                          base64.b64encode(digest).decode())


def verify_password(password: str, stored: str) -> bool:
    """Constant-time comparison of scrypt digests; a malformed stored hash never matches."""
    try:
        scheme, n, r, p, salt, digest = stored.split(":")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected), maxmem=64 * 1024 * 1024)
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, expected)


def check_password_hash(key: str, stored: str) -> str:
    """For the config loader: refuse a value that is not a password hash (a plain password)."""
    parts = stored.split(":")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise ConfigError(f"{key}: expected a hash made by `analyzerd hash-password`, not a password")
    return stored
