"""The built-in secret rules, through a reference matcher that models the scanner.

Every rule has positive and negative lines (near misses: wrong length, wrong prefix, no
name beside a shapeless value, placeholders and documented example values). Tokens are
generated here from the provider's alphabet and length, and prefixes are split in the
source, so this file holds no real secret and few scanner-triggering literals.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import pathlib
import random
import re
import sys
import time
from dataclasses import dataclass, field

import pytest

from analyzerd.secrets import rules as rules_module
from analyzerd.secrets.rules import ANCHORE_RULES, DEFAULT_ALLOWED_PATHS, RULES, Rule, anchore_rule, derive_keywords

ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
UPPER_NUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
LOWER_NUM = "abcdefghijklmnopqrstuvwxyz0123456789"
LHEX = "0123456789abcdef"
HEX = "0123456789abcdefABCDEF"
DIGITS = "0123456789"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
BECH32_UPPER = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"

DEFAULT_PATH = "/app/config/settings.env"


def rnd(alphabet: str, n: int, seed: str = "") -> str:
    """n random-looking characters of alphabet; the same arguments give the same string."""
    out: list[str] = []
    counter = 0
    while len(out) < n:
        block = hashlib.sha256(f"{seed}|{alphabet}|{n}|{counter}".encode()).digest()
        out.extend(alphabet[b % len(alphabet)] for b in block)
        counter += 1
    return "".join(out[:n])


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def uuid(seed: str = "", upper: bool = False) -> str:
    h = rnd(LHEX, 32, seed)
    u = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return u.upper() if upper else u


def pem(kind: str, what: str = "PRIVATE KEY") -> str:
    """A PEM BEGIN line, assembled so the source has none."""
    label = f"{kind} {what}" if kind else what
    return "-" * 5 + "BEGIN " + label + "-" * 5


# --- the reference matcher ------------------------------------------------------------------

def _compiled(rule: Rule) -> re.Pattern[bytes]:
    return re.compile(rule.regex.encode())


def find(rule: Rule, line: str | bytes, path: str = DEFAULT_PATH) -> bytes | None:
    """What the scanner reports for ``line`` of the file at ``path``: the secret, or None."""
    raw = line.encode() if isinstance(line, str) else line
    if rule.paths and not any(re.search(p, path) for p in rule.paths):
        return None
    if rule.keywords and not any(k.encode() in raw.lower() for k in rule.keywords):
        return None
    regex = _compiled(rule)
    m = regex.match(raw) if rule.anchore else regex.search(raw)
    if m is None:
        return None
    secret = m.group("secret") if "secret" in regex.groupindex else m.group(0)
    if any(re.search(a.encode(), secret) for a in rule.allow):
        return None
    return secret


def match_text(rule: Rule, line: str) -> str:
    regex = _compiled(rule)
    m = regex.match(line.encode()) if rule.anchore else regex.search(line.encode())
    assert m is not None
    return m.group(0).decode().lower()


# --- the cases ------------------------------------------------------------------------------

@dataclass
class Pos:
    line: str
    secret: str | None = None  # the value expected, when the line makes it obvious
    path: str = DEFAULT_PATH


@dataclass
class Neg:
    line: str
    path: str = DEFAULT_PATH
    why: str = ""


@dataclass
class Case:
    pos: list[Pos] = field(default_factory=list)
    neg: list[Neg] = field(default_factory=list)


CASES: dict[str, Case] = {}


def case(rule_id: str, pos: list[Pos], neg: list[Neg]) -> None:
    assert rule_id not in CASES, rule_id
    CASES[rule_id] = Case(pos, neg)


def token(rule_id: str, prefixes: list[str], alphabet: str, lo: int, hi: int | None = None, suffix: str = "",
          extra_pos: list[Pos] = (), extra_neg: list[Neg] = ()) -> None:
    """A self-identifying token: prefix + lo..hi characters of alphabet (+ suffix)."""
    pos, neg = [], []
    for prefix in prefixes:
        tok = prefix + rnd(alphabet, lo, rule_id + prefix) + suffix
        pos += [Pos(f"TOKEN={tok}", tok), Pos(f'  "token": "{tok}",', tok), Pos(f"curl -H 'X-Key: {tok}' x", tok)]
        if hi is not None:
            long_tok = prefix + rnd(alphabet, hi, rule_id + prefix) + suffix
            pos.append(Pos(f"key: {long_tok}", long_tok))
            neg.append(Neg(f"key: {prefix}{rnd(alphabet, hi + 1, rule_id)}{suffix}", why="too long"))
        else:
            neg.append(Neg(f"key: {prefix}{rnd(alphabet, lo + 1, rule_id)}{suffix}", why="too long"))
        neg.append(Neg(f"key: {prefix}{rnd(alphabet, lo - 1, rule_id)}{suffix}", why="too short"))
        bad = prefix[:-2] + ("Z" if prefix[-2] != "Z" else "Y") + prefix[-1]
        neg.append(Neg(f"key: {bad}{rnd(alphabet, lo, rule_id)}{suffix}", why="wrong prefix"))
        neg.append(Neg(f"key: {prefix}{'x' * lo}{suffix}", why="placeholder"))
    case(rule_id, pos + list(extra_pos), neg + list(extra_neg))


def assigned(rule_id: str, names: list[str], value: str, short: str, extra_pos: list[Pos] = (),
             extra_neg: list[Neg] = ()) -> None:
    """A shapeless value that needs a provider name beside it."""
    pos = []
    for name in names:
        pos += [Pos(f"export {name.upper()}_API_KEY={value}", value), Pos(f'  "{name}_token": "{value}",', value),
                Pos(f"{name}.secret = '{value}'", value)]
    neg = [Neg(f"export API_KEY={value}", why="no provider name"),
           Neg(f"{names[0].upper()}_KEY={short}", why="wrong length"),
           Neg(f"{names[0].upper()}_KEY=${{{names[0].upper()}_KEY}}", why="a reference"),
           Neg(f"{names[0]} {value}", why="not assigned")]
    case(rule_id, pos + list(extra_pos), neg + list(extra_neg))


# AWS
_akid = "AK" + "IA" + rnd(UPPER_NUM, 16, "akid")
token("aws-access-key-id", ["AK" + "IA", "AS" + "IA", "AB" + "IA", "AC" + "CA"], UPPER_NUM, 16,
      extra_pos=[Pos(f"aws_access_key_id = {_akid}", _akid), Pos(f"X-Amz-Credential={_akid}%2F20240101", _akid)],
      extra_neg=[Neg("aws_access_key_id = AKIA" + "IOSFODNN7EXAMPLE", why="AWS's documented example"),
                 Neg("aws_access_key_id = AKIA" + "I44QH8DHBEXAMPLE", why="AWS's documented example"),
                 Neg("AKIA" + "X" * 16, why="placeholder"),
                 Neg("xAKIA" + rnd(UPPER_NUM, 16), why="glued to a word"),
                 Neg("AKIA" + rnd(UPPER_NUM, 15) + "a", why="lower case")])
_aws_secret = rnd(ALNUM + "/+", 40, "aws-secret")
case("aws-secret-access-key",
     [Pos(f"aws_secret_access_key = {_aws_secret}", _aws_secret),
      Pos(f'AWS_SECRET_ACCESS_KEY="{_aws_secret}"', _aws_secret),
      Pos(f'    "SecretAccessKey": "{_aws_secret}",', _aws_secret),
      Pos(f"aws s3 ls --aws-secret-access-key={_aws_secret}", _aws_secret),
      Pos(f"aws_secret_key: '{_aws_secret}'", _aws_secret),
      Pos(f"AwsSecretKey => '{_aws_secret}'", _aws_secret)],
     [Neg(f"aws_secret_access_key = {_aws_secret[:39]}", why="too short"),
      Neg(f"aws_secret_access_key = {_aws_secret}A", why="too long"),
      Neg("aws_secret_access_key = ${AWS_SECRET}", why="a reference"),
      Neg("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCY" + "EXAMPLEKEY", why="AWS's documented example"),
      Neg(f"secret = {_aws_secret}", why="no name"),
      Neg(f"aws_access_key = {_aws_secret}", why="another name")])
_session = "IQoJb3JpZ2luX2Vj" + rnd(B64, 340, "session") + "=="
case("aws-session-token",
     [Pos(f"aws_session_token = {_session}", _session), Pos(f'"SessionToken": "{_session}"', _session),
      Pos(f"export AWS_SECURITY_TOKEN={_session}", _session), Pos(f"--aws-session-token={_session}", _session)],
     [Neg(f"aws_session_token = {_session[:99]}", why="too short"),
      Neg("aws_session_token = ${AWS_SESSION_TOKEN}", why="a reference"),
      Neg(f"session = {_session}", why="no name")])
_mws = "amzn" + ".mws." + uuid("mws")
case("aws-mws-auth-token", [Pos(f"MWS_AUTH_TOKEN={_mws}", _mws)],
     [Neg("amzn" + ".mws." + uuid("mws", upper=True), why="upper case"), Neg(_mws[:-1], why="too short")])

# Google
_gcp_body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + rnd(B64, 32, "gcp")
case("gcp-service-account-key",
     [Pos(f'  "private_key": "{pem("")}\\n{_gcp_body}\\n', _gcp_body),
      Pos(f'{{"type":"service_account","private_key":"{pem("RSA")}\\n{_gcp_body}\\n"}}', _gcp_body)],
     [Neg(f'  "private_key": "{pem("")}\\n"', why="no body: a template"),
      Neg('  "private_key": "${PRIVATE_KEY}"', why="a reference"),
      Neg(f'  "private_key_id": "{rnd(LHEX, 40)}"', why="the key id is not the key")])
case("gcp-service-account",
     [Pos('  "type": "service_account",'), Pos('{"type":"service_account","project_id":"p"}')],
     [Neg('  "type": "authorized_user",', why="another credential type"),
      Neg('type = "service_account"', why="not JSON")])
token("gcp-api-key", ["AI" + "za"], B64URL, 35,
      extra_neg=[Neg("key=AIza" + "SyCUuWyME_r4XylltWNeydEjKSkgXkvpVyU", why="public key shipped in gcloud")])
token("gcp-oauth-client-secret", ["GOC" + "SPX-"], B64URL, 28)
token("gcp-oauth-access-token", ["ya" + "29."], B64URL, 30, 2048)
token("gcp-oauth-refresh-token", ["1/" + "/0"], B64URL, 40, 512)
_fcm = "AAAA" + rnd(B64URL, 7, "fcm") + ":APA" + "91b" + rnd(B64URL, 134, "fcm")
case("firebase-cloud-messaging-key", [Pos(f"FCM_SERVER_KEY={_fcm}", _fcm)],
     [Neg(_fcm[:-1], why="too short"), Neg("BBBB" + _fcm[4:], why="wrong prefix")])

# Azure
_azkey = rnd(B64, 86, "azure") + "=="
case("azure-storage-account-key",
     [Pos(f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={_azkey};EndpointSuffix=core.windows.net",
          _azkey),
      Pos(f"AZURE_STORAGE_KEY={_azkey}", _azkey), Pos(f'"accountKey": "{_azkey}"', _azkey),
      Pos(f"az storage blob list --account-key={_azkey}", _azkey),
      Pos(f"storagekey: {_azkey}", _azkey), Pos(f"storage-key = {_azkey}", _azkey),
      Pos(f"ACCOUNT_KEY={_azkey}", _azkey)],
     [Neg("AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==",
          why="the storage emulator's well-known key"),
      Neg(f"AccountKey={_azkey[1:]}", why="too short"), Neg(f"AccountKey={_azkey[:-2]}", why="no padding"),
      Neg(f"Key={_azkey}", why="no name")])
_sbkey = rnd(B64, 43, "servicebus") + "="
case("azure-shared-access-key",
     [Pos("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;"
          f"SharedAccessKey={_sbkey}", _sbkey)],
     [Neg(f"SharedAccessKey={_sbkey[1:]}", why="too short"), Neg("SharedAccessKey=<key>", why="placeholder"),
      Neg("SharedAccessKeyName=RootManageSharedAccessKey;", why="the key's name")])
_sig = rnd(B64, 43, "sas") + "%3D"
case("azure-sas-token",
     [Pos(f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z"
          f"&spr=https&sig={_sig}", _sig),
      Pos(f"BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2020-08-04&ss=b&sig={_sig}",
          _sig),
      Pos(f"https://a.blob.core.windows.net/c/b.txt?sp=r&st=2024-05-01T10:00:00Z&se=2024-05-02T10:00:00Z"
          f"&skoid={uuid('o')}&sktid={uuid('t')}&skt=2024-05-01T10:00:00Z&ske=2024-05-02T10:00:00Z&sks=b"
          f"&skv=2022-11-02&sv=2022-11-02&sr=b&sig={_sig}", _sig)],
     [Neg(f"https://example.com/x?something=1&sig={_sig}", why="no service version"),
      Neg(f"?sv=2024&ss=b&sig={_sig}", why="not a date"), Neg("?sv=2022-11-02&ss=b&sig=abc", why="too short")])
_entra_alpha = ALNUM + "_~.-"
case("azure-entra-client-secret",
     [Pos(f'client_secret = "{s}"', s) for s in
      (rnd(ALNUM, 3, f"entra{d}") + f"{d}Q~" + rnd(_entra_alpha, 34, f"entra{d}") for d in range(10))],
     [Neg(f'client_secret = "{rnd(ALNUM, 40, "no-marker")}"', why="no Q~ marker"),
      Neg('client_secret = "Abc8Q~tooShort"', why="too short"),
      Neg(f'client_secret = "Ab8Q~{rnd(ALNUM, 34)}"', why="marker in the wrong place")])
_idkey = rnd(ALNUM, 52, "cask") + "JQQ" + "J9" + rnd(ALNUM, 27, "cask")
case("azure-identifiable-key", [Pos(f"AZURE_DEVOPS_EXT_PAT={_idkey}", _idkey)],
     [Neg(_idkey[1:], why="too short"), Neg(_idkey.replace("JQQJ9", "JQQJ8"), why="wrong signature")])
_acr = rnd(B64, 42, "acr") + "+A" + "CR" + rnd(ALNUM, 6, "acr")
case("azure-container-registry-key", [Pos(f"ACR_PASSWORD={_acr}", _acr)],
     [Neg(_acr[1:], why="too short"), Neg(_acr.replace("+ACR", "+ACS"), why="wrong signature")])

# GitHub
token("github-pat", ["gh" + "p_"], ALNUM, 36)
_fgpat = "github" + "_pat_" + rnd(ALNUM, 22, "fg") + "_" + rnd(ALNUM, 59, "fg")
case("github-fine-grained-pat", [Pos(f"GH_TOKEN={_fgpat}", _fgpat), Pos(f"https://x:{_fgpat}@github.com", _fgpat)],
     [Neg(_fgpat[:-1], why="too short"), Neg(_fgpat.replace("_", "-", 3), why="wrong prefix"),
      Neg("github" + "_pat_" + "x" * 82, why="placeholder")])
token("github-oauth-token", ["gh" + "o_"], ALNUM, 36)
_ghs_long = "gh" + "s_" + "123456" + "_" + rnd(ALNUM + "_.-", 400, "ghs-long") + "Z"
token("github-app-token", ["gh" + "u_", "gh" + "s_"], ALNUM, 36, extra_pos=[Pos(f"TOKEN={_ghs_long}", _ghs_long)])
token("github-refresh-token", ["gh" + "r_"], ALNUM, 36, 76)

# GitLab
token("gitlab-pat", ["gl" + "pat-"], B64URL, 20, 64)
token("gitlab-deploy-token", ["gl" + "dt-"], B64URL, 20, 64)
token("gitlab-runner-token", ["gl" + "rt-"], B64URL, 20, 64,
      extra_pos=[Pos("token = GR134" + "8941" + "a1B2c3D4e5F6g7H8i9J0", "GR1348941a1B2c3D4e5F6g7H8i9J0")])
token("gitlab-pipeline-trigger-token", ["gl" + "ptt-"], B64URL, 20, 64)
token("gitlab-ci-job-token", ["gl" + "cbt-"], B64URL, 20, 100)
token("gitlab-oauth-app-secret", ["gl" + "oas-"], B64URL, 40, 80)
token("gitlab-agent-token", ["gl" + "agent-"], B64URL, 40, 80)
token("gitlab-scim-token", ["gl" + "soat-"], B64URL, 20, 64)
token("gitlab-feed-token", ["gl" + "ft-"], B64URL, 20, 64)
token("gitlab-incoming-mail-token", ["gl" + "imt-"], B64URL, 20, 64)
token("gitlab-feature-flags-token", ["gl" + "ffct-"], B64URL, 20, 64)

# Slack
_xoxb = "xo" + "xb-" + rnd(DIGITS, 11, "sb") + "-" + rnd(DIGITS, 13, "sb") + "-" + rnd(ALNUM, 24, "sb")
case("slack-bot-token", [Pos(f"SLACK_BOT_TOKEN={_xoxb}", _xoxb)],
     [Neg(_xoxb[:-1], why="too short"), Neg("xo" + "xb-your-token-here", why="placeholder"),
      Neg("xo" + "xb-" + "1" * 11 + "-" + "2" * 13 + "-" + "x" * 24, why="placeholder")])
_xoxp = ("xo" + "xp-" + rnd(DIGITS, 11, "su") + "-" + rnd(DIGITS, 11, "su") + "-" + rnd(DIGITS, 13, "su") + "-"
         + rnd(LHEX, 32, "su"))
_xoxe_xoxp = "xoxe." + "xo" + "xp-1-" + rnd(ALNUM, 150, "rot")
case("slack-user-token", [Pos(f"SLACK_TOKEN={_xoxp}", _xoxp), Pos(f"token: {_xoxe_xoxp}", _xoxe_xoxp)],
     [Neg("xo" + "xp-123-abc", why="too short"), Neg(_xoxp[:-5], why="too short")])
_xapp = "xa" + "pp-1-" + rnd(UPPER_NUM, 11, "xapp") + "-" + rnd(DIGITS, 13, "xapp") + "-" + rnd(LHEX, 64, "xapp")
case("slack-app-token", [Pos(f"SLACK_APP_TOKEN={_xapp}", _xapp)],
     [Neg(_xapp[:-5], why="too short"), Neg(_xapp.replace("xapp-1-", "xapp-x-"), why="wrong version")])
case("slack-token",
     [Pos(f"token = {t}", t) for t in (
         "xo" + "xa-2-" + rnd(DIGITS, 12, "a") + "-" + rnd(ALNUM, 32, "a"),
         "xo" + "xo-" + rnd(ALNUM, 30, "o"),
         "xo" + "xr-" + rnd(DIGITS, 10, "r") + "-" + rnd(ALNUM, 24, "r"),
         "xo" + "xs-" + rnd(DIGITS, 10, "s") + "-" + rnd(DIGITS, 10, "s") + "-" + rnd(ALNUM, 40, "s"),
         "xo" + "xe-1-" + rnd(ALNUM + "-", 140, "e") + "Q")],
     [Neg("xo" + "xs-short", why="too short"), Neg("xo" + "xz-" + rnd(ALNUM, 30), why="unknown kind"),
      Neg("xo" + "xe-1-" + rnd(ALNUM, 50), why="too short")])
_hook = "T" + rnd(UPPER_NUM, 10, "hook") + "/B" + rnd(UPPER_NUM, 10, "hook") + "/" + rnd(ALNUM, 24, "hook")
case("slack-webhook",
     [Pos(f"SLACK_WEBHOOK=https://hooks.slack.com/services/{_hook}", _hook),
      Pos(f'"url": "https://hooks.slack.com/workflows/T{rnd(UPPER_NUM, 10)}/A{rnd(UPPER_NUM, 10)}/'
          f'{rnd(DIGITS, 18)}/{rnd(ALNUM, 32)}"')],
     [Neg("https://hooks.slack.com/services/T00000000/B00000000/" + "X" * 24, why="Slack's documented example"),
      Neg("https://hooks.slack.com/services/", why="no path"),
      Neg(f"http://hooks.example.com/services/{_hook}", why="another host")])

# Stripe
token("stripe-secret-key", ["sk" + "_live_", "rk" + "_live_"], ALNUM, 20, 247)
token("stripe-test-key", ["sk" + "_test_", "rk" + "_test_"], ALNUM, 20, 247)
token("stripe-publishable-key", ["pk" + "_live_", "pk" + "_test_"], ALNUM, 20, 247)
token("stripe-webhook-secret", ["wh" + "sec_"], B64, 32, 64)

# Twilio
case("twilio-api-key",
     [Pos(f"TWILIO_API_KEY=SK{c}{rnd(LHEX, 31, c)}", f"SK{c}{rnd(LHEX, 31, c)}") for c in LHEX],
     [Neg(f"SK{rnd(LHEX, 31)}", why="too short"), Neg(f"SK{rnd(LHEX, 33)}", why="too long"),
      Neg(f"SK{rnd(LHEX, 32).upper()}", why="upper-case hex"), Neg(f"sk{rnd(LHEX, 32)}", why="lower-case prefix"),
      Neg(f"TASK{rnd(LHEX, 32)}", why="glued to a word")])
_twilio_token = rnd(LHEX, 32, "twilio")
assigned("twilio-auth-token", ["twilio"], _twilio_token, _twilio_token[:31],
         extra_neg=[Neg(f"TWILIO_ACCOUNT_SID=AC{_twilio_token}", why="an account SID")])
_sid = "AC" + rnd(LHEX, 32, "sid")
case("twilio-credentials-url", [Pos(f"https://{_sid}:{_twilio_token}@api.twilio.com/2010-04-01", _twilio_token)],
     [Neg(f"https://{_sid}:{_twilio_token}@api.example.com/", why="another host"),
      Neg(f"https://{_sid}:{_twilio_token[:31]}@api.twilio.com/", why="too short")])

# Package and artifact registries
_npm = "np" + "m_" + rnd(ALNUM, 36, "npm")
token("npm-access-token", ["np" + "m_"], ALNUM, 36)
_npm_auth = b64("ci-user:" + rnd(ALNUM, 20, "npm-auth"))
case("npmrc-auth-token",
     [Pos(f"//registry.npmjs.org/:_authToken={_npm}", _npm),
      Pos(f"RUN echo '//npm.pkg.github.com/:_authToken={_npm}' > .npmrc", _npm),
      Pos(f"//registry.example.com/:_auth={_npm_auth}", _npm_auth),
      Pos(f'//npm.example.com:4873/:_password="{_npm_auth}"', _npm_auth)],
     [Neg("//registry.npmjs.org/:_authToken=${NPM_TOKEN}", why="a reference"),
      Neg('//{registry_path}:_password="{password}"', why="a format string"),
      Neg("//registry.npmjs.org/:_authToken=short", why="too short"),
      Neg("//registry.npmjs.org/:_authToken=<your-token>", why="placeholder")])
case("npmrc-auth",
     [Pos(f"_auth = {_npm_auth}", _npm_auth, "/root/.npmrc"), Pos(f"_authToken={_npm}", _npm, "/app/.npmrc"),
      Pos(f"_password={_npm_auth}", _npm_auth, "/usr/etc/npmrc")],
     [Neg(f"_auth = {_npm_auth}", "/app/settings.py", why="not an npmrc"),
      Neg("  _password = _messages.StringField(1)", "/app/messages.py", why="not an npmrc"),
      Neg("_auth=${NPM_AUTH}", "/root/.npmrc", why="a reference")])
case("yarnrc-npm-auth",
     [Pos(f'npmAuthToken: "{_npm}"', _npm), Pos(f"    npmAuthIdent: {_npm_auth}", _npm_auth)],
     [Neg('npmAuthToken: "${NPM_TOKEN}"', why="a reference"), Neg('npmAuthToken: ""', why="empty")])
token("pypi-upload-token", ["pypi-AgEIcHl" + "waS5vcmc", "pypi-AgENdGV" + "zdC5weXBpLm9yZw"], B64URL, 50, 1000)
_pypi = "pypi-AgEIcHl" + "waS5vcmc" + rnd(B64URL, 150, "pypirc")
_pw = rnd(ALNUM + "!#%&*", 18, "password")
case("pypirc-password",
     [Pos(f"password = {_pw}", _pw, "/root/.pypirc"), Pos(f"password: {_pypi}", _pypi, "/home/u/.pypirc")],
     [Neg(f"password = {_pw}", "/app/setup.cfg", why="not a .pypirc"),
      Neg("password = <your password>", "/root/.pypirc", why="placeholder"),
      Neg("password = ${PYPI_PASSWORD}", "/root/.pypirc", why="a reference")])
token("rubygems-api-key", ["ruby" + "gems_"], LHEX, 48)
token("clojars-token", ["CLO" + "JARS_"], LOWER_NUM, 60)
token("nuget-api-key", ["oy" + "2"], LOWER_NUM, 43)
token("private-packagist-token", ["packagist" + "_ort_", "packagist" + "_out_", "packagist" + "_uut_"], LHEX, 68)
token("jfrog-token", ["AK" + "Cp"], ALNUM, 69,
      extra_pos=[Pos("ARTIFACTORY_TOKEN=cmVmdGtu" + "OjAxOj" + rnd(ALNUM, 64, "jf"),
                     "cmVmdGtu" + "OjAxOj" + rnd(ALNUM, 64, "jf"))])
case("maven-settings-password",
     [Pos(f"      <password>{_pw}</password>", _pw, "/root/.m2/settings.xml"),
      Pos(f"<passphrase>{_pw}</passphrase>", _pw, "/usr/share/maven/conf/settings.xml"),
      Pos("<master>{COQLCE6DU6GtcS5P=}</master>", "{COQLCE6DU6GtcS5P=}", "/root/.m2/settings-security.xml")],
     [Neg(f"<password>{_pw}</password>", "/app/pom.xml", why="not a settings file"),
      Neg("      <password>proxypass</password>", "/etc/maven/settings.xml", why="Maven's stock example"),
      Neg("      <password>repopwd</password>", "/etc/maven/settings.xml", why="Maven's stock example"),
      Neg("<passphrase>optional; leave empty if not used.</passphrase>", "/etc/maven/settings.xml",
          why="Maven's stock example"),
      Neg("<password>${env.MAVEN_PASSWORD}</password>", "/root/.m2/settings.xml", why="a reference")])

# Containers
_docker_auth = b64("deploy:" + rnd(ALNUM, 24, "docker"))
case("docker-config-auth",
     [Pos(f'      "auth": "{_docker_auth}"', _docker_auth, "/root/.docker/config.json"),
      Pos(f'"auth":"{_docker_auth}"', _docker_auth, "/kaniko/.docker/config.json"),
      Pos(f'      "identitytoken": "{rnd(B64URL, 64)}"', None, "/home/ci/.docker/config.json"),
      Pos(f'{{"auths":{{"r.example.com":{{"auth":"{_docker_auth}"}}}}}}', _docker_auth,
          "/run/containers/0/auth.json"),
      Pos(f'"registrytoken": "{rnd(B64URL, 40)}"', None, "/root/.dockercfg")],
     [Neg(f'"auth": "{_docker_auth}"', "/app/package.json", why="not a registry auth file"),
      Neg('"auth": ""', "/root/.docker/config.json", why="empty"),
      Neg('"credsStore": "desktop"', "/root/.docker/config.json", why="a helper, not a credential")])
_dockerconfigjson = b64(json.dumps({"auths": {"r.example.com": {"auth": _docker_auth}}}))
case("kubernetes-docker-config",
     [Pos(f"  .dockerconfigjson: {_dockerconfigjson}", _dockerconfigjson),
      Pos(f'{{"data": {{".dockerconfigjson": "{_dockerconfigjson}"}}}}', _dockerconfigjson),
      Pos(f"  .dockercfg: {b64(json.dumps({'r.example.com': {'auth': _docker_auth}}))}")],
     [Neg("  .dockerconfigjson: {{ .Values.pullSecret }}", why="a template"),
      Neg(f"  .dockerconfigjson: {b64('not json at all')}", why="not JSON")])
token("docker-hub-token", ["dckr" + "_pat_", "dckr" + "_oat_"], B64URL, 27, 40)

# Tokens and keys of any issuer
_jwt_header = b64url(b'{"alg":"RS256","typ":"JWT"}')
_jwt = (_jwt_header + "." + b64url(json.dumps({"sub": rnd(LHEX, 12, "jwt"), "iat": 1700000000}).encode()) + "."
        + rnd(B64URL, 86, "jwt"))
case("jwt", [Pos(f"Authorization: Bearer {_jwt}", _jwt), Pos(f'token: "{_jwt}"', _jwt)],
     [Neg(f"{_jwt_header}.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ."
          "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c", why="jwt.io's example"),
      Neg(f"{_jwt_header}.eyJzdWIi.sig", why="too short"), Neg(_jwt.rsplit(".", 1)[0] + ".", why="no signature"),
      Neg(_jwt.replace(".eyJ", ".abc", 1), why="payload is not JSON")])
_key_body = "MIIEowIBAAKCAQEA" + rnd(B64, 48, "pem")
case("private-key",
     [Pos(pem(kind)) for kind in ("RSA", "", "EC", "DSA", "OPENSSH", "ENCRYPTED")]
     + [Pos("    " + pem("RSA") + "\r"), Pos(f'  "key": "{pem("")}\\n{_key_body}\\n'),
        Pos(f"SSH_KEY={pem('RSA')} {_key_body} -----END RSA PRIVATE KEY-----"),
        Pos(f'KEY = """{pem("RSA")}'), Pos(f'"{pem("RSA")}\\nProc-Type: 4,ENCRYPTED\\nDEK-Info: AES-128-CBC'),
        Pos(f"{pem('RSA')}{_key_body}")],
     [Neg(f'_SK_START = b"{pem("OPENSSH")}"', why="a marker constant"),
      Neg(f'HEADER = "{pem("RSA")}\\n" +', why="a marker constant"),
      Neg(pem("RSA").replace("BEGIN", "END"), why="an END line"), Neg(pem("", "PUBLIC KEY"), why="a public key"),
      Neg(pem("", "CERTIFICATE"), why="a certificate"), Neg(pem("%s"), why="a format string"),
      Neg(pem("PGP", "PRIVATE KEY BLOCK"), why="PGP has its own rule")])
