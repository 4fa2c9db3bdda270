"""Configuration: the Anchore layout works unchanged; bad values are refused by key."""

import logging

import pytest

from analyzerd.config import default_database_path, load_config, parse_config
from analyzerd.errors import ConfigError

ANCHORE_CONFIG = """
service_dir: ${ANCHORE_SERVICE_DIR}
tmp_dir: /scratch
log_level: INFO
cleanup_images: True
host_id: '${ANCHORE_HOST_ID}'
internal_ssl_verify: False
auto_restart_services: False
credentials:
  database:
    db_connect: 'postgresql://anchore:pw@anchore-db:5432/anchore'
services:
  apiext:
    enabled: True
    require_auth: True
    endpoint_hostname: 'anchore-engine-api'
    listen: '0.0.0.0'
    port: 8228
  analyzer:
    enabled: True
    require_auth: True
    cycle_timer_seconds: 1
    cycle_timers:
      image_analyzer: 5
    max_threads: 4
    analyzer_driver: 'nodocker'
    endpoint_hostname: '${ANCHORE_HOST_ID}'
    listen: '0.0.0.0'
    port: 8084
    layer_cache_enable: True
    layer_cache_max_gigabytes: 4
    enable_hints: False
    enable_owned_package_filtering: True
"""


def test_an_anchore_config_works_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("ANCHORE_HOST_ID", "analyzer-7")
    path = tmp_path / "config.yaml"
    path.write_text(ANCHORE_CONFIG)
    config = load_config(str(path))
    assert config.tmp_dir == "/scratch"
    a = config.analyzer
    assert (a.max_threads, a.port, a.layer_cache_enable, a.layer_cache_max_gigabytes) == (4, 8084, True, 4)
    assert a.endpoint_hostname == "analyzer-7" and a.cycle_timer_seconds == 1


def test_top_level_analyzer_section():
    config = parse_config({"analyzer": {"max_threads": 3}})
    assert config.analyzer.max_threads == 3


def test_defaults_without_a_file():
    config = load_config(None)
    assert config.analyzer.max_threads >= 1 and config.analyzer.cycle_timer_seconds > 0
    assert config.database_location == default_database_path()


def test_env_values_are_coerced_and_defaults_apply(monkeypatch):
    monkeypatch.setenv("THREADS", "6")
    monkeypatch.setenv("CACHE", "true")
    config = parse_config({"services": {"analyzer": {"max_threads": "${THREADS}", "layer_cache_enable": "${CACHE}",
                                                     "port": "${UNSET_PORT:-9000}"}}})
    assert config.analyzer.max_threads == 6 and config.analyzer.layer_cache_enable is True
    assert config.analyzer.port == 9000


