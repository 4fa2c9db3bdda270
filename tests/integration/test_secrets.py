"""Secrets end to end on the real registry: found in the layer that holds them, marked when
an upper layer deletes the file, never stored or printed in the clear; Anchore's own
secret_search configuration gives Anchore's rules and semantics."""

import glob
import json
import random
import string

from analyzerd.testing import Member, build_image, make_layer, push_image

RNG = random.Random(8)


def aws_key_id():
    return "AKIA" + "".join(RNG.choice(string.ascii_uppercase + "234567") for _ in range(16))


def aws_secret():
    return "".join(RNG.choice(string.ascii_letters + string.digits + "/+") for _ in range(40))


def private_key_pem():
    body = "\n".join("".join(RNG.choice(string.ascii_letters + string.digits + "+/") for _ in range(64))
                     for _ in range(12))
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"


def secrets_of(cli, ref, *args):
    proc = cli(*args, "analyze", ref, "--secrets", "--json")
    return json.loads(proc.stdout)["secrets"], proc


def test_secrets_deleted_in_an_upper_layer_are_reported_and_never_stored(registry, cli, db_path):
    key_id, secret, deleted_key_id = aws_key_id(), aws_secret(), aws_key_id()
    credentials = f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n"
    env = f"APP=demo\nAWS_ACCESS_KEY_ID={deleted_key_id}\n"
    pem = private_key_pem()
    base = make_layer([Member("app/.env", env.encode()), Member("root/.aws/credentials", credentials.encode()),
                       Member("usr/share/doc/demo/README", f"aws_access_key_id = {aws_key_id()}\n".encode())])
    upper = make_layer([Member("app/.wh..env"), Member("root/.ssh/id_rsa", pem.encode(), mode=0o600)])
    image = build_image([base, upper])
    push_image(registry.url, "secrets/app", "1", image)

    found, proc = secrets_of(cli, f"{registry.host}/secrets/app:1")
    by_place = {(s["path"], s["rule"]): s for s in found}
    assert set(by_place) == {("/app/.env", "aws-access-key-id"), ("/root/.aws/credentials", "aws-access-key-id"),
                             ("/root/.aws/credentials", "aws-secret-access-key"), ("/root/.ssh/id_rsa", "private-key")}
    deleted = by_place[("/app/.env", "aws-access-key-id")]
    assert deleted["deleted_in_layer"] == image.layers[1].digest and deleted["layer"] == image.layers[0].digest
    assert deleted["line"] == 2 and deleted["match"] == "AKIA*****"
    assert by_place[("/root/.aws/credentials", "aws-secret-access-key")]["line"] == 3
    assert by_place[("/root/.ssh/id_rsa", "private-key")]["deleted_in_layer"] is None
    assert by_place[("/root/.ssh/id_rsa", "private-key")]["layer"] == image.layers[1].digest
    # the same secret in another image has the same fingerprint; another secret does not
    assert len({s["fingerprint"] for s in found}) == len(found)

    cli("show", f"{registry.host}/secrets/app:1", "--secrets")  # the table, too
    raw = [key_id, secret, deleted_key_id, pem.splitlines()[1]]
    for path in glob.glob(db_path + "*"):
        with open(path, "rb") as f:
            content = f.read()
        assert not any(value.encode() in content for value in raw), path
    for text in (proc.stdout, proc.stderr):
        assert not any(value in text for value in raw)


def test_an_anchore_secret_search_config_gives_anchores_findings(registry, cli, tmp_path):
    key_id = aws_key_id()
    small = f"# settings\naws_access_key_id={key_id}\n"
    big = small + "#" * 12_000 + "\n"  # over Anchore's MAXFILESIZE of 10000 bytes: not searched
    config = tmp_path / "anchore.yaml"
    config.write_text(
        "secret_search:\n  match_params:\n    - MAXFILESIZE=10000\n    - STOREONMATCH=n\n  regexp_match:\n"
        "    - \"AWS_ACCESS_KEY=(?i).*aws_access_key_id( *=+ *).*(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9]).*\"\n"
        "    - \"PRIV_KEY=(?i)-+BEGIN(.*)PRIVATE KEY-+\"\n")
    image = build_image([make_layer([Member("etc/app.conf", small.encode()), Member("etc/big.conf", big.encode()),
                                     Member("etc/key.pem", private_key_pem().encode())])])
    push_image(registry.url, "secrets/anchore", "1", image)
    found, _ = secrets_of(cli, f"{registry.host}/secrets/anchore:1", "--config", str(config))
    assert sorted((s["path"], s["rule"], s["line"]) for s in found) == [
        ("/etc/app.conf", "AWS_ACCESS_KEY", 2), ("/etc/key.pem", "PRIV_KEY", 1)]