case("pgp-private-key-block",
     [Pos(pem("PGP", "PRIVATE KEY BLOCK")), Pos(f'"{pem("PGP", "PRIVATE KEY BLOCK")}\\n\\nlQdGBF{rnd(B64, 40)}'),
      Pos(f'"{pem("PGP", "PRIVATE KEY BLOCK")}\\nVersion: GnuPG v2\\n\\n')],
     [Neg(pem("PGP", "PUBLIC KEY BLOCK"), why="a public key"),
      Neg(f'MARKER = "{pem("PGP", "PRIVATE KEY BLOCK")}"', why="a marker constant"),
      Neg(f'MARKER = "{pem("PGP", "PRIVATE KEY BLOCK")}\\n"', why="a marker constant")])
_ssh2 = "-" * 4 + " BEGIN SSH2 ENCRYPTED PRIVATE KEY " + "-" * 4
case("ssh2-private-key", [Pos(_ssh2)],
     [Neg(_ssh2.replace("ENCRYPTED PRIVATE", "PUBLIC"), why="a public key"),
      Neg(f'MARKER = "{_ssh2}"', why="a marker constant")])
case("putty-private-key",
     [Pos("PuTTY-User-" + "Key-File-3: ssh-ed25519"), Pos("PuTTY-User-" + "Key-File-2: ssh-rsa\r"),
      Pos('{"ppk": "PuTTY-User-' + 'Key-File-2: ecdsa-sha2-nistp256\\nEncryption: none\\n"}')],
     [Neg('HEADER = "PuTTY-User-' + 'Key-File-2: "', why="a marker constant"),
      Neg("PuTTY-User-" + "Key-File-4: ssh-rsa", why="unknown version")])
