"""What a finding shows of its secret (secrets/redaction.py), and the image config's secrets
and redaction (secrets/config.py): a prefix only where it is the rule's public literal,
otherwise only the length and the keyed fingerprint, however short the secret."""

import hashlib
import hmac
import json
import random
import string

import pytest

from analyzerd.secrets.config import scan_config
from analyzerd.secrets.redaction import affixes_of, hint
from analyzerd.secrets.rules import RULES, Rule
from analyzerd.secrets.scanner import RuleSet, build_rule_set

KEY = b"r" * 32
RULE_SET = build_rule_set(fingerprint_key=KEY)
BY_ID = {r.id: r for r in RULES}
RNG = random.Random(17)


def fp(secret: bytes) -> str:
    return hmac.new(KEY, secret, hashlib.sha256).hexdigest()


def shown(rule_id: str, secret: str) -> str:
    return hint(secret.encode(), fp(secret.encode()), affixes_of(BY_ID[rule_id].regex))


def rand(n, alphabet=string.ascii_letters + string.digits):
    return "".join(RNG.choice(alphabet) for _ in range(n))


@pytest.mark.parametrize("rule_id,secret", [
    ("netrc-password", "Xk9q"),
    ("database-url-password", "Pa55"),
    ("netrc-password", "x"),
    ("pgpass-password", "s3cr3tvalue!"),
    ("aws-secret-access-key", rand(40)),
    ("twilio-auth-token", rand(32, "0123456789abcdef")),
])
def test_a_secret_without_public_literals_shows_only_length_and_fingerprint(rule_id, secret):
    text = shown(rule_id, secret)
    assert text == f"<redacted: {len(secret)} chars, fp {fp(secret.encode())[:8]}>"
    assert secret not in text.replace(f"fp {fp(secret.encode())[:8]}", "")


@pytest.mark.parametrize("rule_id,secret,expected", [
    ("aws-access-key-id", "AKIA" + rand(16, string.ascii_uppercase + "234567"), "AKIA*****"),
    ("aws-access-key-id", "ASIA" + rand(16, string.ascii_uppercase + "234567"), "ASIA*****"),
    ("github-pat", "ghp_" + rand(36), "ghp_*****"),
    ("slack-bot-token", f"xoxb-{rand(11, string.digits)}-{rand(24)}", "xoxb-*****"),
    ("stripe-secret-key", "rk_live_" + rand(24), "rk_live_*****"),  # a small class between literals
    ("private-key", "-----BEGIN RSA PRIVATE KEY-----", "-----BEGIN *****PRIVATE KEY-----"),
    ("private-key", "-----BEGIN PRIVATE KEY-----", "-----BEGIN PRIVATE KEY-----"),  # nothing but literals
    ("new-relic-license-key", rand(36, "0123456789abcdef") + "NRAL", "*****NRAL"),  # a public suffix
    ("sentry-auth-token", "sntryu_" + rand(64, "0123456789abcdef"), "sntryu_*****"),  # an alternation's heads
])
def test_a_public_literal_prefix_or_suffix_is_shown_and_nothing_else(rule_id, secret, expected):
    assert shown(rule_id, secret) == expected


def test_a_class_or_a_run_at_the_edge_of_what_is_shown_tells_nothing_of_the_secret():
    # [MNO] starts a Discord bot token's own random part: not a literal of the rule
    token = "M" + rand(25) + "." + rand(6) + "." + rand(30)
    assert shown("discord-bot-token", token).startswith("<redacted:")
    # A{20,24} then the token's alphabet, which has "A": the 2 A's past 20 may be the token's own
    bearer = "A" * 22 + rand(40)
    assert shown("twitter-bearer-token", bearer) == "A" * 20 + "*****"


def test_a_custom_rule_gets_its_literal_prefix_or_none_derived_from_its_pattern():
    with_prefix = Rule(id="acme", category="Acme", title="t", severity="HIGH",
                       regex=r"(?P<secret>acme_(?:live|test)_[a-z0-9]{20})", keywords=("acme_",))
    without = Rule(id="acme-pw", category="Acme", title="t", severity="HIGH",
                   regex=r"(?i)acme_password=(?P<secret>\S{1,64})", keywords=("acme_password",))
    caseless = Rule(id="acme-key", category="Acme", title="t", severity="HIGH",
                    regex=r"(?i)(?P<secret>key-[a-z0-9]{20})", keywords=("key-",))
    rules = RuleSet((with_prefix, without, caseless), fingerprint_key=KEY)
    secret, short = "acme_live_" + rand(20, string.ascii_lowercase), "Q1"
    found = {m.rule.id: m for m in rules.find_in_text(f"x {secret} acme_password={short} KEY-{'a1' * 10}".encode())}
    assert found["acme"].redacted == "acme_live_*****"
    assert found["acme-pw"].redacted == f"<redacted: 2 chars, fp {fp(short.encode())[:8]}>"
    assert found["acme-key"].redacted == "KEY-*****"  # a caseless literal: shown as the text has it