def test_stored_layer_results_are_reused_only_under_the_same_rules(registry, cli, tmp_path):
    layer = make_layer([Member("root/.ssh/id_rsa", private_key_pem().encode(), mode=0o600)])
    push_image(registry.url, "secrets/reuse", "1", build_image([layer]))
    push_image(registry.url, "secrets/reuse", "2", build_image([layer], config_extra={"author": "someone else"}))
    found, _ = secrets_of(cli, f"{registry.host}/secrets/reuse:1")
    assert [s["rule"] for s in found] == ["private-key"]
    config = tmp_path / "fewer-rules.yaml"
    config.write_text("secret_search:\n  disabled_rules: [private-key]\n")
    found, proc = secrets_of(cli, f"{registry.host}/secrets/reuse:2", "--config", str(config))
    assert found == []  # the layer was analyzed again, not taken from the first image's result
    assert "event=layer_reused" not in proc.stderr


def test_secrets_in_the_image_config_are_findings_and_are_redacted_everywhere(registry, cli, db_path, tmp_path):
    """Env, Labels and a RUN line of the history hold secrets: each is a finding that says
    where it is (a history entry names the layer it made), and no raw value is in the
    database files, `show --json`, the table, any export, a diff, or the logs."""
    from analyzerd.export import FORMATS

    key_id, secret = aws_key_id(), aws_secret()
    token = "ghp_" + "".join(RNG.choice(string.ascii_letters + string.digits) for _ in range(36))
    password = "Xk9q"
    config = {"config": {"Env": ["PATH=/usr/bin", f"AWS_ACCESS_KEY_ID={key_id}", f"AWS_SECRET_ACCESS_KEY={secret}"],
                         "Labels": {"org.example.token": token, "maintainer": "ops"}, "Cmd": ["/app"]},
              "history": [{"created_by": "ADD rootfs.tar /"},
                          {"created_by": "LABEL org.example.token=...", "empty_layer": True},
                          {"created_by": f"RUN psql postgres://app:{password}@db/app -c 'select 1'"}]}
    layers = [make_layer([Member("etc/hostname", b"app\n")]), make_layer([Member("app/run", b"#!/bin/sh\n")])]
    image = build_image(layers, config_extra=config)
    push_image(registry.url, "secrets/config", "1", image)
    push_image(registry.url, "secrets/config", "clean", build_image(layers[:1]))
    ref = f"{registry.host}/secrets/config:1"

    found, analyzed = secrets_of(cli, ref, "--log-level", "DEBUG")
    by_path = {s["path"]: s for s in found}
    assert sorted((s["path"], s["rule"]) for s in found) == [
        ("config:Env[1]", "aws-access-key-id"), ("config:Env[2]", "aws-secret-access-key"),
        ('config:Labels["org.example.token"]', "github-pat"),
        ("config:history[2].created_by", "database-url-password")]
    assert by_path["config:history[2].created_by"]["layer"] == image.layers[1].digest
    assert by_path["config:Env[1]"]["layer"] is None and by_path["config:Env[1]"]["match"] == "AKIA*****"
    assert by_path['config:Labels["org.example.token"]']["match"] == "ghp_*****"
    assert by_path["config:history[2].created_by"]["match"].startswith("<redacted: 4 chars, fp ")
    assert by_path["config:Env[2]"]["match"].startswith("<redacted: 40 chars, fp ")

    shown = cli("show", ref, "--json")
    document = json.loads(shown.stdout)
    assert document["image"]["env"][1] == "AWS_ACCESS_KEY_ID=AKIA*****"
    assert document["image"]["labels"] == {"org.example.token": "ghp_*****", "maintainer": "ops"}
    assert len(document["secrets"]) == 4
    outputs = [analyzed.stdout, analyzed.stderr, shown.stdout, shown.stderr,
               cli("show", ref).stdout, cli("show", ref, "--summary", "--json").stdout]
    for fmt in FORMATS:
        outputs.append(cli("export", ref, "--format", fmt, "--files").stdout)
    cli("analyze", f"{registry.host}/secrets/config:clean", "--quiet")
    for first, second in ((f"{registry.host}/secrets/config:clean", ref), (ref, f"{registry.host}/secrets/config:clean")):
        outputs.append(cli("diff", first, second, "--json").stdout)
        outputs.append(cli("diff", first, second).stdout)
    # analyzed again: the stored config (no longer the blob as served) is not taken for it
    outputs.append(cli("--log-level", "DEBUG", "analyze", ref, "--force", "--json").stderr)

    raw = [key_id, secret, token, f":{password}@", key_id[4:], token[4:], secret[:8]]
    for text in outputs:
        assert not any(value in text for value in raw), text[:2000]
    files = glob.glob(db_path + "*")  # the database, its -wal and -shm while they exist
    assert files
    for path in files:
        with open(path, "rb") as f:
            content = f.read()
        assert not any(value.encode() in content for value in raw), path
