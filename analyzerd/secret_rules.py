"""The installation's secret rules: the configured rule set and its fingerprint key."""

from __future__ import annotations

import os
from typing import Final

from .config import Config, default_database_path, is_postgresql
from .errors import ConfigError
from .secrets.scanner import RuleSet, build_rule_set

__all__ = ["FINGERPRINT_KEY_NAME", "default_fingerprint_key_file", "fingerprint_key", "fingerprint_key_file",
           "secret_rule_set"]


#: Where the fingerprint key lives unless configured: beside the database, never in it.
FINGERPRINT_KEY_NAME: Final = "secret-fingerprint.key"


def fingerprint_key(path: str) -> bytes:
    """The installation's HMAC key for secret fingerprints: read, or created (32 random
    bytes, mode 0600) the first time. Losing it only makes new fingerprints incomparable
    with old ones."""
    try:
        with open(path, "rb") as f:
            key = f.read()
        if len(key) >= 16:
            return key
        raise ConfigError(f"secret_search.fingerprint_key_file: {path} holds {len(key)} bytes; "
                          "delete it to have a new key made")
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    key = os.urandom(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use that one
        return fingerprint_key(path)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


def default_fingerprint_key_file(config: Config) -> str:
    """Beside a SQLite database; with PostgreSQL, in the state directory (every host
    should be given the same key file, or fingerprints differ between hosts)."""
    location = config.database_location
    directory = os.path.dirname(default_database_path() if is_postgresql(location) else os.path.abspath(location))
    return os.path.join(directory, FINGERPRINT_KEY_NAME)


def fingerprint_key_file(config: Config) -> str:
    return config.secret_search.fingerprint_key_file or default_fingerprint_key_file(config)


def secret_rule_set(config: Config) -> RuleSet | None:
    search = config.secret_search
    if not search.enabled:
        return None
    key_path = fingerprint_key_file(config)
    try:
        return build_rule_set(mode=search.mode, extra=search.rules, disabled=search.disabled_rules,
                              allowed_paths=search.allowed_paths, max_file_size=search.max_file_size_bytes,
                              scan_binary=search.scan_binary, fingerprint_key=fingerprint_key(key_path))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