def test_every_builtin_rule_shows_no_more_than_its_literals():
    """For each rule, a shown prefix and suffix are text every secret of the rule could
    begin or end with: two random secrets of the rule never show different random parts."""
    for rule in RULES:
        affixes = affixes_of(rule.regex)
        for step in affixes.prefix + affixes.suffix:
            options = getattr(step, "options", None)
            if options is not None:
                assert all(o.isascii() for o in options), rule.id


AWS_ID = "AKIA" + rand(16, string.ascii_uppercase + "234567")
AWS_SECRET = rand(40)
GITHUB = "ghp_" + rand(36)
DB_PASSWORD = "Pa55"
BOT = f"xoxb-{rand(11, string.digits)}-{rand(24)}"


def config():
    return {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/bin", f"AWS_ACCESS_KEY_ID={AWS_ID}", f"AWS_SECRET_ACCESS_KEY={AWS_SECRET}"],
                   "Labels": {"org.example.token": GITHUB, "maintainer": "ops"},
                   "Entrypoint": ["/app", f"--slack={BOT}"], "Cmd": ["serve"]},
        "container_config": {"Env": [f"AWS_ACCESS_KEY_ID={AWS_ID}"]},
        "history": [{"created_by": "ADD rootfs.tar /"},
                    {"created_by": f"ENV AWS_ACCESS_KEY_ID={AWS_ID}", "empty_layer": True},
                    {"created_by": f"RUN psql postgres://app:{DB_PASSWORD}@db/app -c 'select 1'"}],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64, "sha256:" + "1" * 64]},
    }


def test_config_secrets_are_found_where_they_are_with_the_layer_a_history_entry_made():
    scan = scan_config(RULE_SET, config(), layers=2)
    found = sorted((f.finding.path, f.finding.rule, f.layer) for f in scan.findings)
    assert found == sorted([
        ("config:Env[1]", "aws-access-key-id", None),
        ("config:Env[2]", "aws-secret-access-key", None),
        ('config:Labels["org.example.token"]', "github-pat", None),
        ("config:Entrypoint[1]", "slack-bot-token", None),
        ("config:history[1].created_by", "aws-access-key-id", None),  # an ENV line: no layer
        ("config:history[2].created_by", "database-url-password", 1),  # the second layer
    ])  # container_config repeats Env[1]: reported once, where people look
    by_path = {f.finding.path: f.finding for f in scan.findings}
    assert by_path["config:Env[1]"].redacted == "AKIA*****" and by_path["config:Env[1]"].offset == 18
    assert by_path["config:history[2].created_by"].redacted == \
        f"<redacted: 4 chars, fp {fp(DB_PASSWORD.encode())[:8]}>"
    assert by_path["config:Env[2]"].fingerprint == fp(AWS_SECRET.encode())


def test_the_redacted_config_holds_no_secret_and_keeps_the_rest():
    scan = scan_config(RULE_SET, config(), layers=2)
    text = json.dumps(scan.config)
    for raw in (AWS_ID, AWS_SECRET, GITHUB, BOT, f":{DB_PASSWORD}@", AWS_ID[4:], AWS_SECRET[:4]):
        assert raw not in text
    assert scan.redacted and list(scan.config) == list(config())  # same fields, same order
    assert scan.config["config"]["Env"][1] == "AWS_ACCESS_KEY_ID=AKIA*****"
    assert scan.config["config"]["Labels"]["maintainer"] == "ops"
    assert scan.config["history"][2]["created_by"].startswith("RUN psql postgres://app:<redacted: 4 chars, fp ")
    assert scan.config["rootfs"] == config()["rootfs"]


def test_a_config_without_secrets_is_kept_as_it_is():
    clean = {"config": {"Env": ["PATH=/usr/bin", "PASSWORD_FILE=/run/secrets/pw"]}, "history": []}
    scan = scan_config(RULE_SET, clean, layers=0)
    assert scan.findings == () and not scan.redacted and scan.config is clean


def test_a_secret_in_a_label_name_is_not_named_by_its_path():
    scan = scan_config(RULE_SET, {"config": {"Labels": {GITHUB: "1"}}}, layers=0)
    assert [f.finding.path for f in scan.findings] == ['config:Labels["ghp_*****"]']
    assert GITHUB not in json.dumps(scan.config)


def test_a_label_named_like_a_credential_is_read_with_its_name():
    scan = scan_config(RULE_SET, {"config": {"Labels": {"aws_secret_access_key": AWS_SECRET}}}, layers=0)
    assert [(f.finding.path, f.finding.rule) for f in scan.findings] == [
        ('config:Labels["aws_secret_access_key"]', "aws-secret-access-key")]
    assert AWS_SECRET not in json.dumps(scan.config)


def test_a_deeply_nested_config_is_walked_without_recursion():
    deep: object = f"token {GITHUB}"
    for _ in range(500):  # as deep as json.loads goes in practice
        deep = [deep]
    scan = scan_config(RULE_SET, {"config": {"Env": []}, "extra": deep}, layers=0)
    assert len(scan.findings) == 1 and GITHUB not in json.dumps(scan.config)