case("base64-private-key",
     [Pos(f"    client-key-data: {b64(pem(kind) + chr(10) + _key_body)}")
      for kind in ("RSA", "", "EC", "DSA", "OPENSSH", "ENCRYPTED")]
     + [Pos(f"PGP_KEY={b64(pem('PGP', 'PRIVATE KEY BLOCK') + chr(10))}")],
     [Neg(f"    client-certificate-data: {b64(pem('', 'CERTIFICATE') + chr(10))}", why="a certificate"),
      Neg(f"    key: {b64(pem('', 'PUBLIC KEY') + chr(10))}", why="a public key")])
_age = "AGE-SECRET-" + "KEY-1" + rnd(BECH32_UPPER, 58, "age")
case("age-secret-key", [Pos(f"# secret: {_age}", _age), Pos(_age, _age)],
     [Neg(_age[:-1], why="too short"), Neg(_age.lower(), why="lower case"),
      Neg("AGE-SECRET-" + "KEY-1" + "B" * 58, why="B is not bech32")])
_wg = rnd(B64, 42, "wg") + "Q="
case("wireguard-private-key", [Pos(f"PrivateKey = {_wg}", _wg), Pos(f"privatekey={_wg}", _wg)],
     [Neg(f"PublicKey = {_wg}", why="a public key"), Neg(f"PrivateKey = {_wg[2:]}", why="too short"),
      Neg(f"PrivateKey = {_wg[:-2]}B=", why="not 32 bytes"), Neg("PrivateKey = <private key>", why="placeholder")])