@pytest.mark.parametrize("document, key", [
    ({"services": {"analyzer": {"max_threads": "many"}}}, "services.analyzer.max_threads"),
    ({"services": {"analyzer": {"max_threads": 0}}}, "services.analyzer.max_threads"),
    ({"services": {"analyzer": {"port": 70000}}}, "services.analyzer.port"),
    ({"services": {"analyzer": {"cycle_timer_seconds": 0}}}, "services.analyzer.cycle_timer_seconds"),
    ({"services": {"analyzer": {"layer_cache_enable": "maybe"}}}, "services.analyzer.layer_cache_enable"),
    ({"analyzer": {"enabled": [1]}}, "analyzer.enabled"),
    ({"log_level": "LOUD"}, "log_level"),
    ({"default_platform": "x86"}, "default_platform"),
    ({"database": "mysql://x/y"}, "database"),
    ({"limits": {"max_layer_entries": -1}}, "limits.max_layer_entries"),
    ({"services": {"analyzer": {"image_analyze_timeout_seconds": 0}}}, "services.analyzer.image_analyze_timeout_seconds"),
])
def test_wrong_values_name_the_key(document, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config(document)


def test_image_analyze_timeout_seconds_is_anchores_key_and_applies():
    assert load_config(None).analyzer.image_analyze_timeout_seconds == 3600
    config = parse_config({"services": {"analyzer": {"image_analyze_timeout_seconds": "900"}}})
    assert config.analyzer.image_analyze_timeout_seconds == 900


def test_layer_cache_minimum_is_one_gigabyte():
    with pytest.raises(ConfigError, match="minimum layer cache size is 1 GB"):
        parse_config({"services": {"analyzer": {"layer_cache_max_gigabytes": 0.5}}})


def test_misspelt_key_warns_with_the_right_name(caplog):
    with caplog.at_level(logging.WARNING):
        parse_config({"services": {"analyzer": {"max_thread": 2}}})
    assert "did you mean services.analyzer.max_threads" in caplog.text


def test_database_urls(monkeypatch):
    assert parse_config({"database": "sqlite:///var/lib/analyzerd/a.db"}).database_location == "/var/lib/analyzerd/a.db"
    assert parse_config({"database": "/srv/a.db"}).database_location == "/srv/a.db"
    url = "postgresql://analyzerd@db.internal:5432/analyzerd?sslmode=verify-full"
    assert parse_config({"database": url}).database_location == url
    with pytest.raises(ConfigError, match=r"database: mysql:// databases are not supported"):
        parse_config({"database": "mysql://u@h/db"})
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/analyzerd")
    assert default_database_path() == "/var/lib/analyzerd/analyzerd.db"
    monkeypatch.delenv("STATE_DIRECTORY")
    monkeypatch.setenv("XDG_DATA_HOME", "/home/u/.data")
    assert default_database_path() == "/home/u/.data/analyzerd/analyzerd.db"


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("services: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml is not valid YAML"):
        load_config(str(path))


def test_shipped_config_yaml_loads():
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    config = load_config(os.path.join(root, "config.yaml"))
    assert config.analyzer.port == 8084
    # the service's database (systemd StateDirectory=analyzerd), where the CLI on that host finds it too
    assert config.database_location == "/var/lib/analyzerd/analyzerd.db"


@pytest.mark.parametrize("section, message", [
    ({"mode": "paranoid"}, "secret_search.mode: expected default or anchore"),
    ({"allowed_paths": ["(unclosed"]}, "secret_search.allowed_paths: '(unclosed' is not a regular expression"),
    ({"disabled_rules": "jwt"}, "secret_search.disabled_rules: expected a list of strings"),
    ({"max_file_size_megabytes": 0}, "secret_search.max_file_size_megabytes"),
    ({"rules": [42]}, "secret_search.rules: expected a list"),
])
def test_bad_secret_search_settings_are_refused_by_key(section, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_config({"secret_search": section})


def test_rules_that_cannot_work_are_refused_naming_the_rule(tmp_path):
    from analyzerd.secret_rules import secret_rule_set
    key = str(tmp_path / "key")
    for section, message in [({"disabled_rules": ["no-such-rule"]}, "no rule named no-such-rule"),
                             ({"rules": [{"id": "mine", "regex": "(", "keywords": ["abc"]}]}, "secret rule mine")]:
        config = parse_config({"secret_search": {**section, "fingerprint_key_file": key}})
        with pytest.raises(ConfigError, match=message):
            secret_rule_set(config)
    config = parse_config({"secret_search": {"fingerprint_key_file": key}})
    assert secret_rule_set(config) is not None
    assert (tmp_path / "key").stat().st_mode & 0o777 == 0o600


def test_the_database_password_comes_from_the_environment_else_the_file_and_is_redacted(monkeypatch, tmp_path):
    from analyzerd.config import redact
    secret = tmp_path / "password"
    secret.write_text("from-file\n")
    config = parse_config({"database": "postgresql://u@db/a", "database_password_file": str(secret)})
    monkeypatch.delenv("ANALYZERD_DATABASE_PASSWORD", raising=False)
    assert config.database_password() == "from-file"
    monkeypatch.setenv("ANALYZERD_DATABASE_PASSWORD", "from-env")
    assert config.database_password() == "from-env"
    monkeypatch.delenv("ANALYZERD_DATABASE_PASSWORD")
    assert parse_config({"database": "postgresql://u@db/a"}).database_password() is None
    with pytest.raises(ConfigError, match=r"database_password_file: cannot read .*absent"):
        parse_config({"database_password_file": str(tmp_path / "absent")}).database_password()
    assert redact("postgresql://u:p%40ss@db:5432/a?sslmode=require") == "postgresql://u:***@db:5432/a?sslmode=require"
    assert redact("postgresql://u@db/a") == "postgresql://u@db/a"
    assert redact("postgresql://u@db/a?password=pw&sslmode=require") == "postgresql://u@db/a?password=***&sslmode=require"
    assert "pw" not in redact("postgresql://u:pw@[::1/a")
    assert redact("/var/lib/analyzerd/analyzerd.db") == "/var/lib/analyzerd/analyzerd.db"


def _without(config, *names):
    import dataclasses
    out = dataclasses.asdict(config)
    for name in names:
        out.pop(name)
    return out


def test_config_yaml_is_a_config_file_that_gives_the_same_settings(tmp_path, monkeypatch):
    """`analyzerd config` prints YAML the config file takes: loading it gives the settings it
    was printed from, except the secrets it leaves out (named in comments)."""
    import dataclasses

    import yaml

    from analyzerd.config import config_yaml
    from analyzerd.passwords import hash_password
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("REG_PASSWORD", "s3cret-registry-password")
    rich = parse_config({
        "tmp_dir": str(tmp_path), "log_level": "DEBUG", "log_format": "json",
        "database": "postgresql://analyzer:db-pass@db.internal/analyzerd", "default_platform": "linux/arm64/v8",
        "registry_retries": 7, "verify_diff_ids": True, "allow_foreign_layers": True,
        "registry_connect_timeout_seconds": 5, "registry_read_timeout_seconds": 50,
        "services": {"analyzer": {"max_threads": 3, "port": 9000, "layer_cache_enable": True,
                                  "layer_cache_max_gigabytes": 2.5, "max_attempts": 5, "cycle_timer_seconds": 0.25}},
        "limits": {"max_layer_entries": 1000, "max_catalog_memory_megabytes": 3},
        "registries": [{"host": "r.example:5000", "username": "bot", "password_env": "REG_PASSWORD",
                        "ca_cert": str(ca)}, {"host": "insecure.local", "insecure": True}],
        "secret_search": {"mode": "anchore", "max_file_size_megabytes": 2, "scan_binary": True,
                          "disabled_rules": ["github-pat"], "allowed_paths": ["^/usr/share/doc/"],
                          "rules": ["TOKEN=tok_[a-z]{8}"], "fingerprint_key_file": str(tmp_path / "k")},
        "api_users": {"alice": hash_password("a long passphrase")},
    }, "rich.yaml")
    home = parse_config({"database": "~/results/a.db", "secret_search": {"max_file_size_megabytes": 0.3}})
    for config, source in ((parse_config({}), None), (rich, "rich.yaml"), (home, "home.yaml")):
        text = config_yaml(config, source)
        assert "s3cret-registry-password" not in text and "db-pass" not in text and "scrypt" not in text
        again = parse_config(yaml.safe_load(text))
        # every field but the secrets left out: the registries' credentials, the API users, the
        # database URL's password (the URL itself is compared below)
        assert _without(again, "source", "registries", "api_users", "database") == \
            _without(config, "source", "registries", "api_users", "database")
        assert [(r.host, r.ca_cert, r.insecure) for r in again.registries] == \
            [(r.host, r.ca_cert, r.insecure) for r in config.registries]
        assert again.registries == tuple(dataclasses.replace(r, credentials=None) for r in config.registries)
        assert again.database == config.database.replace(":db-pass@", "@")
        assert again.api_users == ()
    text = config_yaml(rich, "rich.yaml")
    assert text.startswith("# analyzerd effective configuration\n# read from: rich.yaml\n")
    assert "username 'bot'" in text and "api_users: alice" in text
    assert "services:\n  analyzer:\n" in text and "max_file_size_megabytes: 2.0" in text
    assert "max_file_size_bytes" not in text and "source" not in yaml.safe_load(text)
    assert parse_config(yaml.safe_load(text)).database_location == "postgresql://analyzer@db.internal/analyzerd"
    defaults = config_yaml(parse_config({}), None)
    assert defaults.startswith("# analyzerd effective configuration\n# read from: built-in defaults")
    assert f"# database: not set, so {default_database_path()} here\n" in defaults  # unset stays unset
    assert "database" not in yaml.safe_load(defaults)


@pytest.mark.parametrize("url, printed", [
    ("postgresql://u:p%40ss@db:5432/a?sslmode=require", "postgresql://u@db:5432/a?sslmode=require"),
    ("postgresql://u@db/a?password=pw&sslmode=require", "postgresql://u@db/a?sslmode=require"),
    ("postgresql://u:x@db/a?sslmode=require&password=pw", "postgresql://u@db/a?sslmode=require"),
    ("postgresql://u@db/a", "postgresql://u@db/a"),
    ("sqlite:///var/lib/analyzerd/analyzerd.db", "sqlite:///var/lib/analyzerd/analyzerd.db"),
])
def test_config_yaml_prints_the_database_url_without_any_password(url, printed):
    """Not redacted to ***, which the file read back would take for the password: left out."""
    import yaml

    from analyzerd.config import config_yaml
    text = config_yaml(parse_config({"database": url}), "x.yaml")
    assert yaml.safe_load(text)["database"] == printed
    assert "pw" not in text and "p%40ss" not in text and "***" not in text
    assert ("the password in its URL is not printed" in text) == (url != printed)


def test_the_config_file_is_found_by_one_documented_rule(tmp_path, monkeypatch):
    from analyzerd import config as config_module
    from analyzerd.config import discover_config_path
    home, work, system = tmp_path / "home", tmp_path / "work", tmp_path / "etc-config.yaml"
    work.mkdir()
    monkeypatch.setattr(config_module, "SYSTEM_CONFIG", str(system))
    environ = {"HOME": str(home)}
    assert discover_config_path(None, environ, str(work)) is None  # built-in defaults
    system.write_text("log_level: INFO\n")
    assert discover_config_path(None, environ, str(work)) == str(system)
    user = home / ".config" / "analyzerd" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("{}\n")
    assert discover_config_path(None, environ, str(work)) == str(user)
    xdg = tmp_path / "xdg" / "analyzerd" / "config.yaml"
    xdg.parent.mkdir(parents=True)
    xdg.write_text("{}\n")
    assert discover_config_path(None, {**environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg")}, str(work)) == str(xdg)
    (work / ".analyzerd.yaml").write_text("{}\n")
    assert discover_config_path(None, environ, str(work)) == str(work / ".analyzerd.yaml")
    assert discover_config_path(None, {**environ, "ANALYZERD_CONFIG": "/from/env.yaml"}, str(work)) == \
        "/from/env.yaml"
    assert discover_config_path("/explicit.yaml", {**environ, "ANALYZERD_CONFIG": "/x"}, str(work)) == \
        "/explicit.yaml"
    assert discover_config_path(None, {**environ, "ANALYZERD_CONFIG": str(tmp_path / "absent.yaml")}, str(work)) == \
        str(tmp_path / "absent.yaml")  # named, so load_config says it is missing: never passed over


def test_the_documented_search_path_is_the_one_searched(tmp_path):
    from analyzerd.config import CONFIG_SEARCH_PATH, SYSTEM_CONFIG, config_search_path
    assert CONFIG_SEARCH_PATH == ("./.analyzerd.yaml", "${XDG_CONFIG_HOME:-~/.config}/analyzerd/config.yaml",
                                  "/etc/analyzerd/config.yaml")
    searched = config_search_path({"HOME": "/home/u"}, str(tmp_path))
    assert searched == (str(tmp_path / ".analyzerd.yaml"), "/home/u/.config/analyzerd/config.yaml", SYSTEM_CONFIG)
    assert config_search_path({"HOME": "/home/u", "XDG_CONFIG_HOME": "/xdg"}, str(tmp_path))[1] == \
        "/xdg/analyzerd/config.yaml"
