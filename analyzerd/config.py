"""Configuration: the Anchore Engine analyzer layout, plus analyzerd's own keys.

An Anchore ``config.yaml`` works unchanged: the analyzer section may stand under
``services:`` or at the top level, ``${VAR}`` (and ``${VAR:-default}``) is expanded from
the environment, and the keys analyzerd does not use are accepted (logged at debug
level). A key that looks like a misspelling of a known one gets a warning with the
likely intended name. A wrong type or value is refused with an error naming the key.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tempfile
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from dataclasses import replace as replace_fields
from typing import Any, Final

import yaml

from .errors import ConfigError
from .model import Platform
from .registry.auth import Credentials, RegistrySettings, docker_config_credentials

__all__ = ["AnalyzerSection", "Config", "Limits", "load_config", "default_database_path",
           "database_location_from"]

log = logging.getLogger(__name__)

#: Anchore's own floor for the layer cache; a smaller cache thrashes on one image.
MIN_LAYER_CACHE_GIGABYTES: Final = 1
_VAR: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyzerSection:
    """``services.analyzer`` (Anchore's keys, with Anchore's defaults, plus ours)."""

    enabled: bool = True
    require_auth: bool = True
    cycle_timer_seconds: float = 1.0
    #: concurrent CPU work: layers being decompressed, parsed and hashed at once
    max_threads: int = 1
    analyzer_driver: str = "nodocker"
    endpoint_hostname: str = "localhost"
    listen: str = "0.0.0.0"
    #: the HTTP endpoint (/health, /status, /metrics, /v1/jobs); 0: none
    port: int = 8084
    #: Anchore's keys: serve the endpoint over TLS with this certificate (chain) and key, PEM
    ssl_enable: bool = False
    ssl_cert: str = ""
    ssl_key: str = ""
    #: failed logins one client (remote address; an IPv6 /64) may make per window; then 429
    auth_failure_limit: int = 10
    #: the window starts at a client's first failed login; past it the count starts again
    auth_failure_window_seconds: float = 300.0
    layer_cache_enable: bool = False
    layer_cache_max_gigabytes: float = 4.0
    #: images analyzed at once by one daemon (their layers share max_threads); 0: max_threads
    max_concurrent_jobs: int = 0
    #: a running job's lease; renewed while it runs, retaken by any daemon after expiry
    lease_seconds: float = 60.0
    #: tries of a job in all: those whose failures are transient (5xx, 429, network, busy
    #: database), and those whose daemon died (its lease expired: OOM, kill -9, power loss)
    max_attempts: int = 3
    #: wait before the second try; doubled for each further one (at most 600 s)
    retry_backoff_seconds: float = 10.0
    #: on SIGTERM/SIGINT, how long running jobs may take to finish before they are stopped
    #: and given back to the queue (keep systemd's TimeoutStopSec above it)
    shutdown_grace_seconds: float = 60.0
    #: Anchore's key: the wall-clock limit of one try of a job (resolve, download, analyze,
    #: store), after which it fails and is not retried. Anchore's default, and sized for the
    #: largest real images: bigger:1 (1.1 GB) takes ~7 s here, but a 10-20 GB image over a
    #: registry link of 10 MB/s spends half an hour downloading alone.
    image_analyze_timeout_seconds: float = 3600.0

    @property
    def concurrent_jobs(self) -> int:
        return self.max_concurrent_jobs or self.max_threads


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on what a hostile image can make analyzerd do."""

    max_layer_entries: int = 2_000_000
    max_layer_uncompressed_gigabytes: float = 64.0
    #: a file a cataloger reads whole (a jar, an rpmdb) is held in memory up to this size,
    #: and spooled to tmp_dir (deleted right after parsing) above it
    max_catalog_memory_megabytes: float = 8.0
    #: larger files are not cataloged (a warning names them): bounds a hostile image's spool
    max_cataloged_file_megabytes: float = 1024.0


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretSearch:
    """``secret_search:``: which secrets to look for. An Anchore Engine ``secret_search``
    section (``match_params`` with MAXFILESIZE, ``regexp_match`` with NAME=regex entries)
    is read as ``mode: anchore`` with those rules."""

    enabled: bool = True
    #: "default": the built-in rule set; "anchore": Anchore Engine's rules and semantics
    #: (each line matched from its start, files over 10000 bytes skipped)
    mode: str = "default"
    #: files larger than this are not reported on; None: 100 MB, or 10000 bytes in anchore mode
    max_file_size_bytes: int | None = None
    #: report secrets in files whose first block holds a NUL byte (executables, images, ...)
    scan_binary: bool = False
    disabled_rules: tuple[str, ...] = ()
    #: regexes over absolute paths never reported on, besides the built-in ones
    allowed_paths: tuple[str, ...] = ()
    #: extra rules: "NAME=regex" (Anchore's form) or mappings with id, regex, keywords,
    #: category, severity, paths, allow
    rules: tuple[Any, ...] = ()
    #: the HMAC key that fingerprints secrets; kept outside the database, created on first
    #: use; "" : secret-fingerprint.key beside the database
    fingerprint_key_file: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    tmp_dir: str = field(default_factory=tempfile.gettempdir)
    log_level: str = "INFO"
    #: text: "time LEVEL logger event=name key=value ..."; json: one JSON object per line
    log_format: str = "text"
    #: a path, sqlite:///path or postgresql://user@host[:port]/db; empty means default_database_path()
    database: str = ""
    #: a file holding the PostgreSQL password (else $ANALYZERD_DATABASE_PASSWORD, $PGPASSWORD, ~/.pgpass)
    database_password_file: str = ""
    #: the platform picked from multi-platform images unless a job names one
    default_platform: str = "linux/amd64"
    registry_retries: int = 4
    #: Hash each layer's uncompressed stream and compare it with the config's diff_id.
    #: Every blob is verified against its digest anyway; this adds a check that the image
    #: config describes its layers truthfully, at ~15 % more CPU per cold analysis.
    verify_diff_ids: bool = False
    registry_connect_timeout_seconds: float = 30.0
    registry_read_timeout_seconds: float = 300.0
    #: fetch non-distributable ("foreign") layers from their URLs; else skip them with a warning
    allow_foreign_layers: bool = False
    #: Docker config.json for credentials; default $DOCKER_CONFIG/config.json, ~/.docker/config.json
    docker_config: str | None = None
    registries: tuple[RegistrySettings, ...] = ()
    limits: Limits = field(default_factory=Limits)
    analyzer: AnalyzerSection = field(default_factory=AnalyzerSection)
    secret_search: SecretSearch = field(default_factory=SecretSearch)
    #: users of the HTTP endpoint: name -> scrypt hash from `analyzerd hash-password`
    api_users: tuple[tuple[str, str], ...] = ()
    source: str | None = None  #: the file it came from, for messages

    def registry_settings(self, host: str) -> RegistrySettings:
        """Settings for a registry host: config.yaml's entry, credentials from it or
        from the Docker config."""
        entry = next((r for r in self.registries if r.host == host), None)
        if entry is not None and entry.credentials is not None:
            return entry
        creds = _docker_credentials(self.docker_config).get(host)
        if entry is None:
            return RegistrySettings(host=host, credentials=creds)
        return RegistrySettings(host=host, credentials=creds, ca_cert=entry.ca_cert, insecure=entry.insecure)

    @property
    def database_location(self) -> str:
        """The SQLite file's path, or the PostgreSQL URL."""
        return database_location_from(self.database)

    def database_password(self) -> str | None:
        """The PostgreSQL password: $ANALYZERD_DATABASE_PASSWORD, else database_password_file;
        None leaves it to the URL, $PGPASSWORD or ~/.pgpass."""
        password = os.environ.get(DATABASE_PASSWORD_ENV)
        if password:
            return password
        if not self.database_password_file:
            return None
        try:
            with open(os.path.expanduser(self.database_password_file), encoding="utf-8") as f:
                return f.read().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"database_password_file: cannot read {self.database_password_file}: "
                              f"{exc.strerror or exc}") from None


