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