# Credential files
case("netrc-password",
     [Pos(f"machine api.example.com login alice password {_pw}", _pw, "/root/.netrc"),
      Pos(f"  password {_pw}", _pw, "/home/alice/_netrc")],
     [Neg(f"machine api.example.com login alice password {_pw}", "/app/notes.txt", why="not a .netrc"),
      Neg("machine api.example.com login alice", "/root/.netrc", why="no password")])
case("pgpass-password",
     [Pos(f"db.internal:5432:app:app_user:{_pw}", _pw, "/root/.pgpass"),
      Pos(f"*:*:*:postgres:{_pw}", _pw, "/var/lib/postgresql/.pgpass"),
      Pos(f"localhost:5432:*:bob:p\\:ss{_pw}", f"p\\:ss{_pw}", "/home/bob/.pgpass")],
     [Neg("# hostname:port:database:username:password", "/root/.pgpass", why="a comment"),
      Neg("db:5432:app:user", "/root/.pgpass", why="four fields"),
      Neg(f"db.internal:5432:app:app_user:{_pw}", "/app/db.conf", why="not a .pgpass"),
      Neg("host:port:db:user:secret", "/root/.pgpass", why="no port")])
_ghp = "gh" + "p_" + rnd(ALNUM, 36, "gitcred")
case("git-credentials",
     [Pos(f"https://alice:{_ghp}@github.com", _ghp, "/root/.git-credentials"),
      Pos(f"https://oauth2:{_pw}@gitlab.example.com", _pw, "/home/u/.config/git/credentials")],
     [Neg("https://github.com", "/root/.git-credentials", why="no credential"),
      Neg(f"https://alice:{_ghp}@github.com", "/app/urls.txt", why="not a credential store"),
      Neg("https://alice:${TOKEN}@github.com", "/root/.git-credentials", why="a reference")])
case("mysql-config-password",
     [Pos(f"password = {_pw}", _pw, "/root/.my.cnf"), Pos(f'password="{_pw}"', _pw, "/etc/mysql/debian.cnf"),
      Pos(f"password={_pw}", _pw, "/etc/mysql/conf.d/client.cnf")],
     [Neg(f"password = {_pw}", "/app/app.ini", why="not a MySQL option file"),
      Neg(f"#password = {_pw}", "/root/.my.cnf", why="a comment"),
      Neg("password = ", "/root/.my.cnf", why="empty")])
_db_schemes = ["postgres", "postgresql", "mysql", "mariadb", "mongodb", "mongodb+srv", "redis", "rediss", "amqp",
               "amqps", "mssql", "sqlserver"]
case("database-url-password",
     [Pos(f"DATABASE_URL={scheme}://app:{_pw}@db.internal:5432/app", _pw) for scheme in _db_schemes]
     + [Pos(f"REDIS_URL=redis://:{_pw}@cache:6379/0", _pw)],
     [Neg("postgres://user:password@localhost/db", why="placeholder"),
      Neg("postgres://app:${DB_PASSWORD}@db/app", why="a reference"),
      Neg("postgres://db.internal:5432/app", why="no credential"),
      Neg('url = "postgresql://%s:%s@%s/%s" % args', why="a format string"),
      Neg(f"https://app:{_pw}@db.internal/", why="not a database URL")])

# Cloud, hosting, infrastructure
token("alibaba-access-key-id", ["LT" + "AI"], ALNUM, 12, 20,
      extra_neg=[Neg("ALTAI" + rnd(ALNUM, 20), why="glued to a word")])
assigned("alibaba-secret-key", ["alibaba", "aliyun", "alicloud", "access_key_secret", "accesskeysecret"],
         rnd(ALNUM, 30, "ali"), rnd(ALNUM, 29, "ali"))
token("tencent-secret-id", ["AK" + "ID"], ALNUM, 32)
token("digitalocean-token", ["do" + "p_v1_", "do" + "o_v1_", "do" + "r_v1_"], LHEX, 64)
assigned("heroku-api-key", ["heroku"], uuid("heroku"), uuid("heroku")[:-1])
token("heroku-api-key-v2", ["HR" + "KU-AA"], B64URL, 58)
token("hashicorp-vault-token", ["hv" + "s.", "hv" + "b.", "hv" + "r."], B64URL, 24, 512)
_tfc = rnd(ALNUM, 14, "tfc") + ".atlas" + "v1." + rnd(B64URL, 64, "tfc")
case("terraform-cloud-token", [Pos(f'token = "{_tfc}"', _tfc)],
     [Neg(_tfc[1:], why="id too short"), Neg(_tfc[:-5], why="too short")])
token("pulumi-token", ["pu" + "l-"], LHEX, 40)
token("databricks-token", ["da" + "pi"], LHEX, 32)
token("doppler-token", ["dp" + "." + p + "." for p in ("pt", "st", "sa", "ct", "scim", "audit")], ALNUM, 40, 44)
token("planetscale-token", ["pscale" + "_pw_", "pscale" + "_tkn_", "pscale" + "_oauth_"], ALNUM, 32, 64)
token("supabase-token", ["sb" + "p_"], LHEX, 40,
      extra_pos=[Pos("SUPABASE_SECRET=sb" + "_secret_" + rnd(B64URL, 40, "sbs"), "sb_secret_" + rnd(B64URL, 40, "sbs"))])
_tskey = "ts" + "key-auth-" + rnd(ALNUM, 12, "ts") + "-" + rnd(ALNUM, 32, "ts")
case("tailscale-key", [Pos(f"TS_AUTHKEY={_tskey}", _tskey)],
     [Neg("ts" + "key-auth-short", why="too short"), Neg(_tskey.replace("-auth-", "-nope-"), why="unknown kind")])
_origin_ca = "v1" + ".0-" + rnd(LHEX, 24, "cf") + "-" + rnd(LHEX, 146, "cf")
case("cloudflare-origin-ca-key", [Pos(f"CF_ORIGIN_CA_KEY={_origin_ca}", _origin_ca)],
     [Neg(_origin_ca[:-1], why="too short"), Neg("version v1.0-beta", why="a version string")])
assigned("cloudflare-api-token", ["cloudflare", "cf_api"], rnd(B64URL, 40, "cf"), rnd(B64URL, 39, "cf"),
         extra_pos=[Pos(f"CLOUDFLARE_API_KEY={rnd(LHEX, 37, 'cfg')}", rnd(LHEX, 37, "cfg"))])
assigned("fastly-api-token", ["fastly"], rnd(B64URL, 32, "fastly"), rnd(B64URL, 31, "fastly"))
token("netlify-pat", ["nf" + "p_"], ALNUM, 36)
assigned("netlify-token", ["netlify"], rnd(B64URL, 43, "netlify"), rnd(B64URL, 39, "netlify"))
token("render-api-key", ["rn" + "d_"], ALNUM, 32)
token("scalingo-token", ["tk" + "-us-"], B64URL, 48)

# CI/CD, source hosting, developer tools
token("atlassian-api-token", ["ATA" + "TT3"], B64URL, 150, 250)
assigned("atlassian-legacy-token", ["atlassian", "jira", "confluence"], rnd(ALNUM, 24, "atl"), rnd(ALNUM, 23, "atl"))
_okta = "00" + rnd(B64URL, 40, "okta")
case("okta-api-token",
     [Pos(f"OKTA_API_TOKEN={_okta}", _okta), Pos(f"Authorization: SSWS {_okta}", _okta),
      Pos(f"okta_client_token: {_okta}", _okta)],
     [Neg(f"OKTA_API_TOKEN=01{_okta[2:]}", why="not 00"), Neg("Authorization: SSWS ${OKTA_TOKEN}", why="a reference"),
      Neg(f"OKTA_API_TOKEN={_okta[:-1]}", why="too short"), Neg(f"API_TOKEN={_okta}", why="no name")])
token("bitbucket-app-password", ["AT" + "BB"], ALNUM, 32)
assigned("bitbucket-client-secret", ["bitbucket"], rnd(B64URL, 64, "bb"), rnd(B64URL, 63, "bb"))
_cci = "CCIP" + "AT_" + rnd(ALNUM, 22, "cci") + "_" + rnd(LHEX, 40, "cci")
_ccp = "CCIP" + "RJ_" + rnd(ALNUM, 22, "ccp") + "_" + rnd(LHEX, 40, "ccp")
case("circleci-token", [Pos(f"CIRCLE_TOKEN={_cci}", _cci), Pos(f"token: {_ccp}", _ccp)],
     [Neg(_cci[:-1], why="too short"), Neg(_cci.replace("_", "-", 1), why="wrong prefix")])