def is_postgresql(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def redact(location: str) -> str:
    """A database URL fit for logs and messages: without its password (in the user part or
    a password= parameter)."""
    if not is_postgresql(location):
        return location
    try:
        parts = urllib.parse.urlsplit(location)
        parts.port  # noqa: B018 - parses the host part, raising on a malformed one
    except ValueError:
        return location.partition("://")[0] + "://<a URL that does not parse>"
    if parts.password is not None:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
    if parts.query:
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if any(name == "password" for name, _ in query):
            parts = parts._replace(query="&".join(
                f"{name}=***" if name == "password" else urllib.parse.urlencode({name: value})
                for name, value in query))
    return urllib.parse.urlunsplit(parts)


#: The environment variable that holds the PostgreSQL password, if any.
DATABASE_PASSWORD_ENV: Final = "ANALYZERD_DATABASE_PASSWORD"


def database_location_from(value: str) -> str:
    """A SQLite path from a path or sqlite:/// URL; a PostgreSQL URL as it is."""
    if not value:
        return default_database_path()
    if value.startswith("sqlite:///"):
        # the URL's path is the file's absolute path: sqlite:///var/lib/x.db -> /var/lib/x.db
        return "/" + value[len("sqlite://"):].lstrip("/")
    if is_postgresql(value):
        return value
    if "://" in value:
        raise ConfigError(f"database: {value.split('://')[0]}:// databases are not supported; "
                          "use a path, sqlite:///path or postgresql://user@host/db")
    return os.path.expanduser(value)


def _docker_config_path(configured: str | None) -> str:
    if configured:
        return os.path.expanduser(configured)
    directory = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(directory, "config.json")


_DOCKER_CACHE: dict[str, dict[str, Credentials]] = {}


def _docker_credentials(configured: str | None) -> dict[str, Credentials]:
    """Credentials by host from the Docker config.json (read once per process)."""
    path = _docker_config_path(configured)
    if path not in _DOCKER_CACHE:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except FileNotFoundError:
            if configured:
                raise ConfigError(f"docker_config: {path} does not exist") from None
            text = "{}"
        except OSError as exc:
            raise ConfigError(f"docker_config: cannot read {path}: {exc.strerror}") from None
        _DOCKER_CACHE[path] = docker_config_credentials(text, path)
    return _DOCKER_CACHE[path]


def _registries(value: Any) -> tuple[RegistrySettings, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(f"registries: expected a list of entries, got {type(value).__name__}")
    out = []
    for i, entry in enumerate(value):
        where = f"registries[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a mapping with at least 'host'")
        unknown = set(entry) - {"host", "username", "password", "password_env", "password_file", "ca_cert", "insecure"}
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (host, username, password, "
                              "password_env, password_file, ca_cert, insecure)")
        host = entry.get("host")
        if not isinstance(host, str) or not host or "/" in host:
            raise ConfigError(f"{where}.host: expected a registry host[:port], got {host!r}")
        where = f"registries[{host}]"
        password = None
        if "password" in entry:
            password = _str(f"{where}.password", entry["password"])
        elif "password_env" in entry:
            name = _str(f"{where}.password_env", entry["password_env"])
            if name not in os.environ:
                raise ConfigError(f"{where}.password_env: environment variable {name} is not set")
            password = os.environ[name]
        elif "password_file" in entry:
            path = os.path.expanduser(_str(f"{where}.password_file", entry["password_file"]))
            try:
                with open(path, encoding="utf-8") as f:
                    password = f.read().rstrip("\n")
            except OSError as exc:
                raise ConfigError(f"{where}.password_file: cannot read {path}: {exc.strerror}") from None
        username = entry.get("username")
        if (username is None) != (password is None):
            raise ConfigError(f"{where}: username and a password (password, password_env or "
                              "password_file) go together")
        ca_cert = entry.get("ca_cert")
        if ca_cert is not None:
            ca_cert = os.path.expanduser(_str(f"{where}.ca_cert", ca_cert))
            if not os.path.isfile(ca_cert):
                raise ConfigError(f"{where}.ca_cert: {ca_cert} does not exist")
        out.append(RegistrySettings(
            host=host,
            credentials=Credentials(_str(f"{where}.username", username), password) if password is not None else None,
            ca_cert=ca_cert,
            insecure=_bool(f"{where}.insecure", entry.get("insecure", False)),
        ))
    return tuple(out)


def default_database_path() -> str:
    """systemd's StateDirectory when run as a unit, else the XDG data directory."""
    state = os.environ.get("STATE_DIRECTORY")
    if state:
        return os.path.join(state.split(":")[0], "analyzerd.db")
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(data_home, "analyzerd", "analyzerd.db")


# -- typed coercion: YAML gives typed values, ${VAR} expansion gives strings ------------

def _bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str, Any], int]:
    def convert(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if minimum is not None and number < minimum:
            raise ConfigError(f"{key}: must be at least {minimum}, got {number}")
        if maximum is not None and number > maximum:
            raise ConfigError(f"{key}: must be at most {maximum}, got {number}")
        return number
    return convert


def _number(minimum: float | None = None, exclusive: bool = False,
            message: str | None = None) -> Callable[[str, Any], float]:
    def convert(key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if minimum is not None and (number < minimum or (exclusive and number == minimum)):
            raise ConfigError(message.format(key=key, value=value) if message else
                              f"{key}: must be {'more than' if exclusive else 'at least'} {minimum:g}, got {value!r}")
        return number
    return convert


def _choice(*choices: str) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
        return str(value)
    return check


def _str(key: str, value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ConfigError(f"{key}: expected a string, got {value!r}")


def _log_level(key: str, value: Any) -> str:
    text = _str(key, value).upper()
    if text not in ("DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL", "SPEW"):
        raise ConfigError(f"{key}: expected one of DEBUG, INFO, WARNING, ERROR, got {value!r}")
    return {"WARN": "WARNING", "SPEW": "DEBUG"}.get(text, text)


def _platform(key: str, value: Any) -> str:
    text = _str(key, value)
    try:
        Platform.parse(text)
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return text


def _database(key: str, value: Any) -> str:
    text = _str(key, value)
    try:
        database_location_from(text)
    except ConfigError as exc:
        raise ConfigError(f"{key}: {exc.message.partition(': ')[2]}") from None
    return text


_ANALYZER_KEYS: Final[dict[str, Callable[[str, Any], Any]]] = {
    "enabled": _bool,
    "require_auth": _bool,
    "cycle_timer_seconds": _number(0, exclusive=True),
    "max_threads": _int(1, 256),
    "analyzer_driver": _str,
    "endpoint_hostname": _str,
    "listen": _str,
    "port": _int(0, 65535),
    "ssl_enable": _bool,
    "ssl_cert": _str,
    "ssl_key": _str,
    "auth_failure_limit": _int(1, 1_000_000),
    "auth_failure_window_seconds": _number(0, exclusive=True),
    "layer_cache_enable": _bool,
    "layer_cache_max_gigabytes": _number(
        MIN_LAYER_CACHE_GIGABYTES,
        message="{key}: the minimum layer cache size is 1 GB (as in Anchore Engine), got {value!r}"),
    "max_concurrent_jobs": _int(0, 1024),
    "lease_seconds": _number(5),
    "shutdown_grace_seconds": _number(0),
    "max_attempts": _int(1, 100),
    "retry_backoff_seconds": _number(0),
    "image_analyze_timeout_seconds": _number(0, exclusive=True),
}
_LIMIT_KEYS: Final[dict[str, Callable[[str, Any], Any]]] = {
    "max_layer_entries": _int(1),
    "max_layer_uncompressed_gigabytes": _number(0, exclusive=True),
    "max_catalog_memory_megabytes": _number(0, exclusive=True),
    "max_cataloged_file_megabytes": _number(0, exclusive=True),
}
_TOP_KEYS: Final[dict[str, Callable[[str, Any], Any]]] = {
    "tmp_dir": _str,
    "log_level": _log_level,
    "log_format": _choice("text", "json"),
    "database": _database,
    "database_password_file": _str,
    "default_platform": _platform,
    "registry_retries": _int(1, 100),
    "verify_diff_ids": _bool,
    "allow_foreign_layers": _bool,
    "docker_config": _str,
    "registry_connect_timeout_seconds": _number(0, exclusive=True),
    "registry_read_timeout_seconds": _number(0, exclusive=True),
}


def _expand(value: Any, where: str) -> Any:
    if isinstance(value, str):
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is None:
                log.debug("config %s: environment variable %s is not set", where, name)
            return default or ""
        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    return value


def _section(raw: Mapping[str, Any], schema: Mapping[str, Callable[[str, Any], Any]], prefix: str,
             known_elsewhere: frozenset[str] = frozenset()) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{prefix}{key}"
        if key in schema:
            if value is None or value == "":
                continue  # an unset ${VAR} means "use the default"
            values[key] = schema[key](name, value)
        elif key not in known_elsewhere:
            close = difflib.get_close_matches(str(key), list(schema), n=1, cutoff=0.8)
            if close:
                log.warning("config key %s is not used by analyzerd; did you mean %s%s?", name, prefix, close[0])
            else:
                log.debug("config key %s is not used by analyzerd (accepted for Anchore compatibility)", name)
    return values


def parse_config(document: Any, source: str | None = None) -> Config:
    """Build a Config from a parsed YAML document (None or {} gives the defaults)."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(f"{source or 'config'}: the top level must be a mapping of keys")
    document = _expand(document, "")
    analyzer_raw: Any = {}
    services = document.get("services")
    if isinstance(services, dict) and "analyzer" in services:
        analyzer_raw = services["analyzer"]
        where = "services.analyzer"
    else:
        analyzer_raw = document.get("analyzer", {})
        where = "analyzer"
    if analyzer_raw is None:
        analyzer_raw = {}
    if not isinstance(analyzer_raw, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {analyzer_raw!r}")
    limits_raw = document.get("limits") or {}
    if not isinstance(limits_raw, dict):
        raise ConfigError(f"limits: expected a mapping of keys, got {limits_raw!r}")
    top = _section(document, _TOP_KEYS, "",
                   known_elsewhere=frozenset({"services", "analyzer", "limits", "registries", "secret_search",
                                              "api_users"}))
    analyzer = _tls(AnalyzerSection(**_section(analyzer_raw, _ANALYZER_KEYS, f"{where}.")), where)
    limits = Limits(**_section(limits_raw, _LIMIT_KEYS, "limits."))
    registries = _registries(document.get("registries"))
    secret_search = _secret_search(document.get("secret_search"))
    return Config(**top, analyzer=analyzer, limits=limits, registries=registries, secret_search=secret_search,
                  api_users=_api_users(document.get("api_users")), source=source)


def _tls(section: AnalyzerSection, where: str) -> AnalyzerSection:
    """With ssl_enable, both files must be named and exist (whether they hold a certificate
    and its key is checked when the endpoint starts)."""
    if not section.ssl_enable:
        return section

    def existing(key: str, value: str) -> str:
        if not value:
            raise ConfigError(f"{where}.{key}: required when ssl_enable is true (a PEM file)")
        path = os.path.expanduser(value)
        if not os.path.isfile(path):
            raise ConfigError(f"{where}.{key}: {path} does not exist")
        return path
    return replace_fields(section, ssl_cert=existing("ssl_cert", section.ssl_cert),
                          ssl_key=existing("ssl_key", section.ssl_key))


def _api_users(raw: Any) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ConfigError(f"api_users: expected a mapping of user name to password hash, got {raw!r}")
    from .passwords import check_password_hash
    return tuple((name, check_password_hash(f"api_users.{name}", value)) for name, value in raw.items())


def _string_list(key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings, got {value!r}")
    return tuple(value)


def _secret_search(raw: Any) -> SecretSearch:
    if raw is None:
        return SecretSearch()
    if not isinstance(raw, dict):
        raise ConfigError(f"secret_search: expected a mapping of keys, got {raw!r}")
    values: dict[str, Any] = {}
    if "regexp_match" in raw or "match_params" in raw:  # Anchore Engine's analyzer_config layout
        values["mode"] = "anchore"
        values["rules"] = _string_list("secret_search.regexp_match", raw.get("regexp_match"))
        for param in _string_list("secret_search.match_params", raw.get("match_params")):
            name, _, value = param.partition("=")
            if name.strip().upper() == "MAXFILESIZE":
                values["max_file_size_bytes"] = _int(1)("secret_search.match_params MAXFILESIZE", value.strip())
    for key, value in raw.items():
        name = f"secret_search.{key}"
        if key in ("regexp_match", "match_params") or value is None or value == "":
            continue
        if key in ("enabled", "scan_binary"):
            values[key] = _bool(name, value)
        elif key == "mode":
            if value not in ("default", "anchore"):
                raise ConfigError(f"{name}: expected default or anchore, got {value!r}")
            values[key] = value
        elif key == "max_file_size_megabytes":
            values["max_file_size_bytes"] = int(_number(0, exclusive=True)(name, value) * 1024 * 1024)
        elif key in ("disabled_rules", "allowed_paths"):
            values[key] = _string_list(name, value)
            if key == "allowed_paths":
                for pattern in values[key]:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise ConfigError(f"{name}: {pattern!r} is not a regular expression: {exc}") from None
        elif key == "rules":
            if not isinstance(value, list) or not all(isinstance(v, (str, dict)) for v in value):
                raise ConfigError(f"{name}: expected a list of NAME=regex strings or rule mappings")
            values[key] = tuple(value)
        elif key == "fingerprint_key_file":
            values[key] = _str(name, value)
        else:
            log.warning("config key %s is not used by analyzerd", name)
    return SecretSearch(**values)


def _without_password(location: str) -> str:
    """A database URL with no password at all. redact() leaves ``***`` in its place, which a
    config file read back would take for the password; without one, the connection takes
    it from database_password_file, $ANALYZERD_DATABASE_PASSWORD, $PGPASSWORD or ~/.pgpass."""
    shown = redact(location)
    if shown == location:
        return location
    parts = urllib.parse.urlsplit(shown)
    query = "&".join(p for p in parts.query.split("&") if p and p != "password=***")
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(":***@", "@", 1), query=query))


def config_yaml(config: Config, source: str | None) -> str:
    """`analyzerd config`: the effective settings as YAML that the config file takes (Anchore's
    layout: ``services.analyzer``). Nothing secret: registry credentials and API users'
    password hashes are left out, named in comments, and a database URL's password is
    redacted; loading the text back gives the same settings but for those."""
    import yaml

    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    top = {f.name: getattr(config, f.name) for f in fields(config)
           if f.name not in ("analyzer", "limits", "registries", "secret_search", "api_users", "source", "database")}
    # the value as written (a path, ~/..., sqlite:/// or a URL), so that it reads back the same;
    # unset stays unset (it follows $STATE_DIRECTORY / $XDG_DATA_HOME), named in a comment
    database = _without_password(config.database) if config.database else None
    document: dict[str, Any] = {**({"database": database} if database is not None else {}), **top}
    document["services"] = {"analyzer": {f.name: getattr(config.analyzer, f.name) for f in fields(config.analyzer)}}
    document["limits"] = {f.name: getattr(config.limits, f.name) for f in fields(config.limits)}
    search = {f.name: plain(getattr(config.secret_search, f.name)) for f in fields(config.secret_search)}
    size = search.pop("max_file_size_bytes")
    if size is not None:
        search["max_file_size_megabytes"] = size / (1024 * 1024)
    document["secret_search"] = search
    document["registries"] = [{"host": r.host, **({"ca_cert": r.ca_cert} if r.ca_cert else {}), "insecure": r.insecure}
                              for r in config.registries]
    lines = ["# analyzerd effective configuration",
             f"# read from: {source or 'built-in defaults (no config file found)'}"]
    if database is None:
        lines.append(f"# database: not set, so {default_database_path()} here")
    for r in config.registries:
        if r.credentials is not None:
            lines.append(f"# registries[{r.host}]: username {r.credentials.username!r} and its password are not "
                         "printed (password, password_env or password_file)")
    if database is not None and database != config.database:
        lines.append("# database: the password in its URL is not printed (database_password_file, or "
                     "$ANALYZERD_DATABASE_PASSWORD)")
    if config.api_users:
        lines.append(f"# api_users: {', '.join(name for name, _ in config.api_users)} (password hashes not printed)")
    return "\n".join(lines) + "\n" + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


#: The system-wide config: the file the systemd unit reads (--config), so that the CLI on
#: that host reads the same `database` as the service.
SYSTEM_CONFIG: Final = "/etc/analyzerd/config.yaml"
#: In the working directory, as Syft reads ./.syft.yaml.
LOCAL_CONFIG_NAME: Final = ".analyzerd.yaml"
#: The user's, under $XDG_CONFIG_HOME (default ~/.config), as the XDG base directory spec says.
USER_CONFIG_NAME: Final = "analyzerd/config.yaml"
#: Where a config file is looked for when neither --config nor $ANALYZERD_CONFIG names one,
#: first found wins; none found: the built-in defaults. Spelt for --help and the README;
#: config_search_path() gives this host's actual paths, in this order.
CONFIG_SEARCH_PATH: Final = (f"./{LOCAL_CONFIG_NAME}", f"${{XDG_CONFIG_HOME:-~/.config}}/{USER_CONFIG_NAME}",
                             SYSTEM_CONFIG)


def config_search_path(environ: Mapping[str, str] = os.environ, cwd: str | None = None) -> tuple[str, ...]:
    """CONFIG_SEARCH_PATH on this host: the working directory's, the user's, the system's."""
    config_home = environ.get("XDG_CONFIG_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"),
                                                                 ".config")
    return (os.path.join(cwd or os.getcwd(), LOCAL_CONFIG_NAME), os.path.join(config_home, USER_CONFIG_NAME),
            SYSTEM_CONFIG)


def discover_config_path(explicit: str | None, environ: Mapping[str, str] = os.environ,
                         cwd: str | None = None) -> str | None:
    """The config file to read: ``explicit`` (--config), else $ANALYZERD_CONFIG, else the
    first of CONFIG_SEARCH_PATH that is a file; None: the built-in defaults. A file named by
    --config or $ANALYZERD_CONFIG is returned whether or not it exists (load_config then
    says it does not): a name given is never silently passed over."""
    if explicit:
        return explicit
    if environ.get("ANALYZERD_CONFIG"):
        return environ["ANALYZERD_CONFIG"]
    for path in config_search_path(environ, cwd):
        if os.path.isfile(path):
            return path
    return None


def load_config(path: str | None) -> Config:
    """Read the file at ``path`` (None: built-in defaults)."""
    if path is None:
        return parse_config({})
    try:
        with open(path, encoding="utf-8") as f:
            document = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    return parse_config(document, path)


def describe(config: Config) -> dict[str, Any]:
    """The effective settings, for `analyzerd config` and logs."""
    out = {f.name: getattr(config, f.name) for f in fields(config)
           if f.name not in ("analyzer", "limits", "registries", "secret_search", "api_users")}
    out["api_users"] = [name for name, _ in config.api_users]
    out["registries"] = [{"host": r.host, "username": r.credentials.username if r.credentials else None,
                          "password": "<hidden>" if r.credentials else None, "ca_cert": r.ca_cert,
                          "insecure": r.insecure} for r in config.registries]
    out["analyzer"] = {f.name: getattr(config.analyzer, f.name) for f in fields(config.analyzer)}
    out["limits"] = {f.name: getattr(config.limits, f.name) for f in fields(config.limits)}
    out["secret_search"] = {f.name: list(v) if isinstance(v := getattr(config.secret_search, f.name), tuple) else v
                            for f in fields(config.secret_search)}
    out["database"] = redact(config.database_location)
    return out