token("buildkite-token", ["bk" + "ua_"], LHEX, 40)
token("sonarqube-token", ["sq" + "p_", "sq" + "u_", "sq" + "a_"], LHEX, 40)
token("sourcegraph-token", ["sg" + "p_"], LHEX, 40,
      extra_pos=[Pos("SRC_ACCESS_TOKEN=sgp_" + rnd(LHEX, 16, "sg") + "_" + rnd(LHEX, 40, "sg"),
                     "sgp_" + rnd(LHEX, 16, "sg") + "_" + rnd(LHEX, 40, "sg"))])
_harness = "pa" + "t." + rnd(B64URL, 22, "h") + "." + rnd(LHEX, 24, "h") + "." + rnd(ALNUM, 20, "h")
case("harness-pat", [Pos(f"HARNESS_API_KEY={_harness}", _harness)],
     [Neg(_harness[:-1], why="too short"), Neg("path." + _harness[4:], why="wrong prefix")])
token("linear-api-key", ["lin" + "_api_"], ALNUM, 40)
_pmak = "PM" + "AK-" + rnd(LHEX, 24, "pm") + "-" + rnd(LHEX, 34, "pm")
case("postman-api-key", [Pos(f"POSTMAN_API_KEY={_pmak}", _pmak)],
     [Neg(_pmak[:-1], why="too short"), Neg(_pmak.replace("-", "_", 1), why="wrong prefix")])
token("prefect-api-key", ["pn" + "u_"], ALNUM, 36)
token("readme-api-key", ["rd" + "me_"], LOWER_NUM, 70)
token("infracost-api-key", ["ic" + "o-"], ALNUM, 32)
assigned("snyk-token", ["snyk"], uuid("snyk"), uuid("snyk")[:-1])
token("frameio-token", ["fio" + "-u-"], B64URL, 64)
token("typeform-token", ["tf" + "p_"], B64URL, 59)
token("onepassword-service-account-token", ["ops" + "_eyJ"], ALNUM, 100, 4000)

# Observability
assigned("datadog-api-key", ["datadog", "dd_api_key", "dd_app_key", "dd_application_key"], rnd(LHEX, 32, "dd"),
         rnd(LHEX, 31, "dd"), extra_pos=[Pos(f"DD_APP_KEY={rnd(LHEX, 40, 'dda')}", rnd(LHEX, 40, "dda"))])
token("new-relic-user-api-key", ["NR" + "AK-", "NR" + "AA-"], UPPER_NUM, 27)
_nral = rnd(LHEX, 36, "nral") + "NR" + "AL"
case("new-relic-license-key", [Pos(f"NEW_RELIC_LICENSE_KEY={_nral}", _nral)],
     [Neg(_nral[1:], why="too short"), Neg(_nral[:-1] + "X", why="wrong suffix")])
token("new-relic-insights-key", ["NR" + "II-", "NR" + "IQ-"], B64URL, 32)
token("new-relic-browser-key", ["NR" + "JS-"], LHEX, 19)
token("sentry-auth-token", ["sntry" + "u_"], LHEX, 64,
      extra_pos=[Pos("SENTRY_AUTH_TOKEN=sntry" + "s_eyJ" + rnd(B64, 120, "sntrys") + "_" + rnd(B64URL, 43, "s"))])
assigned("sentry-token", ["sentry"], rnd(LHEX, 64, "sentry"), rnd(LHEX, 63, "sentry"))
_dt = "dt0" + "c01." + rnd(UPPER_NUM, 24, "dt") + "." + rnd(UPPER_NUM, 64, "dt")
case("dynatrace-token", [Pos(f"DT_API_TOKEN={_dt}", _dt)],
     [Neg(_dt[:-1], why="too short"), Neg(_dt.lower(), why="lower case")])
token("grafana-cloud-token", ["gl" + "c_"], B64, 32, 400)
_glsa = "gl" + "sa_" + rnd(ALNUM, 32, "glsa") + "_" + rnd(LHEX, 8, "glsa")
case("grafana-service-account-token", [Pos(f"GRAFANA_TOKEN={_glsa}", _glsa)],
     [Neg(_glsa[:-1], why="too short"), Neg(_glsa.replace("_", "-", 1), why="wrong prefix")])
token("grafana-api-key", ["eyJrIj" + "oi"], ALNUM, 60, 100)

# Messaging
_sg = "S" + "G." + rnd(B64URL, 22, "sg") + "." + rnd(B64URL, 43, "sg")
case("sendgrid-api-key", [Pos(f"SENDGRID_API_KEY={_sg}", _sg), Pos(f'"key": "{_sg}"', _sg)],
     [Neg(_sg[:-1], why="too short"), Neg("msg." + _sg[3:], why="glued to a word"),
      Neg("msg.append(value)", why="ordinary code")])
_sib = "xkey" + "sib-" + rnd(LHEX, 64, "sib") + "-" + rnd(ALNUM, 16, "sib")
_smtp = "xsmtp" + "sib-" + rnd(LHEX, 64, "smtp") + "-" + rnd(ALNUM, 16, "smtp")
case("sendinblue-api-key", [Pos(f"BREVO_API_KEY={_sib}", _sib), Pos(f"smtp_key: {_smtp}", _smtp)],
     [Neg(_sib[:-1], why="too short")])
assigned("mailgun-api-key", ["mailgun"], "key-" + rnd(LHEX, 32, "mg"), "key-" + rnd(LHEX, 31, "mg"),
         extra_pos=[Pos(f"MAILGUN_SIGNING_KEY={rnd(LHEX, 32)}-{rnd(LHEX, 8)}-{rnd(LHEX, 8, 'b')}")])
assigned("mailchimp-api-key", ["mailchimp"], rnd(LHEX, 32, "mc") + "-us6", rnd(LHEX, 32, "mc") + "-eu6")
assigned("messagebird-token", ["messagebird", "message_bird", "message-bird"], rnd(ALNUM, 25, "mb"),
         rnd(ALNUM, 24, "mb"))
_discord_bot = "M" + rnd(B64URL, 25, "dbot") + "." + rnd(B64URL, 6, "dbot") + "." + rnd(B64URL, 38, "dbot")
assigned("discord-bot-token", ["discord"], _discord_bot, _discord_bot[:-20])
assigned("discord-client-secret", ["discord"], rnd(B64URL, 32, "dcs"), rnd(B64URL, 31, "dcs"))
_dhook = rnd(DIGITS, 18, "dh") + "/" + rnd(B64URL, 68, "dh")
case("discord-webhook",
     [Pos(f"https://discord.com/api/webhooks/{_dhook}", _dhook.split("/")[1]),
      Pos(f"url: https://ptb.discordapp.com/api/webhooks/{_dhook}", _dhook.split("/")[1])],
     [Neg(f"https://discord.com/api/webhooks/{_dhook[:-20]}", why="too short"),
      Neg(f"https://example.com/api/webhooks/{_dhook}", why="another host")])
_tg = rnd(DIGITS, 10, "tg") + ":A" + "A" + rnd(B64URL, 33, "tg")
case("telegram-bot-token", [Pos(f"TELEGRAM_BOT_TOKEN={_tg}", _tg), Pos(f"https://api.telegram.org/bot{_tg}/x")],
     [Neg(_tg[:-1], why="too short"), Neg(_tg.replace(":AA", ":BB"), why="wrong marker"),
      Neg("00:aa:bb:cc:dd:ee", why="a MAC address")])
_teams = (f"{uuid('t1')}@{uuid('t2')}/IncomingWebhook/{rnd(LHEX, 32, 'teams')}/{uuid('t3')}")
case("teams-webhook", [Pos(f"TEAMS_WEBHOOK=https://contoso.webhook.office.com/webhookb2/{_teams}", _teams)],
     [Neg(f"https://contoso.webhook.office.com/webhookb2/{uuid('t1')}", why="incomplete")])
assigned("intercom-token", ["intercom"], rnd(B64URL, 60, "ic"), rnd(B64URL, 59, "ic"))
_bearer = "A" * 22 + rnd(ALNUM + "%", 90, "tw")
assigned("twitter-bearer-token", ["twitter"], _bearer, "A" * 22 + "abc")
assigned("twitter-api-secret", ["twitter"], rnd(ALNUM, 50, "tws"), rnd(ALNUM, 49, "tws"))
assigned("facebook-app-secret", ["facebook", "fb_app", "fb_client"], rnd(LHEX, 32, "fb"), rnd(LHEX, 31, "fb"))
token("facebook-access-token", ["EAACEd" + "Eose0cBA"], ALNUM, 30, 300)
assigned("linkedin-client-secret", ["linkedin"], rnd(ALNUM, 16, "li"), rnd(ALNUM, 15, "li"))
assigned("twitch-token", ["twitch"], rnd(LOWER_NUM, 30, "tv"), rnd(LOWER_NUM, 29, "tv"))

# Payments and commerce
token("shopify-token", ["shp" + "at_", "shp" + "ca_", "shp" + "pa_", "shp" + "ss_"], LHEX, 32)
token("square-access-token", ["EA" + "AA"], B64URL, 60,
      extra_pos=[Pos("SQUARE_TOKEN=sq0" + "atp-" + rnd(B64URL, 22, "sq"), "sq0atp-" + rnd(B64URL, 22, "sq"))])
token("square-oauth-secret", ["sq0" + "csp-"], B64URL, 43)
case("flutterwave-secret-key",
     [Pos(f"FLW_SECRET_KEY=FLW{'SECK'}-{rnd(LHEX, 32, 'flw')}-X", f"FLWSECK-{rnd(LHEX, 32, 'flw')}-X")],
     [Neg(f"FLWSECK-{rnd(LHEX, 31)}-X", why="too short"), Neg(f"FLWSECK-{rnd(LHEX, 32)}-Y", why="wrong suffix")])
case("flutterwave-test-key",
     [Pos(f"FLW_SECRET_KEY=FLW{'SECK'}_TEST-{rnd(LHEX, 32, 'flt')}-X"),
      Pos(f"FLW_ENCRYPTION_KEY=FLW{'SECK'}_TEST{rnd(LHEX, 12, 'fle')}")],
     [Neg(f"FLWSECK_TEST{rnd(LHEX, 11)}", why="too short")])
case("flutterwave-public-key",
     [Pos(f"FLW_PUBLIC_KEY=FLW{'PUBK'}-{rnd(LHEX, 32, 'flp')}-X"),
      Pos(f"FLW_PUBLIC_KEY=FLW{'PUBK'}_TEST-{rnd(LHEX, 32, 'flp')}-X")],
     [Neg(f"FLWPUBK-{rnd(LHEX, 31)}-X", why="too short")])
assigned("gocardless-token", ["gocardless"], "live_" + rnd(B64URL, 40, "gc"), "live_" + rnd(B64URL, 39, "gc"))
token("shippo-live-token", ["shippo" + "_live_"], LHEX, 40)
token("shippo-test-token", ["shippo" + "_test_"], LHEX, 40)
token("duffel-live-token", ["duffel" + "_live_"], B64URL, 43)
token("duffel-test-token", ["duffel" + "_test_"], B64URL, 43)
token("easypost-api-key", ["EZ" + "AK"], ALNUM, 54)
token("easypost-test-key", ["EZ" + "TK"], ALNUM, 54)
token("lob-api-key", ["li" + "ve_"], LHEX, 35)
token("lob-publishable-key", ["live" + "_pub_"], LHEX, 31)
assigned("finicity-secret", ["finicity"], rnd(ALNUM, 20, "fin"), rnd(ALNUM, 19, "fin"),
         extra_pos=[Pos(f"FINICITY_API_TOKEN={rnd(LHEX, 32, 'fit')}", rnd(LHEX, 32, "fit"))])
_cloudinary_secret = rnd(B64URL, 27, "cld")
case("cloudinary-url",
     [Pos(f"CLOUDINARY_URL=cloudinary://{rnd(DIGITS, 15)}:{_cloudinary_secret}@my-cloud", _cloudinary_secret)],
     [Neg("CLOUDINARY_URL=cloudinary://<api_key>:<api_secret>@my-cloud", why="placeholder"),
      Neg(f"cloudinary://{rnd(DIGITS, 15)}:short@my-cloud", why="too short")])

# AI
_openai = "sk-" + rnd(ALNUM, 20, "oai") + "T3Blbk" + "FJ" + rnd(ALNUM, 20, "oai")
case("openai-api-key", [Pos(f"OPENAI_API_KEY={_openai}", _openai)],
     [Neg(_openai[:-1], why="too short"), Neg(_openai.replace("T3BlbkFJ", "T3BlbkFK"), why="no OpenAI marker"),
      Neg("sk-" + "x" * 20 + "T3Blbk" + "FJ" + "x" * 20, why="placeholder")])
token("openai-project-key", ["sk-" + "proj-", "sk-" + "svcacct-", "sk-" + "admin-"], B64URL, 40, 300)
_anthropic = "sk-" + "ant-api03-" + rnd(B64URL, 93, "ant") + "AA"
case("anthropic-api-key", [Pos(f"ANTHROPIC_API_KEY={_anthropic}", _anthropic),
                           Pos(f"key: sk-ant-admin01-{rnd(B64URL, 93, 'adm')}AA")],
     [Neg(_anthropic[:60], why="too short"), Neg("sk-" + "ant-api03-" + "x" * 95, why="placeholder")])
token("huggingface-token", ["h" + "f_"], ALNUM, 34, 40,
      extra_pos=[Pos("HF_ORG_TOKEN=api" + "_org_" + rnd(ALNUM, 34, "hfo"), "api_org_" + rnd(ALNUM, 34, "hfo"))])
token("replicate-token", ["r" + "8_"], ALNUM, 37)
token("groq-api-key", ["gs" + "k_"], ALNUM, 52)
token("perplexity-api-key", ["pp" + "lx-"], ALNUM, 48)
token("notion-token", ["nt" + "n_"], ALNUM, 40, 50)

# SaaS
assigned("algolia-api-key", ["algolia"], rnd(LHEX, 32, "alg"), rnd(LHEX, 31, "alg"))
assigned("asana-token", ["asana"], "1/" + rnd(DIGITS, 16, "as") + ":" + rnd(ALNUM, 32, "as"), "1/abc",
         extra_pos=[Pos(f"ASANA_CLIENT_SECRET={rnd(ALNUM, 32, 'acs')}", rnd(ALNUM, 32, "acs"))])
assigned("beamer-api-token", ["beamer"], "b_" + rnd(B64URL, 44, "beam"), "b_" + rnd(B64URL, 43, "beam"))
assigned("contentful-token", ["contentful"], rnd(B64URL, 43, "cf"), rnd(B64URL, 42, "cf"))
token("contentful-pat", ["CF" + "PAT-"], B64URL, 43)
assigned("dropbox-access-token", ["dropbox"], "sl." + rnd(B64URL, 140, "dbx"), "sl." + rnd(B64URL, 40, "dbx"),
         extra_pos=[Pos(f"DROPBOX_TOKEN={rnd(ALNUM, 11, 'll')}AAAAAAAAAA{rnd(B64URL, 43, 'll')}")])
assigned("dropbox-app-secret", ["dropbox"], rnd(LOWER_NUM, 15, "dbs"), rnd(LOWER_NUM, 14, "dbs"))
_hs = "pa" + "t-na1-" + uuid("hs")
case("hubspot-private-app-token", [Pos(f"HUBSPOT_TOKEN={_hs}", _hs), Pos(f"token: pat-eu1-{uuid('hse')}")],
     [Neg(_hs[:-1], why="too short"), Neg(_hs.replace("na1", "xx1"), why="unknown region")])
assigned("hubspot-api-key", ["hubspot", "hapikey"], uuid("hsk"), uuid("hsk")[:-1])
assigned("ionic-token", ["ionic"], "ion_" + rnd(ALNUM, 42, "ion"), "ion_" + rnd(ALNUM, 41, "ion"))
token("adobe-client-secret", ["p8" + "e-"], ALNUM, 32)
assigned("adobe-client-id", ["adobe"], rnd(LHEX, 32, "adobe"), rnd(LHEX, 31, "adobe"))
_mapbox = "sk." + "eyJ1Ijoi" + rnd(B64URL, 60, "mb") + "." + rnd(B64URL, 22, "mb")
case("mapbox-secret-token", [Pos(f"MAPBOX_TOKEN={_mapbox}", _mapbox)],
     [Neg(_mapbox[:-3], why="too short"), Neg("pk." + _mapbox[3:], why="a public token")])

# Anchore Engine's defaults, matched from the start of each line
_anchore_id = "AK" + "IA" + rnd(UPPER_NUM, 16, "anchore")
case("AWS_ACCESS_KEY",
     [Pos(f"aws_access_key_id = {_anchore_id}"), Pos(f"AWS_ACCESS_KEY_ID={_anchore_id}"),
      Pos(f"export AWS_ACCESS_KEY_ID=={_anchore_id}  # deploy")],
     [Neg("aws_access_key_id = SHORT1234", why="too short"), Neg(f"key = {_anchore_id}", why="no name"),
      Neg(f"aws_access_key_id: {_anchore_id}", why="Anchore wants '='")])
case("AWS_SECRET_KEY",
     [Pos(f"aws_secret_access_key = {_aws_secret}"), Pos(f"  AWS_SECRET_ACCESS_KEY= {_aws_secret}")],
     [Neg(f"aws_secret_access_key = {_aws_secret[:39]}", why="too short"),
      # Anchore's look-behind refuses "=" (a base-64 character) right before the secret
      Neg(f"AWS_SECRET_ACCESS_KEY={_aws_secret}", why="Anchore Engine's own behaviour"),
      Neg(f"secret = {_aws_secret}", why="no name")])
case("PRIV_KEY", [Pos(pem("RSA")), Pos(pem("OPENSSH")), Pos(pem("")), Pos("---BEGIN RSA PRIVATE KEY---")],
     [Neg("    " + pem("RSA"), why="Anchore matches from the line start"),
      Neg(pem("", "PUBLIC KEY"), why="a public key")])
case("DOCKER_AUTH", [Pos(f'        "auth": "{_docker_auth}"'), Pos(f'{{"auths":{{"r":{{"auth":"{_docker_auth}"}}}}}}')],
     [Neg('        "auth": ""', why="empty"), Neg('"authorization": "Bearer x"', why="another key")])
case("API_KEY",
     [Pos(f"api_key = {rnd(UPPER_NUM, 32, 'apikey')}"), Pos(f"X-API-KEY={rnd(UPPER_NUM, 40, 'apikey')}"),
      Pos(f"my_api_key == {rnd(ALNUM, 24, 'apikey')}")],
     [Neg("api_key = SHORT", why="too short"), Neg(f"apikey = {rnd(UPPER_NUM, 32)}", why="no separator"),
      Neg(f"api-key: {rnd(UPPER_NUM, 32)}", why="Anchore wants '='")])


ALL_RULES = RULES + ANCHORE_RULES
BY_ID = {r.id: r for r in ALL_RULES}
POSITIVES = [(rid, i, p) for rid, c in CASES.items() for i, p in enumerate(c.pos)]
NEGATIVES = [(rid, i, n) for rid, c in CASES.items() for i, n in enumerate(c.neg)]


# --- the rule set's shape -------------------------------------------------------------------

def test_every_rule_has_positive_and_negative_cases():
    assert set(CASES) == set(BY_ID), (set(BY_ID) - set(CASES), set(CASES) - set(BY_ID))
    for rule_id, c in CASES.items():
        assert c.pos and c.neg, rule_id


def test_rule_set_is_at_least_as_broad_as_trivys():
    assert len(RULES) >= 100
    categories = {r.category for r in RULES}
    # Trivy's built-in categories (pkg/fanal/secret/builtin-rules.go), by our names
    trivy = {"AWS", "GitHub", "GitLab", "PrivateKey", "Shopify", "Slack", "Google", "Stripe", "PyPI", "Heroku",
             "Twilio", "Age", "Facebook", "Twitter", "Adobe", "Alibaba", "Asana", "Atlassian", "Bitbucket",
             "Beamer", "Clojars", "Contentful", "Databricks", "Discord", "Doppler", "Dropbox", "Duffel",
             "Dynatrace", "EasyPost", "Fastly", "Finicity", "Flutterwave", "Frame.io", "GoCardless", "Grafana",
             "HashiCorp", "HubSpot", "Intercom", "Ionic", "JWT", "Linear", "Lob", "Mailchimp", "Mailgun", "Mapbox",
             "MessageBird", "NewRelic", "npm", "PlanetScale", "Private Packagist", "Postman", "Pulumi", "RubyGems",
             "SendGrid", "Sendinblue", "Shippo", "LinkedIn", "Twitch", "Typeform", "Docker", "HuggingFace",
             "Azure", "OpenAI"}
    assert trivy <= categories, trivy - categories


def test_ids_severities_categories():
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids))
    for rule in RULES:
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", rule.id), rule.id
        assert not rule.anchore and rule.category != "Anchore"
    for rule in ALL_RULES:
        assert rule.severity in ("CRITICAL", "HIGH", "MEDIUM", "LOW")
        assert rule.category and rule.title
    assert [r.id for r in ANCHORE_RULES] == ["AWS_ACCESS_KEY", "AWS_SECRET_KEY", "PRIV_KEY", "DOCKER_AUTH", "API_KEY"]


def test_severity_policy():
    sev = {r.id: r.severity for r in RULES}
    for rule_id in ("aws-access-key-id", "aws-secret-access-key", "gcp-service-account-key",
                    "azure-storage-account-key", "github-pat", "stripe-secret-key"):
        assert sev[rule_id] == "CRITICAL", rule_id
    for rule in RULES:
        if rule.category == "PrivateKey":
            assert rule.severity in ("CRITICAL", "HIGH"), rule.id
    for rule_id in ("stripe-test-key", "stripe-publishable-key", "shippo-test-token", "duffel-test-token",
                    "easypost-test-key", "flutterwave-test-key"):
        assert sev[rule_id] == "LOW", rule_id
    assert sev["jwt"] == "MEDIUM"


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.id)
def test_patterns_compile_as_bytes(rule):
    regex = re.compile(rule.regex.encode())
    for allow in rule.allow:
        re.compile(allow.encode())
    for path in rule.paths:
        re.compile(path)
    assert regex.groupindex.keys() <= {"secret"}


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.id)
def test_keywords_are_usable_literals(rule):
    for keyword in rule.keywords:
        assert keyword == keyword.lower() and keyword.isascii() and len(keyword) >= 3, keyword
    assert len(set(rule.keywords)) == len(rule.keywords)
    if not rule.keywords:
        # no keyword: the regex is its own (Hyperscan) prefilter over every byte of every
        # layer; Anchore's whole-line rules must not be (test below for the others)
        assert not rule.anchore, rule.id


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.keywords], ids=lambda r: r.id)
def test_keywords_cover_every_match(rule):
    """Proof from the parsed regex: every match contains a string of some required set whose
    strings each contain a keyword, so the prefilter never drops a line the regex matches."""
    sets = rules_module._required_sets(rule.regex)
    assert any(all(any(k in s for k in rule.keywords) for s in required) for required in sets), (rule.keywords, sets)


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.keywords], ids=lambda r: r.id)
def test_every_keyword_is_exercised(rule):
    """Each keyword shows up in the matched text of some positive: none is dead or mistyped."""
    matched = [match_text(rule, p.line) for p in CASES[rule.id].pos]
    for keyword in rule.keywords:
        assert any(keyword in m for m in matched), keyword


#: How far before a keyword hit the scanner's regex search starts (scanner.py REGION_BEFORE):
#: the start of a match must be within reach of one of its keywords.
REGION_BEFORE = 256


@pytest.mark.parametrize("rule", [r for r in RULES if r.keywords], ids=lambda r: r.id)
def test_keywords_sit_near_the_start_of_the_match(rule):
    for pos in CASES[rule.id].pos:
        line = pos.line.encode()
        m = _compiled(rule).search(line)
        ends = [i + len(k) for k in rule.keywords for i in range(len(line))
                if line.lower().startswith(k.encode(), i)]
        assert any(m.start() <= end <= m.start() + REGION_BEFORE for end in ends), pos.line


def test_rule_rejects_unusable_keywords_and_severities():
    with pytest.raises(ValueError, match="x-rule"):
        Rule(id="x-rule", category="X", title="x", severity="HIGH", regex="abc", keywords=("ABC",))
    with pytest.raises(ValueError, match="x-rule"):
        Rule(id="x-rule", category="X", title="x", severity="HIGH", regex="ab", keywords=("ab",))
    with pytest.raises(ValueError, match="severity"):
        Rule(id="x-rule", category="X", title="x", severity="SEVERE", regex="abc", keywords=("abc",))


# --- behaviour on lines ---------------------------------------------------------------------

@pytest.mark.parametrize("rule_id,index,pos", POSITIVES, ids=lambda v: v if isinstance(v, (str, int)) else "")
def test_positive(rule_id, index, pos):
    rule = BY_ID[rule_id]
    secret = find(rule, pos.line, pos.path)
    assert secret is not None, pos.line
    if pos.secret is not None:
        assert secret == pos.secret.encode()
    keyword_line = pos.line.lower()
    assert not rule.keywords or any(k in keyword_line for k in rule.keywords)


@pytest.mark.parametrize("rule_id,index,neg", NEGATIVES, ids=lambda v: v if isinstance(v, (str, int)) else "")
def test_negative(rule_id, index, neg):
    assert find(BY_ID[rule_id], neg.line, neg.path) is None, (neg.why, neg.line)


def test_redaction_keeps_a_meaningful_prefix():
    """Findings keep their first 4 characters: make those the token's kind, not a quote.
    (Anchore's rules report what Anchore reports: the line from its start.)"""
    for rule_id, _, pos in POSITIVES:
        if BY_ID[rule_id].anchore:
            continue
        secret = find(BY_ID[rule_id], pos.line, pos.path)
        assert secret[:1] not in (b'"', b"'", b" ", b"="), (rule_id, secret[:8])


# --- linear time ----------------------------------------------------------------------------

LINE = 8192
FILLERS = ["A", "a", "0", "aA0-_/+=.", "-", " ", "=", ":", "\\n", "/"]


def adversarial_lines(rule: Rule) -> list[bytes]:
    lines = []
    for keyword in rule.keywords or ("x",):
        for fill in FILLERS:
            lines += [keyword + fill * LINE, (keyword + fill * 3) * LINE, keyword + " = " + fill * LINE,
                      fill * LINE + keyword]
        lines.append((keyword + " = ") * LINE)
    for pos in CASES[rule.id].pos:
        lines += [pos.line * (LINE // max(len(pos.line), 1) + 1), pos.line + pos.line[-1] * LINE,
                  pos.line[: len(pos.line) * 2 // 3] * (LINE // max(len(pos.line), 1) * 2)]
    return [line[:LINE].encode() for line in lines]


def slowest(rule: Rule, lines: list[bytes]) -> float:
    regex = _compiled(rule)
    run = regex.match if rule.anchore else regex.search
    worst = 0.0
    for line in lines:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            run(line)
            best = min(best, time.perf_counter() - started)
        worst = max(worst, best)
    return worst


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.id)
def test_linear_time_on_adversarial_lines(rule):
    assert slowest(rule, adversarial_lines(rule)) < 0.010


@pytest.mark.parametrize("rule", ANCHORE_RULES, ids=lambda r: r.id)
def test_anchore_rules_on_long_ordinary_lines(rule):
    # Anchore's own regexes (kept verbatim) backtrack quadratically on crafted lines such as
    # "api-key" followed by 8000 "=": that is Anchore Engine's behaviour too. On long ordinary
    # lines, with or without the keyword, they stay fast.
    minified = ("var a=function(b){return b+1};" * 300)[:LINE]
    lines = [minified.encode(), (rule.keywords[0] + " " + minified).encode()[:LINE],
             (minified + " " + rule.keywords[0]).encode()[-LINE:]]
    assert slowest(rule, lines) < 0.010


@pytest.mark.parametrize("rule", [r for r in ANCHORE_RULES if r.regex in rules_module.ANCHORE_LINEAR_FORMS],
                         ids=lambda r: r.id)
def test_anchore_linear_forms_match_what_anchores_regexes_match(rule):
    """The scanner runs a linear equivalent of three of Anchore's regexes: the same lines
    match, with the same span, on the rule's cases and on lines made of its own pieces."""
    anchore, linear = _compiled(rule), re.compile(rules_module.engine_regex(rule).encode())
    assert linear.pattern != anchore.pattern
    keyword = rule.keywords[0]
    pieces = [keyword, keyword.upper(), " ", "=", "==", "A" * 20, "a" * 19, "B" * 40, "Q" * 60, "/", "+",
              "0" * 21, "x", "\r", "-", "_"]
    generator = random.Random(rule.id)
    lines = [c.line for c in CASES[rule.id].pos + CASES[rule.id].neg]
    def some_pieces(most: int) -> str:
        return "".join(generator.choice(pieces) for _ in range(generator.randint(0, most)))

    lines += [some_pieces(3) + generator.choice(pieces[:2]) + some_pieces(6) for _ in range(20_000)]
    matched = 0
    for line in lines:
        expected, got = anchore.match(line.encode()), linear.match(line.encode())
        assert (expected and expected.span()) == (got and got.span()), line
        matched += expected is not None
    assert matched > 20  # the comparison saw matching lines, not only misses


@pytest.mark.parametrize("rule", ANCHORE_RULES, ids=lambda r: r.id)
def test_anchore_rules_as_the_scanner_runs_them_on_crafted_lines(rule):
    # "api-key" followed by 8000 "=" (quadratic for Anchore's own regex), as a ratio
    regex = re.compile(rules_module.engine_regex(rule).encode())
    keyword = rule.keywords[0].encode()
    times = []
    for size in (LINE // 8, LINE):
        line = keyword + b"=" * size
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter()
            regex.match(line)
            best = min(best, time.perf_counter() - started)
        times.append(best)
    assert times[1] / times[0] < 8 * 4, times


# --- Hyperscan ------------------------------------------------------------------------------

def test_keywords_compile_into_one_hyperscan_database():
    hyperscan = pytest.importorskip("hyperscan")
    keywords = sorted({k for r in ALL_RULES for k in r.keywords})
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[k.encode() for k in keywords], ids=list(range(len(keywords))),
               elements=len(keywords), flags=hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH,
               literal=True)
    # every positive line is selected by one of its rule's keywords, whatever its case
    for rule_id, _, pos in POSITIVES:
        rule = BY_ID[rule_id]
        if not rule.keywords:
            continue
        hits: set[str] = set()
        db.scan(pos.line.encode(), match_event_handler=lambda i, start, end, flags, ctx: hits.add(keywords[i]))
        assert hits & set(rule.keywords), (rule_id, pos.line)


@pytest.mark.parametrize("rule", [r for r in RULES if not r.keywords], ids=lambda r: r.id)
def test_keywordless_rules_work_as_their_own_hyperscan_prefilter(rule):
    """A rule without keywords is its own prefilter: Hyperscan, in prefilter mode, over a
    whole stream of files, where ^ and $ would mean the stream's start and end."""
    hyperscan = pytest.importorskip("hyperscan")
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[rule.regex.encode()], ids=[0], elements=1,
               flags=hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_ALLOWEMPTY)
    for pos in CASES[rule.id].pos:
        stream = b"# a file before\nalpha:beta\n" + pos.line.encode() + b"\r\nnext line\n"
        ends: list[int] = []
        db.scan(stream, match_event_handler=lambda i, start, end, flags, ctx: ends.append(end))
        line_start = stream.index(pos.line.encode())
        assert any(line_start < end <= line_start + len(pos.line) + 1 for end in ends), pos.line
        assert find(rule, pos.line + "\r", pos.path) == (pos.secret or "").encode() or pos.secret is None


# --- Anchore --------------------------------------------------------------------------------

ANCHORE_ENGINE_DEFAULTS = [
    r"AWS_ACCESS_KEY=(?i).*aws_access_key_id( *=+ *).*(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9]).*",
    r"AWS_SECRET_KEY=(?i).*aws_secret_access_key( *=+ *).*(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=]).*",
    r"PRIV_KEY=(?i)-+BEGIN(.*)PRIVATE KEY-+",
    r'DOCKER_AUTH=(?i).*"auth": *".+"',
    r"API_KEY=(?i).*api(-|_)key( *=+ *).*(?<![A-Z0-9])[A-Z0-9]{20,60}(?![A-Z0-9]).*",
]


def test_anchore_rules_are_anchore_engines_defaults():
    assert [f"{r.id}={r.regex}" for r in ANCHORE_RULES] == ANCHORE_ENGINE_DEFAULTS
    for rule in ANCHORE_RULES:
        assert rule.anchore and rule.category == "Anchore" and not rule.paths and not rule.allow
    assert ANCHORE_RULES[3].keywords == ('"auth"',)
    assert set(ANCHORE_RULES[4].keywords) == {"api-key", "api_key"}


@pytest.mark.parametrize("entry", ANCHORE_ENGINE_DEFAULTS)
def test_anchore_rule_parses_the_defaults_into_the_defaults(entry):
    assert anchore_rule(entry) in ANCHORE_RULES
    renamed = anchore_rule("MY_" + entry)
    default = next(r for r in ANCHORE_RULES if r.regex == renamed.regex)
    assert renamed.id.startswith("MY_") and renamed.keywords == default.keywords and renamed.anchore


def test_anchore_rule_derives_keywords_from_a_users_regex():
    rule = anchore_rule(r"GH_TOKEN=(?i).*github_token *= *ghp_[a-z0-9]{36}")
    assert rule.id == "GH_TOKEN" and rule.category == "Anchore" and rule.anchore
    assert rule.keywords == ("github_token",)
    assert find(rule, "GITHUB_TOKEN = ghp_" + rnd(LOWER_NUM, 36)) is not None
    assert find(rule, "  x github_token=ghp_" + rnd(LOWER_NUM, 36)) is not None
    assert anchore_rule(r"SEP=.*secret(-|_)key *= *\S+").keywords == ("secret-key", "secret_key")
    # nothing literal to hold on to: the scanner must run the regex on every line
    hex_rule = anchore_rule(r"HEX64=.*[0-9a-f]{64}")
    assert hex_rule.keywords == ()
    assert find(hex_rule, "x = " + rnd(LHEX, 64)) is not None
    assert anchore_rule("SHORT=.*ab[0-9]+", severity="LOW").severity == "LOW"


@pytest.mark.parametrize("entry", ["no equals sign", "=(?i).*secret", "EMPTY=", "BAD=(unclosed", "U=(?u)abc"])
def test_anchore_rule_refuses_bad_entries(entry):
    with pytest.raises(ValueError) as info:
        anchore_rule(entry)
    assert repr(entry) in str(info.value)


@pytest.mark.parametrize("regex,expected", [
    (r"ghp_[A-Za-z0-9]{36}", ("ghp_",)),
    (r"SK[0-9a-f]{32}", tuple(f"sk{c}" for c in "0123456789abcdef")),
    (r"(?i)(?:postgres(?:ql)?|mysql)://", ("mysql://", "postgres://", "postgresql://")),
    (r"(?i)-+BEGIN(.*)PRIVATE KEY-+", ("private key-",)),
    (r"[0-9a-f]{32}", ()),
    (r"ab|cd", ()),
    (r"(?:abc)?def", ("def",)),
    (r"(?:abcd|efgh)[0-9]+xyz", ("abcd", "efgh")),
    ("caf\u00e9_token", ("_token",)),  # a non-ASCII byte is no keyword material
])
def test_derive_keywords(regex, expected):
    assert derive_keywords(regex) == expected


@pytest.mark.parametrize("rule", ANCHORE_RULES, ids=lambda r: r.id)
def test_anchore_keywords_are_implied_by_derivation(rule):
    derived = derive_keywords(rule.regex)
    assert derived and all(any(k in d for k in rule.keywords) for d in derived), derived


# --- allowed paths --------------------------------------------------------------------------

@pytest.mark.parametrize("path", [
    "/usr/lib/python3/dist-packages/jwt-2.6.0.dist-info/METADATA",
    "/usr/local/lib/python3.11/site-packages/pyjwt-2.8.0.egg-info/PKG-INFO",
    "/usr/share/doc/libxmlsec1-dev/examples/rsakey.pem",
    "/usr/share/man/man1/openssl-genrsa.1ssl.gz",
    "/usr/lib/python3.11/test/certdata/keycert.pem",
    "/usr/local/lib/python3.12/test/keycert.pem",
    "/usr/lib/python3.11/idlelib/idle_test/test_config.py",
    "/app/node_modules/jsonwebtoken/test/keys/priv.pem",
    "/app/node_modules/@aws-sdk/client-s3/docs/README.txt",
    "/go/pkg/mod/golang.org/x/crypto@v0.1.0/ssh/testdata/keys.go",
    "/usr/local/go/src/crypto/tls/handshake_test.go",
    "/usr/lib/go-1.19/src/crypto/x509/x509.go",
    "/usr/share/go-1.19/src/crypto/tls/testdata/example-key.pem",
    "/srv/app/vendor/github.com/x/y/testdata/key.pem",
    "/srv/app/tests/fixtures/credentials.json",
    "/srv/app/spec/fixtures/id_rsa",
    "/srv/app/README.md",
    "/srv/app/docs/setup.rst",
    "/srv/app/examples/aws.env",
    "/srv/app/config/settings.example",
    "/srv/app/.env.sample",
    "/var/www/html/wp-config-sample.php",
    "/etc/app/example.conf",
    "/srv/app/src/auth_test.go",
    "/srv/app/src/auth.test.js",
    "/srv/app/tests/test_auth.py",
    "/usr/lib/python3/dist-packages/urllib3/dummyserver/certs/server.key",
    "/opt/yarn-v1.22.19/lib/cli.js",
    "/usr/lib/python3/dist-packages/requests/__pycache__/auth.cpython-311.pyc",
])
def test_default_allowed_paths(path):
    assert any(re.search(p, path) for p in DEFAULT_ALLOWED_PATHS), path


@pytest.mark.parametrize("path", [
    "/root/.aws/credentials", "/root/.docker/config.json", "/home/app/.npmrc", "/root/.ssh/id_rsa",
    "/etc/ssl/private/ssl-cert-snakeoil.key", "/etc/wireguard/wg0.conf", "/app/.env", "/app/config/settings.py",
    "/srv/app/src/contest.py", "/srv/app/latest/config.yaml", "/usr/lib/python3/dist-packages/app/settings.py",
    "/root/go/src/github.com/acme/app/main.go", "/srv/app/src/examplecorp_client.py",
    "/go/src/github.com/acme/app/config.go", "/usr/share/acme/credentials.json", "/var/lib/jenkins/credentials.xml",
])
def test_default_allowed_paths_leave_secrets_visible(path):
    assert not any(re.search(p, path) for p in DEFAULT_ALLOWED_PATHS), path


# --- the module's surface -------------------------------------------------------------------

def test_exports():
    public = {name for name in vars(rules_module) if not name.startswith("_")}
    assert set(rules_module.__all__) == {"ANCHORE_LINEAR_FORMS", "ANCHORE_RULES", "DEFAULT_ALLOWED_PATHS", "RULES",
                                         "Rule", "anchore_rule", "derive_keywords", "engine_regex"}
    assert set(rules_module.__all__) <= public


@pytest.mark.parametrize("name", ["__init__.py", "rules.py"])
def test_rules_import_only_the_stdlib_and_no_io(name):
    forbidden = {"os", "io", "asyncio", "sqlite3", "socket", "aiohttp", "aiofiles", "aiosqlite", "uvloop"}
    for path in [pathlib.Path(rules_module.__file__).parent / name]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names and top not in forbidden, f"{path.name} imports {name}"


def test_sweep_tool_on_a_made_up_root(tmp_path):
    """tools/secret_sweep.py (the clean-system check) on a small root: it reports by image
    path, honours DEFAULT_ALLOWED_PATHS and rule paths, and fails on HIGH/CRITICAL."""
    import subprocess

    root = tmp_path / "rootfs"
    (root / "root/.aws").mkdir(parents=True)
    (root / "root/.aws/credentials").write_text(f"[default]\naws_access_key_id = {_akid}\n")
    (root / "usr/share/doc/pkg").mkdir(parents=True)
    (root / "usr/share/doc/pkg/README").write_text(f"aws_access_key_id = {_akid}\n")
    (root / "root/.pgpass").write_text(f"db:5432:app:app:{_pw}\n")
    (root / "etc").mkdir()
    (root / "etc/binary").write_bytes(b"\0" + _akid.encode())
    tool = pathlib.Path(__file__).resolve().parents[2] / "tools" / "secret_sweep.py"
    done = subprocess.run([sys.executable, str(tool), "--root", str(root), str(root)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"aws-access-key-id                {'/root/.aws/credentials'}:2  AKIA*****" in done.stdout
    assert "/root/.pgpass:1" in done.stdout and "pgpass-password" in done.stdout
    assert "/usr/share/doc" not in done.stdout.split("\n\n")[0] and "/etc/binary" not in done.stdout
