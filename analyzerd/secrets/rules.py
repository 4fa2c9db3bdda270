"""The built-in secret rules: data that the secret scanner compiles, not code that it runs.

How the scanner applies a rule (so write rules for exactly this):

1. **Keyword prefilter.** Every layer's bytes pass through one Hyperscan database of all
   rules' ``keywords``, matched case-insensitively (``HS_FLAG_CASELESS``). A keyword hit
   inside a file selects the LINE that contains it: the bytes between line terminators,
   at most 4096 bytes either side of the hit, without the terminator.
2. **Regex.** The rules owning that keyword run their compiled ``regex.encode()`` on the
   line: ``regex.search(line)``, or ``regex.match(line)`` for ``anchore=True`` rules
   (Anchore Engine matches each line from its start). One finding per rule and line.
3. **Secret.** The value is the named group ``secret`` when the regex has one, else the
   whole match. A value that any ``allow`` regex finds (``re.search`` on the bytes) is a
   placeholder or a documented example and is not reported. Reported values are redacted
   to their first 4 characters followed by ``*****``.
4. **Paths.** A rule with ``paths`` applies only to files whose absolute path one of
   them finds (``re.search``); no rule reports in files that ``DEFAULT_ALLOWED_PATHS``
   finds (documentation, tests, examples, toolchains' own sources).

Rules for writing a rule, each checked by tests/unit/test_secret_rules.py:

- Every line the regex can match contains one of the rule's keywords. A keyword is a
  literal part of the pattern (``ghp_`` in ``ghp_[A-Za-z0-9]{36}``), lowercase ASCII, at
  least 3 characters, and as rare in ordinary files as the pattern allows: every hit
  costs the scanner a line extraction and a regex call. The test proves keyword safety
  from the parsed pattern with the same analysis ``derive_keywords`` uses.
- A keyword sits near the start of what the regex matches (within 256 bytes): the scanner
  searches a region around each hit, from 256 bytes before it to 1024 after, not the
  whole line (lines can be megabytes of minified code).
- A rule with ``paths`` is checked by path before its keyword hits are looked at, so its
  keywords may be ordinary words (``password`` in a .netrc, ``://`` in .git-credentials):
  out of those files they cost a path lookup per hit, not a regex.
- ``keywords=()`` means "no literal is required": the regex is its own prefilter (the
  scanner compiles it into Hyperscan in prefilter mode, over the whole stream). Such a
  regex must mark line starts and ends with look-arounds (``(?<![^\n])``, ``(?![^\n])``),
  never ``^``/``$``, which over a stream mean its start and end. The built-in set uses
  it only for ``pgpass-password``, whose lines have no fixed text, together with ``paths``.
- Regexes run in linear time on a 4096+4096-byte line: repetitions are bounded, a
  token starts with a look-behind edge over its own alphabet (so a run of that alphabet
  is entered once, not at every position), and no quantified group overlaps itself.
- Patterns are written from the providers' documented token formats (prefix, alphabet,
  length); where a provider's secret has no recognisable shape, the rule requires the
  provider's name in an assignment (``HEROKU_API_KEY=...``, ``"twilio_token": "..."``).
- Severity: live cloud credentials CRITICAL, other credentials that grant access HIGH,
  scoped, ingest-only or hard-to-use ones MEDIUM, test-mode and publishable keys LOW.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from re import _constants as _sre  # type: ignore[attr-defined]  # the stdlib's own parser, see derive_keywords
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any, Final

__all__ = ["ANCHORE_LINEAR_FORMS", "ANCHORE_RULES", "DEFAULT_ALLOWED_PATHS", "RULES", "Rule", "anchore_rule",
           "derive_keywords", "engine_regex"]

SEVERITIES: Final = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    """One secret rule: a keyword prefilter, a line regex, and what to ignore.

    Raises ValueError on a severity outside ``SEVERITIES`` or a keyword that the
    scanner's case-insensitive prefilter could not use as written.
    """

    id: str  #: kebab-case and unique in RULES (Anchore rules keep their Anchore names)
    category: str  #: the provider: "AWS", "GitHub", "PrivateKey", ..., "Anchore"
    title: str
    severity: str  #: "CRITICAL" | "HIGH" | "MEDIUM" | "LOW"
    #: Python ``re`` syntax, compiled as ``regex.encode()`` and run on one line of bytes
    regex: str
    #: lowercase ASCII literals of >= 3 characters; the regex runs only on a line that
    #: contains one of them (case-insensitively). () = run it on every line (see above).
    keywords: tuple[str, ...]
    #: regexes over the absolute path: the rule applies only to files one of them finds
    paths: tuple[str, ...] = ()
    #: regexes over the secret value (bytes): values to ignore (documented examples, placeholders)
    allow: tuple[str, ...] = ()
    #: Anchore Engine semantics: regex.match() from the line start instead of search()
    anchore: bool = False

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"secret rule {self.id!r}: severity {self.severity!r} is not one of {SEVERITIES}")
        for keyword in self.keywords:
            if len(keyword) < 3 or not keyword.isascii() or keyword != keyword.lower():
                raise ValueError(f"secret rule {self.id!r}: keyword {keyword!r} must be lowercase ASCII, "
                                 "at least 3 characters")


# --- shared pieces --------------------------------------------------------------------------

#: How a name is tied to its value in env files, shell, INI, YAML, JSON and code:
#: KEY=v, KEY: v, "key": "v", key := v, key => v, with optional quotes and a little space.
_ASSIGN: Final = r"""["']?\s{0,5}(?:=|:=|=>|:)\s{0,5}["']?"""
#: What may stand between a provider's name and the assignment: FOO_API_KEY, foo.secret
_NAME_TAIL: Final = r"[\w.-]{0,25}"
_UUID: Final = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"


def _token(body: str, edge: str = r"[\w-]") -> str:
    """A self-identifying token: ``body`` not glued to more characters of ``edge``.

    "=" ends a base-64 token (padding) but also starts one (``KEY=token``), so it only
    counts as glue on the right.
    """
    return rf"(?<!{edge.replace('=', '')})(?P<secret>{body})(?!{edge})"


def _assigned(names: str, value: str, edge: str = r"[\w-]") -> str:
    """A value with no shape of its own, assigned to a name that contains a provider's name."""
    return rf"(?i:{names}){_NAME_TAIL}{_ASSIGN}(?P<secret>{value})(?!{edge})"


#: Made-up values that documentation and templates use in place of a real token.
_PLACEHOLDER: Final = r"(?i)example|placeholder|dummy|redacted|changeme|x{6,}|\*{4,}|123456789|abcdefgh"
#: Ten times the same character: typed by a person, not generated.
_REPEATED: Final = r"(.)\1{9,}"
_ALLOW: Final = (_PLACEHOLDER, _REPEATED)
#: Free-form values (passwords in URLs and config files): templates, references, the usual stand-ins.
_ALLOW_TEXT: Final = (
    _PLACEHOLDER,
    r"^\$|\$\{|\$\(|\{\{|\}\}|%\(|%s|^<|^\[.*\]$|^\{[a-z_][a-z0-9_]{0,40}\}$|^%\w+%$|^\*+$",
    # "password", "dbpass", "proxypass", "repopwd" (Maven's stock settings.xml), "secret", ...
    r"(?i)^(?:[a-z]{0,12}[_-]?(?:pass|passw(?:or)?d|pwd|pw)[0-9]?|secret|token|changeme|change_?me|test(?:ing)?|"
    # "placeholder" is found once (atomic, lazy): trying each of its occurrences in turn
    # would rescan the rest of the value from each
    r"user(?:name)?|admin|none|null|foo|bar|foobar|hunter2|s3cr3t|(?>\w*?placeholder)\w*|your[_-]?\w*|my[_-]?\w*|"
    r"\.\.\.|-+)$",
)


# --- the rules ------------------------------------------------------------------------------

RULES: Final[tuple[Rule, ...]] = (
    # AWS: key ids are documented as a 4-letter kind (AKIA long-term, ASIA STS temporary,
    # ABIA STS service bearer, ACCA context-specific) and 16 upper-case base-32 characters;
    # the secret is 40 base-64 characters with no shape, so it needs its name beside it.
    Rule(id="aws-access-key-id", category="AWS", title="AWS access key ID", severity="CRITICAL",
         regex=_token(r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}", edge=r"[A-Za-z0-9]"),
         # no keyword: caseless "asia" is in every time-zone table; the case-sensitive regex
         # itself is the (Hyperscan) prefilter
         keywords=(), allow=_ALLOW),
    Rule(id="aws-secret-access-key", category="AWS", title="AWS secret access key", severity="CRITICAL",
         regex=r"(?i:secret_access_key|secret-access-key|secretaccesskey|aws_secret_key|awssecretkey)"
               + _ASSIGN + r"(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
         keywords=("secret_access_key", "secret-access-key", "secretaccesskey", "aws_secret_key", "awssecretkey"),
         allow=_ALLOW),
    Rule(id="aws-session-token", category="AWS", title="AWS session token", severity="HIGH",
         regex=r"(?i:aws_session_token|aws-session-token|aws_security_token|sessiontoken)"
               # "=" only as padding: a value that could swallow "name=" would rescan the line per name
               + _ASSIGN + r"(?P<secret>[A-Za-z0-9/+]{100,4096}={0,2})(?![A-Za-z0-9/+=])",
         keywords=("aws_session_token", "aws-session-token", "aws_security_token", "sessiontoken"),
         allow=_ALLOW),
    Rule(id="aws-mws-auth-token", category="AWS", title="Amazon MWS auth token", severity="HIGH",
         regex=_token(r"amzn\.mws\." + _UUID.replace("A-F", "")), keywords=("amzn.mws.",), allow=_ALLOW),

    # Google Cloud
    Rule(id="gcp-service-account-key", category="Google", title="GCP service account private key (JSON key file)",
         severity="CRITICAL",
         regex=r'"private_key"\s{0,3}:\s{0,3}"-----BEGIN (?:RSA )?PRIVATE KEY-----(?:\\r)?\\n'
               r"(?P<secret>[A-Za-z0-9+/]{40,64})",
         keywords=('"private_key"',)),
    Rule(id="gcp-service-account", category="Google",
         title="GCP service account key file (its key is reported by gcp-service-account-key)", severity="MEDIUM",
         regex=r'"type"\s{0,3}:\s{0,3}"(?P<secret>service_account)"', keywords=('"service_account"',)),
    Rule(id="gcp-api-key", category="Google", title="Google API key", severity="HIGH",
         regex=_token(r"AIza[A-Za-z0-9_-]{35}"), keywords=("aiza",),
         # public API keys that Google ships inside gcloud (error reporting) and gsutil
         allow=(*_ALLOW, r"^AIzaSy(?:CUuWyME_r4XylltWNeydEjKSkgXkvpVyU|Ap4DSI_Z3-mK-B8U0t7GE34n74OWDJmak"
                         r"|DnacJHrKma0048b13sh8cgxNUwulubmJM)$")),
    Rule(id="gcp-oauth-client-secret", category="Google", title="Google OAuth client secret", severity="HIGH",
         regex=_token(r"GOCSPX-[A-Za-z0-9_-]{28}"), keywords=("gocspx-",), allow=_ALLOW),
    Rule(id="gcp-oauth-access-token", category="Google", title="Google OAuth access token", severity="MEDIUM",
         regex=_token(r"ya29\.[A-Za-z0-9_-]{30,2048}"), keywords=("ya29.",), allow=_ALLOW),
    Rule(id="gcp-oauth-refresh-token", category="Google", title="Google OAuth refresh token", severity="MEDIUM",
         regex=_token(r"1//0[A-Za-z0-9_-]{40,512}", edge=r"[\w/-]"), keywords=("1//0",), allow=_ALLOW),
    Rule(id="firebase-cloud-messaging-key", category="Google", title="Firebase Cloud Messaging server key",
         severity="HIGH", regex=_token(r"AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{134}"),
         keywords=(":apa91b",), allow=(_PLACEHOLDER,)),

    # Azure
    Rule(id="azure-storage-account-key", category="Azure", title="Azure storage account key", severity="CRITICAL",
         regex=_assigned(r"account[_-]?key|storage[_-]?key", r"[A-Za-z0-9+/]{86}==", edge=r"[A-Za-z0-9+/=]"),
         keywords=("accountkey", "account_key", "account-key", "storagekey", "storage_key", "storage-key"),
         # Azurite's and the storage emulator's well-known development key
         allow=(*_ALLOW, r"^Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==$")),
    Rule(id="azure-shared-access-key", category="Azure",
         title="Azure Service Bus / Event Hubs / IoT Hub shared access key", severity="HIGH",
         regex=r"(?i:SharedAccessKey)\s{0,3}=\s{0,3}(?P<secret>[A-Za-z0-9+/]{43}=)(?![A-Za-z0-9+/=])",
         keywords=("sharedaccesskey",), allow=_ALLOW),
    Rule(id="azure-sas-token", category="Azure", title="Azure shared access signature (SAS) token", severity="HIGH",
         # keyed on the service version that starts it: a user delegation SAS puts hundreds of
         # bytes of parameters before &sig=
         regex=r"[?&;=]sv=20[0-9]{2}-[0-9]{2}-[0-9]{2}&[A-Za-z0-9%&=:._+-]{0,600}?&sig="
               r"(?P<secret>[A-Za-z0-9%+/]{30,128})",
         keywords=("sv=20",), allow=_ALLOW),
    Rule(id="azure-entra-client-secret", category="Azure", title="Microsoft Entra ID (Azure AD) client secret",
         severity="HIGH", regex=_token(r"[A-Za-z0-9_~.-]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34}", edge=r"[\w~.-]"),
         keywords=tuple(f"{digit}q~" for digit in range(10)), allow=_ALLOW),
    Rule(id="azure-identifiable-key", category="Azure",
         title="Azure identifiable key (DevOps PAT, AI services, APIM, ...: 84 characters with JQQJ9)",
         severity="HIGH", regex=_token(r"[A-Za-z0-9]{52}JQQJ9[A-Za-z0-9]{27}", edge=r"[A-Za-z0-9+/=]"),
         keywords=("jqqj9",), allow=_ALLOW),
    Rule(id="azure-container-registry-key", category="Azure", title="Azure container registry access key",
         severity="HIGH", regex=_token(r"[A-Za-z0-9+/]{42}\+ACR[A-Za-z0-9]{6}", edge=r"[A-Za-z0-9+/=]"),
         keywords=("+acr",), allow=_ALLOW),

    # GitHub: documented prefixes, 36 base-62 characters (the last 6 a checksum)
    Rule(id="github-pat", category="GitHub", title="GitHub personal access token (classic)", severity="CRITICAL",
         regex=_token(r"ghp_[A-Za-z0-9]{36}"), keywords=("ghp_",), allow=_ALLOW),
    Rule(id="github-fine-grained-pat", category="GitHub", title="GitHub fine-grained personal access token",
         severity="CRITICAL", regex=_token(r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}"),
         keywords=("github_pat_",), allow=_ALLOW),
    Rule(id="github-oauth-token", category="GitHub", title="GitHub OAuth access token", severity="CRITICAL",
         regex=_token(r"gho_[A-Za-z0-9]{36}"), keywords=("gho_",), allow=_ALLOW),
    Rule(id="github-app-token", category="GitHub", title="GitHub App user-to-server or installation token",
         severity="CRITICAL",
         # ghs_ installation tokens also come in a long stateless form: ghs_<app id>_<signed body>
         regex=_token(r"ghu_[A-Za-z0-9]{36}|ghs_(?:[A-Za-z0-9]{36}|[0-9]{1,12}_[A-Za-z0-9_.-]{100,1000})"),
         keywords=("ghu_", "ghs_"), allow=_ALLOW),
    Rule(id="github-refresh-token", category="GitHub", title="GitHub App refresh token", severity="CRITICAL",
         regex=_token(r"ghr_[A-Za-z0-9]{36,76}"), keywords=("ghr_",), allow=_ALLOW),

    # GitLab: the token prefixes of docs.gitlab.com "Token prefixes"
    Rule(id="gitlab-pat", category="GitLab", title="GitLab personal, project or group access token",
         severity="CRITICAL", regex=_token(r"glpat-[A-Za-z0-9_-]{20,64}(?:\.[A-Za-z0-9_-]{1,16}){0,2}"),
         keywords=("glpat-",), allow=_ALLOW),
    Rule(id="gitlab-deploy-token", category="GitLab", title="GitLab deploy token", severity="HIGH",
         regex=_token(r"gldt-[A-Za-z0-9_-]{20,64}"), keywords=("gldt-",), allow=_ALLOW),
    Rule(id="gitlab-runner-token", category="GitLab", title="GitLab runner authentication or registration token",
         severity="HIGH",
         regex=_token(r"glrt-[A-Za-z0-9_-]{20,64}(?:\.[A-Za-z0-9_-]{1,16}){0,2}|GR1348941[A-Za-z0-9_-]{20}"),
         keywords=("glrt-", "gr1348941"), allow=_ALLOW),
    Rule(id="gitlab-pipeline-trigger-token", category="GitLab", title="GitLab pipeline trigger token",
         severity="MEDIUM", regex=_token(r"glptt-[A-Za-z0-9_-]{20,64}"), keywords=("glptt-",), allow=_ALLOW),
    Rule(id="gitlab-ci-job-token", category="GitLab", title="GitLab CI/CD job token", severity="MEDIUM",
         regex=_token(r"glcbt-[A-Za-z0-9_-]{20,100}"), keywords=("glcbt-",), allow=_ALLOW),
    Rule(id="gitlab-oauth-app-secret", category="GitLab", title="GitLab OAuth application secret",
         severity="HIGH", regex=_token(r"gloas-[A-Za-z0-9_-]{40,80}"), keywords=("gloas-",), allow=_ALLOW),
    Rule(id="gitlab-agent-token", category="GitLab", title="GitLab agent for Kubernetes token", severity="HIGH",
         regex=_token(r"glagent-[A-Za-z0-9_-]{40,80}"), keywords=("glagent-",), allow=_ALLOW),
    Rule(id="gitlab-scim-token", category="GitLab", title="GitLab SCIM OAuth token", severity="HIGH",
         regex=_token(r"glsoat-[A-Za-z0-9_-]{20,64}"), keywords=("glsoat-",), allow=_ALLOW),
    Rule(id="gitlab-feed-token", category="GitLab", title="GitLab feed token", severity="LOW",
         regex=_token(r"glft-[A-Za-z0-9_-]{20,64}"), keywords=("glft-",), allow=_ALLOW),
    Rule(id="gitlab-incoming-mail-token", category="GitLab", title="GitLab incoming mail token", severity="LOW",
         regex=_token(r"glimt-[A-Za-z0-9_-]{20,64}"), keywords=("glimt-",), allow=_ALLOW),
    Rule(id="gitlab-feature-flags-token", category="GitLab", title="GitLab feature flags client token",
         severity="LOW", regex=_token(r"glffct-[A-Za-z0-9_-]{20,64}"), keywords=("glffct-",), allow=_ALLOW),

    # Slack
    Rule(id="slack-bot-token", category="Slack", title="Slack bot token", severity="HIGH",
         regex=_token(r"xoxb-[0-9]{8,14}-(?:[0-9]{8,14}-)?[A-Za-z0-9]{24,34}"), keywords=("xoxb-",),
         allow=_ALLOW),
    Rule(id="slack-user-token", category="Slack", title="Slack user token", severity="HIGH",
         regex=_token(r"(?:xoxe\.)?xoxp-(?:[0-9]{1,14}-){1,3}[A-Za-z0-9]{28,300}"), keywords=("xoxp-",),
         allow=_ALLOW),
    Rule(id="slack-app-token", category="Slack", title="Slack app-level token", severity="HIGH",
         regex=_token(r"xapp-[0-9]-[A-Z0-9]{9,12}-[0-9]{10,14}-[a-f0-9]{60,70}"), keywords=("xapp-",),
         allow=_ALLOW),
    Rule(id="slack-token", category="Slack",
         title="Slack legacy, workspace, session, configuration or refresh token", severity="HIGH",
         regex=_token(r"xox[aors]-(?:[0-9]{1,14}-){0,3}[A-Za-z0-9]{10,200}|xoxe-[0-9]-[A-Za-z0-9-]{100,300}"),
         keywords=("xoxa-", "xoxo-", "xoxr-", "xoxs-", "xoxe-"), allow=_ALLOW),
    Rule(id="slack-webhook", category="Slack", title="Slack incoming webhook URL", severity="MEDIUM",
         regex=r"https://hooks\.slack\.com/(?:services|workflows|triggers)/"
               r"(?P<secret>T[A-Z0-9]{8,12}/[A-Za-z0-9]{8,24}/(?:[A-Za-z0-9]{8,24}/)?[A-Za-z0-9]{20,40})"
               r"(?![A-Za-z0-9])",
         keywords=("hooks.slack.com",), allow=_ALLOW),

    # Stripe: sk_/rk_ secret and restricted keys, pk_ publishable keys, whsec_ webhook secrets
    Rule(id="stripe-secret-key", category="Stripe", title="Stripe live secret or restricted key",
         severity="CRITICAL", regex=_token(r"[rs]k_live_[A-Za-z0-9]{20,247}"), keywords=("sk_live_", "rk_live_"),
         allow=_ALLOW),
    Rule(id="stripe-test-key", category="Stripe", title="Stripe test-mode secret or restricted key",
         severity="LOW", regex=_token(r"[rs]k_test_[A-Za-z0-9]{20,247}"), keywords=("sk_test_", "rk_test_"),
         allow=_ALLOW),
    Rule(id="stripe-publishable-key", category="Stripe", title="Stripe publishable key", severity="LOW",
         regex=_token(r"pk_(?:live|test)_[A-Za-z0-9]{20,247}"), keywords=("pk_live_", "pk_test_"),
         allow=_ALLOW),
    Rule(id="stripe-webhook-secret", category="Stripe", title="Stripe webhook signing secret", severity="MEDIUM",
         regex=_token(r"whsec_[A-Za-z0-9+/=]{32,64}", edge=r"[\w+/=-]"), keywords=("whsec_",), allow=_ALLOW),

    # Twilio: SK API key SIDs and AC account SIDs are 32 lower-case hex; the auth token has no prefix
    Rule(id="twilio-api-key", category="Twilio", title="Twilio API key SID", severity="MEDIUM",
         # no keyword: "sk0".."skf" are in every other English word ("asked", "task"); the
         # case-sensitive regex itself is the (Hyperscan) prefilter
         regex=_token(r"SK[0-9a-f]{32}"), keywords=(), allow=_ALLOW),
    Rule(id="twilio-auth-token", category="Twilio", title="Twilio auth token", severity="HIGH",
         regex=_assigned(r"twilio", r"[0-9a-f]{32}"), keywords=("twilio",), allow=_ALLOW),
    Rule(id="twilio-credentials-url", category="Twilio", title="Twilio account SID and auth token in a URL",
         severity="HIGH",
         regex=r"(?<![A-Za-z0-9])AC[0-9a-f]{32}:(?P<secret>[0-9a-f]{32})@(?i:[a-z0-9.-]{0,32}twilio\.com)",
         keywords=("twilio.com",), allow=_ALLOW),

    # Package registries
    Rule(id="npm-access-token", category="npm", title="npm access token", severity="HIGH",
         regex=_token(r"npm_[A-Za-z0-9]{36}"), keywords=("npm_",), allow=_ALLOW),
    Rule(id="npmrc-auth-token", category="npm",
         title="npm registry credential (//registry/:_authToken, :_auth or :_password)", severity="HIGH",
         # the form npm writes, also echoed into .npmrc by Dockerfiles and CI scripts
         regex=r"/:_(?i:authToken|auth|password)\s{0,3}=\s{0,3}[\"']?(?P<secret>[^\s\"'$]{8,2048})",
         keywords=("/:_auth", "/:_password"), allow=_ALLOW_TEXT),
    Rule(id="npmrc-auth", category="npm", title="npm registry credential in .npmrc (_authToken, _auth, _password)",
         severity="HIGH",
         regex=r"^\s{0,8}_(?i:authToken|auth|password)\s{0,3}=\s{0,3}[\"']?(?P<secret>[^\s\"'$]{8,2048})",
         keywords=("_auth", "_password"), paths=(r"(?:^|/)\.?npmrc$",), allow=_ALLOW_TEXT),
    Rule(id="yarnrc-npm-auth", category="npm", title="Yarn registry credential (.yarnrc.yml npmAuthToken)",
         severity="HIGH",
         regex=r"(?i:npmAuthToken|npmAuthIdent)\s{0,3}:\s{0,3}[\"']?(?P<secret>[^\s\"'$]{8,2048})",
         keywords=("npmauthtoken", "npmauthident"), allow=_ALLOW_TEXT),
    Rule(id="pypi-upload-token", category="PyPI", title="PyPI (or TestPyPI) API token", severity="HIGH",
         # the fixed macaroon header: base64 of the location "pypi.org" / "test.pypi.org"
         regex=_token(r"pypi-(?:AgEIcHlwaS5vcmc|AgENdGVzdC5weXBpLm9yZw)[A-Za-z0-9_-]{50,1000}"),
         keywords=("pypi-ageichlwas5vcmc", "pypi-agendgvzdc5wexbplm9yzw"), allow=_ALLOW),
    Rule(id="pypirc-password", category="PyPI", title="Password in .pypirc", severity="MEDIUM",
         regex=r"^\s{0,8}(?i:password)\s{0,3}[:=]\s{0,3}(?P<secret>\S{1,256})", keywords=("password",),
         paths=(r"(?:^|/)\.pypirc$",), allow=_ALLOW_TEXT),
    Rule(id="rubygems-api-key", category="RubyGems", title="RubyGems API key", severity="HIGH",
         regex=_token(r"rubygems_[a-f0-9]{48}"), keywords=("rubygems_",), allow=_ALLOW),
    Rule(id="clojars-token", category="Clojars", title="Clojars deploy token", severity="MEDIUM",
         regex=_token(r"CLOJARS_[a-z0-9]{60}"), keywords=("clojars_",), allow=_ALLOW),
    Rule(id="nuget-api-key", category="NuGet", title="NuGet.org API key", severity="MEDIUM",
         regex=_token(r"oy2[a-z0-9]{43}"), keywords=("oy2",), allow=_ALLOW),
    Rule(id="private-packagist-token", category="Private Packagist", title="Private Packagist token",
         severity="HIGH", regex=_token(r"packagist_(?:ort|out|uut)_[a-f0-9]{68}"),
         keywords=("packagist_ort_", "packagist_out_", "packagist_uut_"), allow=_ALLOW),
    Rule(id="jfrog-token", category="JFrog", title="JFrog Artifactory API key or reference token", severity="HIGH",
         # a reference token is base64 of "reftkn:01:..."
         regex=_token(r"AKCp[A-Za-z0-9]{69}|cmVmdGtuOjAxOj[A-Za-z0-9]{50,100}", edge=r"[A-Za-z0-9+/=]"),
         keywords=("akcp", "cmvmdgtuojaxoj"), allow=_ALLOW),
    Rule(id="maven-settings-password", category="Maven", title="Password in Maven settings.xml", severity="MEDIUM",
         regex=r"<(?:password|passphrase|master)>\s{0,3}(?P<secret>[^<\s$]{1,256})\s{0,3}</",
         keywords=("<password>", "<passphrase>", "<master>"),
         paths=(r"(?:^|/)settings(?:-security)?\.xml$",), allow=_ALLOW_TEXT),

    # Container registries
    Rule(id="docker-config-auth", category="Docker", title="Registry credential in a Docker/Podman auth file",
         severity="HIGH",
         regex=r'"(?:auth|identitytoken|registrytoken)"\s{0,3}:\s{0,3}"(?P<secret>[A-Za-z0-9+/=_.-]{12,4096})"',
         keywords=('"auth"', '"identitytoken"', '"registrytoken"'),
         paths=(r"(?:^|/)[^/]*[Dd]ocker[^/]*/config\.json$", r"(?:^|/)\.dockercfg$",
                r"(?:^|/)containers/(?:[0-9]+/)?auth\.json$"),
         allow=_ALLOW),
    Rule(id="kubernetes-docker-config", category="Docker",
         title="Registry credential in a Kubernetes .dockerconfigjson / .dockercfg secret", severity="HIGH",
         regex=r"(?i:\.dockerconfigjson|\.dockercfg)[\"']?\s{0,3}:\s{0,3}[|>]?\s{0,3}[\"']?"
               r"(?P<secret>e[wy][A-Za-z0-9+/]{20,4096}={0,2})",
         keywords=(".dockerconfigjson", ".dockercfg"), allow=_ALLOW),
    Rule(id="docker-hub-token", category="Docker", title="Docker Hub personal or organization access token",
         severity="HIGH", regex=_token(r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,40}"),
         keywords=("dckr_pat_", "dckr_oat_"), allow=_ALLOW),

    # Tokens and keys of any issuer
    Rule(id="jwt", category="JWT", title="JSON Web Token", severity="MEDIUM",
         # header and payload are base64url JSON objects, so both start with eyJ ('{"')
         regex=_token(r"eyJ[A-Za-z0-9_-]{10,4096}\.eyJ[A-Za-z0-9_-]{10,8192}\.[A-Za-z0-9_-]{16,1024}"),
         keywords=(".eyj",),
         # jwt.io's example token (sub 1234567890, name John Doe)
         allow=(_PLACEHOLDER, r"\.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIi")),
    Rule(id="private-key", category="PrivateKey",
         title="Private key (PEM: RSA, EC, DSA, OpenSSH, PKCS#8, encrypted PKCS#8)", severity="HIGH",
         # Only the BEGIN line is seen, so it must start a key: end the line, or be followed on the
         # same line by a body (one-line keys, JSON "\n" escapes, PEM headers). A string constant
         # that names the marker (b"-----BEGIN OPENSSH PRIVATE KEY-----") ends in a quote instead.
         regex=r"-----BEGIN (?:[A-Z0-9]{1,16} ){0,3}PRIVATE KEY-----"
               r"(?=[ \t\r]{0,16}$|(?:\\r)?\\n(?:[A-Za-z0-9+/=]{32}|[A-Za-z][A-Za-z-]{2,20}: )"
               r"|[ \t]{0,4}[A-Za-z0-9+/]{32})",
         keywords=("private key-----",)),
    Rule(id="pgp-private-key-block", category="PrivateKey", title="PGP private key block", severity="HIGH",
         regex=r"-----BEGIN PGP PRIVATE KEY BLOCK-----"
               r"(?=[ \t\r]{0,16}$|(?:\\r)?\\n(?:(?:\\r)?\\n[A-Za-z0-9+/=]{32}|[A-Za-z][A-Za-z-]{2,20}: ))",
         keywords=("private key block-----",)),
    Rule(id="ssh2-private-key", category="PrivateKey", title="SSH2 (RFC 4716 / SSH.com) private key",
         severity="HIGH", regex=r"---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----(?=[ \t\r]{0,16}$|(?:\\r)?\\n)",
         keywords=("private key ----",)),
    Rule(id="putty-private-key", category="PrivateKey", title="PuTTY private key (.ppk)", severity="HIGH",
         regex=r"(?<![\w-])PuTTY-User-Key-File-[23]: [a-z0-9@.-]{3,40}(?=[ \t\r]{0,16}$|(?:\\r)?\\n)",
         keywords=("putty-user-key-file-",)),
    Rule(id="base64-private-key", category="PrivateKey", title="Base64-encoded PEM private key "
         "(kubeconfig client-key-data, Kubernetes secrets, env vars)", severity="HIGH",
         # base64 of "-----BEGIN <kind> PRIVATE KEY" for PKCS#8, RSA, EC, DSA, OpenSSH, encrypted, PGP
         regex=r"(?<![A-Za-z0-9+/])LS0tLS1CRUdJTiB(?:QUklWQVRFIEtFWS0t|SU0EgUFJJVkFURSBLRVkt"
               r"|FQyBQUklWQVRFIEtFWS0t|EU0EgUFJJVkFURSBLRVkt|PUEVOU1NIIFBSSVZBVEUgS0VZLS0t"
               r"|FTkNSWVBURUQgUFJJVkFURSBLRVkt|QR1AgUFJJVkFURSBLRVkgQkxPQ0st)",
         keywords=("ls0tls1crudjtib",)),
    Rule(id="age-secret-key", category="Age", title="age encryption secret key", severity="HIGH",
         regex=_token(r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"), keywords=("age-secret-key-1",)),
    Rule(id="wireguard-private-key", category="WireGuard", title="WireGuard private key", severity="HIGH",
         # 32 bytes of base64: 43 characters, the last one of 16, and "="
         regex=r"^\s{0,8}(?i:PrivateKey)\s{0,3}=\s{0,3}(?P<secret>[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=)\s{0,8}$",
         keywords=("privatekey",), allow=_ALLOW),

    # Credential files: recognised by their path, read line by line
    Rule(id="netrc-password", category="Netrc", title="Password in .netrc", severity="HIGH",
         regex=r"(?:^|\s)(?i:password)\s+(?P<secret>\S{1,256})", keywords=("password",),
         paths=(r"(?:^|/)[._]netrc$",), allow=_ALLOW_TEXT),
    Rule(id="pgpass-password", category="PostgreSQL", title="Password in .pgpass", severity="HIGH",
         # hostname:port:database:username:password, ":" and "\" escaped by "\". No literal is common
         # to every line, so no keyword: the regex is its own prefilter, which is why it marks line
         # ends with look-arounds, not ^ and $ (over a whole stream those mean its start and end).
         regex=r"(?<![^\n])(?![ \t]*#)(?:[^:\\\s]|\\.){1,253}:(?:[0-9]{1,5}|\*):(?:[^:\\\r\n]|\\.){1,128}:"
               r"(?:[^:\\\r\n]|\\.){1,128}:(?P<secret>(?:[^:\\\r\n]|\\.){1,256})\r?(?![^\n])",
         keywords=(), paths=(r"(?:^|/)\.pgpass$",), allow=_ALLOW_TEXT),
    Rule(id="git-credentials", category="Git", title="Credential in git-credential-store file", severity="HIGH",
         regex=r"[a-z][a-z0-9+.-]{1,16}://[^\s:/@]{1,256}:(?P<secret>[^\s@/]{1,256})@[^\s/@]{1,256}",
         keywords=("://",), paths=(r"(?:^|/)\.git-credentials$", r"(?:^|/)git/credentials$"), allow=_ALLOW_TEXT),
    Rule(id="mysql-config-password", category="MySQL", title="Password in a MySQL/MariaDB option file",
         severity="MEDIUM",
         regex=r"^\s{0,8}(?i:password)\s{0,3}=\s{0,3}[\"']?(?P<secret>[^\s\"']{1,256})", keywords=("password",),
         # the last mysql/ or mariadb/ directory of the path is the one to try (if any other
         # holds the .cnf file, so does it): committing to it reads the path once, where trying
         # each in turn would rescan the rest of the path from each
         paths=(r"(?:^|/)\.?my\.cnf$", r"^(?>(?s:.*)(?:^|/)(?:mysql|mariadb)/)(?:[^/]++/)*+[^/]+\.cnf$"),
         allow=_ALLOW_TEXT),
    Rule(id="database-url-password", category="Database", title="Password in a database connection URL",
         severity="MEDIUM",
         regex=r"(?i:(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver)://)"
               r"[^\s:@/'\"<>]{0,128}:(?P<secret>[^\s:@/'\"<>]{1,256})@[A-Za-z0-9.\[\]_-]{1,253}",
         keywords=("postgres://", "postgresql://", "mysql://", "mariadb://", "mongodb://", "mongodb+srv://",
                   "redis://", "rediss://", "amqp://", "amqps://", "mssql://", "sqlserver://"),
         allow=_ALLOW_TEXT),

    # Cloud, hosting and infrastructure
    Rule(id="alibaba-access-key-id", category="Alibaba", title="Alibaba Cloud AccessKey ID", severity="HIGH",
         regex=_token(r"LTAI[A-Za-z0-9]{12,20}", edge=r"[A-Za-z0-9]"), keywords=("ltai",), allow=_ALLOW),
    Rule(id="alibaba-secret-key", category="Alibaba", title="Alibaba Cloud AccessKey secret", severity="HIGH",
         regex=_assigned(r"alibaba|aliyun|alicloud|access_key_secret|accesskeysecret", r"[A-Za-z0-9]{30}"),
         keywords=("alibaba", "aliyun", "alicloud", "access_key_secret", "accesskeysecret"), allow=_ALLOW),
    Rule(id="tencent-secret-id", category="Tencent", title="Tencent Cloud SecretId", severity="MEDIUM",
         regex=_token(r"AKID[A-Za-z0-9]{32}", edge=r"[A-Za-z0-9]"), keywords=("akid",), allow=_ALLOW),
    Rule(id="digitalocean-token", category="DigitalOcean",
         title="DigitalOcean personal access, OAuth or refresh token", severity="HIGH",
         regex=_token(r"do[opr]_v1_[a-f0-9]{64}"), keywords=("doo_v1_", "dop_v1_", "dor_v1_"), allow=_ALLOW),
    Rule(id="heroku-api-key", category="Heroku", title="Heroku API key", severity="HIGH",
         regex=_assigned(r"heroku", _UUID), keywords=("heroku",), allow=_ALLOW),
    Rule(id="heroku-api-key-v2", category="Heroku", title="Heroku API key (HRKU- format)", severity="HIGH",
         regex=_token(r"HRKU-AA[A-Za-z0-9_-]{58}"), keywords=("hrku-aa",), allow=_ALLOW),
    Rule(id="hashicorp-vault-token", category="HashiCorp", title="HashiCorp Vault service, batch or recovery token",
         severity="HIGH", regex=_token(r"hv[sbr]\.[A-Za-z0-9_-]{24,512}"), keywords=("hvs.", "hvb.", "hvr."),
         allow=_ALLOW),
    Rule(id="terraform-cloud-token", category="HashiCorp", title="Terraform Cloud / Enterprise API token",
         severity="HIGH", regex=_token(r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_-]{60,70}"),
         keywords=(".atlasv1.",), allow=_ALLOW),
    Rule(id="pulumi-token", category="Pulumi", title="Pulumi access token", severity="HIGH",
         regex=_token(r"pul-[a-f0-9]{40}"), keywords=("pul-",), allow=_ALLOW),
    Rule(id="databricks-token", category="Databricks", title="Databricks personal access token", severity="HIGH",
         regex=_token(r"dapi[a-f0-9]{32}(?:-[0-9])?"), keywords=("dapi",), allow=_ALLOW),
    Rule(id="doppler-token", category="Doppler", title="Doppler access token", severity="HIGH",
         regex=_token(r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}", edge=r"[\w.-]"),
         keywords=("dp.pt.", "dp.st.", "dp.sa.", "dp.ct.", "dp.scim.", "dp.audit."), allow=_ALLOW),
    Rule(id="planetscale-token", category="PlanetScale", title="PlanetScale password, service or OAuth token",
         severity="HIGH", regex=_token(r"pscale_(?:pw|tkn|oauth)_[A-Za-z0-9_.=-]{32,64}", edge=r"[\w.=-]"),
         keywords=("pscale_pw_", "pscale_tkn_", "pscale_oauth_"), allow=_ALLOW),
    Rule(id="supabase-token", category="Supabase", title="Supabase access token or secret key", severity="HIGH",
         regex=_token(r"sbp_[a-f0-9]{40}|sb_secret_[A-Za-z0-9_-]{20,64}"), keywords=("sbp_", "sb_secret_"),
         allow=_ALLOW),
    Rule(id="tailscale-key", category="Tailscale", title="Tailscale auth, API or OAuth client key",
         severity="HIGH",
         regex=_token(r"tskey-(?:auth|api|client|scim|webhook)-[A-Za-z0-9]{6,20}-[A-Za-z0-9]{20,64}"),
         keywords=("tskey-",), allow=_ALLOW),
    Rule(id="cloudflare-origin-ca-key", category="Cloudflare", title="Cloudflare Origin CA key", severity="MEDIUM",
         regex=_token(r"v1\.0-[a-f0-9]{24}-[a-f0-9]{146}", edge=r"[\w.-]"), keywords=("v1.0-",), allow=_ALLOW),
    Rule(id="cloudflare-api-token", category="Cloudflare", title="Cloudflare API token or global API key",
         severity="MEDIUM", regex=_assigned(r"cloudflare|cf_api", r"[A-Za-z0-9_-]{40}|[a-f0-9]{37}"),
         keywords=("cloudflare", "cf_api"), allow=_ALLOW),
    Rule(id="fastly-api-token", category="Fastly", title="Fastly API token", severity="MEDIUM",
         regex=_assigned(r"fastly", r"[A-Za-z0-9_-]{32}"), keywords=("fastly",), allow=_ALLOW),
    Rule(id="netlify-pat", category="Netlify", title="Netlify personal access token", severity="MEDIUM",
         regex=_token(r"nfp_[A-Za-z0-9]{36}"), keywords=("nfp_",), allow=_ALLOW),
    Rule(id="netlify-token", category="Netlify", title="Netlify access token", severity="MEDIUM",
         regex=_assigned(r"netlify", r"[A-Za-z0-9_-]{40,46}"), keywords=("netlify",), allow=_ALLOW),
    Rule(id="render-api-key", category="Render", title="Render API key", severity="MEDIUM",
         regex=_token(r"rnd_[A-Za-z0-9]{32}"), keywords=("rnd_",), allow=_ALLOW),
    Rule(id="scalingo-token", category="Scalingo", title="Scalingo API token", severity="MEDIUM",
         regex=_token(r"tk-us-[A-Za-z0-9_-]{48}"), keywords=("tk-us-",), allow=_ALLOW),

    # CI/CD, source hosting and developer tools
    Rule(id="atlassian-api-token", category="Atlassian", title="Atlassian API token", severity="HIGH",
         regex=_token(r"ATATT3[A-Za-z0-9_=-]{150,250}", edge=r"[\w=-]"), keywords=("atatt3",), allow=_ALLOW),
    Rule(id="atlassian-legacy-token", category="Atlassian", title="Atlassian (Jira, Confluence) API token",
         severity="MEDIUM", regex=_assigned(r"atlassian|jira|confluence", r"[A-Za-z0-9]{24}"),
         keywords=("atlassian", "jira", "confluence"), allow=_ALLOW),
    Rule(id="okta-api-token", category="Okta", title="Okta API token", severity="HIGH",
         # 42 characters starting "00"; sent as "Authorization: SSWS <token>"
         regex=r"(?:(?i:okta)" + _NAME_TAIL + _ASSIGN + r"|(?i:SSWS)\s{1,3})(?P<secret>00[A-Za-z0-9_-]{40})(?![\w-])",
         keywords=("okta", "ssws"), allow=_ALLOW),
    Rule(id="bitbucket-app-password", category="Bitbucket", title="Bitbucket app password", severity="HIGH",
         regex=_token(r"ATBB[A-Za-z0-9_=.-]{32}", edge=r"[\w=.-]"), keywords=("atbb",), allow=_ALLOW),
    Rule(id="bitbucket-client-secret", category="Bitbucket", title="Bitbucket OAuth client secret",
         severity="MEDIUM", regex=_assigned(r"bitbucket", r"[A-Za-z0-9_-]{64}"), keywords=("bitbucket",),
         allow=_ALLOW),
    Rule(id="circleci-token", category="CircleCI", title="CircleCI personal or project API token", severity="HIGH",
         regex=_token(r"CCIP(?:AT|RJ)_[A-Za-z0-9]{22}_[a-f0-9]{40}"), keywords=("ccipat_", "cciprj_"),
         allow=_ALLOW),
    Rule(id="buildkite-token", category="Buildkite", title="Buildkite API access token", severity="HIGH",
         regex=_token(r"bkua_[a-f0-9]{40}"), keywords=("bkua_",), allow=_ALLOW),
    Rule(id="sonarqube-token", category="SonarQube", title="SonarQube / SonarCloud token", severity="MEDIUM",
         regex=_token(r"sq[pua]_[a-f0-9]{40}"), keywords=("sqp_", "squ_", "sqa_"), allow=_ALLOW),
    Rule(id="sourcegraph-token", category="Sourcegraph", title="Sourcegraph access token", severity="MEDIUM",
         regex=_token(r"sgp_(?:[a-f0-9]{16}_|local_)?[a-f0-9]{40}"), keywords=("sgp_",), allow=_ALLOW),
    Rule(id="harness-pat", category="Harness", title="Harness personal access or service account token",
         severity="MEDIUM", regex=_token(r"pat\.[A-Za-z0-9_-]{22}\.[a-f0-9]{24}\.[A-Za-z0-9]{20}", edge=r"[\w.-]"),
         keywords=("pat.",), allow=_ALLOW),
    Rule(id="linear-api-key", category="Linear", title="Linear API key", severity="MEDIUM",
         regex=_token(r"lin_api_[A-Za-z0-9]{40}"), keywords=("lin_api_",), allow=_ALLOW),
    Rule(id="postman-api-key", category="Postman", title="Postman API key", severity="MEDIUM",
         regex=_token(r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}"), keywords=("pmak-",), allow=_ALLOW),
    Rule(id="prefect-api-key", category="Prefect", title="Prefect API key", severity="MEDIUM",
         regex=_token(r"pnu_[A-Za-z0-9]{36}"), keywords=("pnu_",), allow=_ALLOW),
    Rule(id="readme-api-key", category="ReadMe", title="ReadMe API key", severity="MEDIUM",
         regex=_token(r"rdme_[a-z0-9]{70}"), keywords=("rdme_",), allow=_ALLOW),
    Rule(id="infracost-api-key", category="Infracost", title="Infracost API key", severity="LOW",
         regex=_token(r"ico-[A-Za-z0-9]{32}"), keywords=("ico-",), allow=_ALLOW),
    Rule(id="snyk-token", category="Snyk", title="Snyk API token", severity="MEDIUM",
         regex=_assigned(r"snyk", _UUID), keywords=("snyk",), allow=_ALLOW),
    Rule(id="frameio-token", category="Frame.io", title="Frame.io API token", severity="MEDIUM",
         regex=_token(r"fio-u-[A-Za-z0-9_=-]{64}", edge=r"[\w=-]"), keywords=("fio-u-",), allow=_ALLOW),
    Rule(id="typeform-token", category="Typeform", title="Typeform personal access token", severity="MEDIUM",
         regex=_token(r"tfp_[A-Za-z0-9_.=-]{59}", edge=r"[\w.=-]"), keywords=("tfp_",), allow=_ALLOW),
    Rule(id="onepassword-service-account-token", category="1Password", title="1Password service account token",
         severity="HIGH", regex=_token(r"ops_eyJ[A-Za-z0-9+/=_-]{100,4000}", edge=r"[\w+/=-]"),
         keywords=("ops_eyj",), allow=_ALLOW),

    # Observability
    Rule(id="datadog-api-key", category="Datadog", title="Datadog API or application key", severity="HIGH",
         regex=_assigned(r"datadog|dd_api_key|dd_app_key|dd_application_key", r"[a-f0-9]{32}|[a-f0-9]{40}"),
         keywords=("datadog", "dd_api_key", "dd_app_key", "dd_application_key"), allow=_ALLOW),
    Rule(id="new-relic-user-api-key", category="NewRelic", title="New Relic user or admin API key",
         severity="MEDIUM", regex=_token(r"NRA[AK]-[A-Z0-9]{27}"), keywords=("nraa-", "nrak-"), allow=_ALLOW),
    Rule(id="new-relic-license-key", category="NewRelic", title="New Relic license (ingest) key",
         severity="MEDIUM", regex=_token(r"[a-f0-9]{36}NRAL", edge=r"[A-Za-z0-9]"), keywords=("nral",),
         allow=_ALLOW),
    Rule(id="new-relic-insights-key", category="NewRelic", title="New Relic Insights insert or query key",
         severity="MEDIUM", regex=_token(r"NRI[IQ]-[A-Za-z0-9_-]{32}"), keywords=("nrii-", "nriq-"), allow=_ALLOW),
    Rule(id="new-relic-browser-key", category="NewRelic", title="New Relic browser ingest key", severity="LOW",
         regex=_token(r"NRJS-[a-f0-9]{19}"), keywords=("nrjs-",), allow=_ALLOW),
    Rule(id="sentry-auth-token", category="Sentry", title="Sentry user or organization auth token",
         severity="HIGH", regex=_token(r"sntryu_[a-f0-9]{64}|sntrys_eyJ[A-Za-z0-9+/=_-]{60,400}", edge=r"[\w+/=-]"),
         keywords=("sntryu_", "sntrys_"), allow=_ALLOW),
    Rule(id="sentry-token", category="Sentry", title="Sentry auth token (legacy)", severity="MEDIUM",
         regex=_assigned(r"sentry", r"[a-f0-9]{64}"), keywords=("sentry",), allow=_ALLOW),
    Rule(id="dynatrace-token", category="Dynatrace", title="Dynatrace API token", severity="MEDIUM",
         regex=_token(r"dt0c01\.[A-Z0-9]{24}\.[A-Z0-9]{64}", edge=r"[\w.-]"), keywords=("dt0c01.",), allow=_ALLOW),
    Rule(id="grafana-cloud-token", category="Grafana", title="Grafana Cloud access policy token", severity="HIGH",
         regex=_token(r"glc_[A-Za-z0-9+/]{32,400}={0,2}", edge=r"[\w+/=-]"), keywords=("glc_",), allow=_ALLOW),
    Rule(id="grafana-service-account-token", category="Grafana", title="Grafana service account token",
         severity="MEDIUM", regex=_token(r"glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}"), keywords=("glsa_",),
         allow=_ALLOW),
    Rule(id="grafana-api-key", category="Grafana", title="Grafana API key (legacy)", severity="MEDIUM",
         # base64 of '{"k":"'
         regex=_token(r"eyJrIjoi[A-Za-z0-9]{60,100}={0,2}", edge=r"[\w+/=-]"), keywords=("eyjrijoi",),
         allow=_ALLOW),

    # Messaging, mail and chat
    Rule(id="sendgrid-api-key", category="SendGrid", title="SendGrid API key", severity="HIGH",
         regex=_token(r"SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}", edge=r"[\w.-]"), keywords=("sg.",),
         allow=_ALLOW),
    Rule(id="sendinblue-api-key", category="Sendinblue", title="Brevo (Sendinblue) API or SMTP key",
         severity="MEDIUM", regex=_token(r"x(?:keysib|smtpsib)-[a-f0-9]{64}-[A-Za-z0-9]{16}"),
         keywords=("xkeysib-", "xsmtpsib-"), allow=_ALLOW),
    Rule(id="mailgun-api-key", category="Mailgun", title="Mailgun API or webhook signing key", severity="MEDIUM",
         regex=_assigned(r"mailgun", r"(?:pub)?key-[0-9a-f]{32}|[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8}"),
         keywords=("mailgun",), allow=_ALLOW),
    Rule(id="mailchimp-api-key", category="Mailchimp", title="Mailchimp API key", severity="MEDIUM",
         regex=_assigned(r"mailchimp", r"[0-9a-f]{32}-us[0-9]{1,2}"), keywords=("mailchimp",), allow=_ALLOW),
    Rule(id="messagebird-token", category="MessageBird", title="MessageBird API key", severity="MEDIUM",
         regex=_assigned(r"messagebird|message_bird|message-bird", r"[A-Za-z0-9]{25}"),
         keywords=("messagebird", "message_bird", "message-bird"), allow=_ALLOW),
    Rule(id="discord-bot-token", category="Discord", title="Discord bot token", severity="HIGH",
         regex=_assigned(r"discord", r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}",
                         edge=r"[\w.-]"),
         keywords=("discord",), allow=_ALLOW),
    Rule(id="discord-client-secret", category="Discord", title="Discord client secret", severity="MEDIUM",
         regex=_assigned(r"discord", r"[A-Za-z0-9_-]{32}"), keywords=("discord",), allow=_ALLOW),
    Rule(id="discord-webhook", category="Discord", title="Discord webhook URL", severity="MEDIUM",
         regex=r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{17,20}/"
               r"(?P<secret>[A-Za-z0-9_-]{60,72})(?![\w-])",
         keywords=("discord",), allow=_ALLOW),
    Rule(id="telegram-bot-token", category="Telegram", title="Telegram bot token", severity="MEDIUM",
         # also in the Bot API's URLs: https://api.telegram.org/bot<token>/getMe
         regex=r"(?:(?<=/bot)|(?<![\w:-]))(?P<secret>[0-9]{8,12}:AA[A-Za-z0-9_-]{33})(?![\w-])",
         keywords=(":aa",), allow=_ALLOW),
    Rule(id="teams-webhook", category="Microsoft", title="Microsoft Teams incoming webhook URL", severity="MEDIUM",
         regex=r"https://[A-Za-z0-9-]{1,64}\.webhook\.office\.com/webhookb2/(?P<secret>[a-f0-9-]{36}@[a-f0-9-]{36}"
               r"/IncomingWebhook/[a-f0-9]{32}/[a-f0-9-]{36})",
         keywords=(".webhook.office.com/",), allow=_ALLOW),
    Rule(id="intercom-token", category="Intercom", title="Intercom access token", severity="MEDIUM",
         regex=_assigned(r"intercom", r"[A-Za-z0-9=_-]{60}", edge=r"[\w=-]"), keywords=("intercom",), allow=_ALLOW),
    Rule(id="twitter-bearer-token", category="Twitter", title="Twitter (X) app bearer token", severity="MEDIUM",
         regex=_assigned(r"twitter", r"A{20,24}[A-Za-z0-9%]{30,200}", edge=r"[\w%-]"), keywords=("twitter",),
         allow=(_PLACEHOLDER,)),
    Rule(id="twitter-api-secret", category="Twitter", title="Twitter (X) API secret", severity="LOW",
         regex=_assigned(r"twitter", r"[A-Za-z0-9]{50}"), keywords=("twitter",), allow=_ALLOW),
    Rule(id="facebook-app-secret", category="Facebook", title="Facebook app secret", severity="MEDIUM",
         regex=_assigned(r"facebook|fb_app|fb_client", r"[a-f0-9]{32}"), keywords=("facebook", "fb_app", "fb_client"),
         allow=_ALLOW),
    Rule(id="facebook-access-token", category="Facebook", title="Facebook (Graph API explorer) access token",
         severity="MEDIUM", regex=_token(r"EAACEdEose0cBA[A-Za-z0-9]{30,300}"), keywords=("eaacedeose0cba",),
         allow=_ALLOW),
    Rule(id="linkedin-client-secret", category="LinkedIn", title="LinkedIn client secret", severity="LOW",
         regex=_assigned(r"linkedin", r"[A-Za-z0-9]{16}"), keywords=("linkedin",), allow=_ALLOW),
    Rule(id="twitch-token", category="Twitch", title="Twitch API token", severity="LOW",
         regex=_assigned(r"twitch", r"[a-z0-9]{30}"), keywords=("twitch",), allow=_ALLOW),

    # Payments and commerce
    Rule(id="shopify-token", category="Shopify", title="Shopify access token or shared secret", severity="HIGH",
         regex=_token(r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}"), keywords=("shpat_", "shpca_", "shppa_", "shpss_"),
         allow=_ALLOW),
    Rule(id="square-access-token", category="Square", title="Square access token", severity="HIGH",
         # no keyword: caseless "eaaa" is common in base64; the regex itself is the prefilter
         regex=_token(r"EAAA[A-Za-z0-9_-]{60}|sq0atp-[A-Za-z0-9_-]{22}"), keywords=(),
         allow=_ALLOW),
    Rule(id="square-oauth-secret", category="Square", title="Square OAuth application secret", severity="HIGH",
         regex=_token(r"sq0csp-[A-Za-z0-9_-]{43}"), keywords=("sq0csp-",), allow=_ALLOW),
    Rule(id="flutterwave-secret-key", category="Flutterwave", title="Flutterwave live secret key", severity="HIGH",
         regex=_token(r"FLWSECK-[a-f0-9]{32}-X"), keywords=("flwseck-",), allow=_ALLOW),
    Rule(id="flutterwave-test-key", category="Flutterwave", title="Flutterwave test secret or encryption key",
         severity="LOW", regex=_token(r"FLWSECK_TEST-[a-f0-9]{32}-X|FLWSECK_TEST[a-f0-9]{12}"),
         keywords=("flwseck_test",), allow=_ALLOW),
    Rule(id="flutterwave-public-key", category="Flutterwave", title="Flutterwave public key", severity="LOW",
         regex=_token(r"FLWPUBK(?:_TEST)?-[a-f0-9]{32}-X"), keywords=("flwpubk",), allow=_ALLOW),
    Rule(id="gocardless-token", category="GoCardless", title="GoCardless live access token", severity="MEDIUM",
         regex=_assigned(r"gocardless", r"live_[A-Za-z0-9_=-]{40}", edge=r"[\w=-]"), keywords=("gocardless",),
         allow=_ALLOW),
    Rule(id="shippo-live-token", category="Shippo", title="Shippo live API token", severity="MEDIUM",
         regex=_token(r"shippo_live_[a-f0-9]{40}"), keywords=("shippo_live_",), allow=_ALLOW),
    Rule(id="shippo-test-token", category="Shippo", title="Shippo test API token", severity="LOW",
         regex=_token(r"shippo_test_[a-f0-9]{40}"), keywords=("shippo_test_",), allow=_ALLOW),
    Rule(id="duffel-live-token", category="Duffel", title="Duffel live API token", severity="MEDIUM",
         regex=_token(r"duffel_live_[A-Za-z0-9_-]{43}"), keywords=("duffel_live_",), allow=_ALLOW),
    Rule(id="duffel-test-token", category="Duffel", title="Duffel test API token", severity="LOW",
         regex=_token(r"duffel_test_[A-Za-z0-9_-]{43}"), keywords=("duffel_test_",), allow=_ALLOW),
    Rule(id="easypost-api-key", category="EasyPost", title="EasyPost production API key", severity="MEDIUM",
         regex=_token(r"EZAK[A-Za-z0-9]{54}"), keywords=("ezak",), allow=_ALLOW),
    Rule(id="easypost-test-key", category="EasyPost", title="EasyPost test API key", severity="LOW",
         regex=_token(r"EZTK[A-Za-z0-9]{54}"), keywords=("eztk",), allow=_ALLOW),
    Rule(id="lob-api-key", category="Lob", title="Lob live API key", severity="MEDIUM",
         regex=_token(r"live_[a-f0-9]{35}"), keywords=("live_",), allow=_ALLOW),
    Rule(id="lob-publishable-key", category="Lob", title="Lob live publishable key", severity="LOW",
         regex=_token(r"live_pub_[a-f0-9]{31}"), keywords=("live_pub_",), allow=_ALLOW),
    Rule(id="finicity-secret", category="Finicity", title="Finicity client secret or API token", severity="MEDIUM",
         regex=_assigned(r"finicity", r"[A-Za-z0-9]{20}|[a-f0-9]{32}"), keywords=("finicity",), allow=_ALLOW),
    Rule(id="cloudinary-url", category="Cloudinary", title="Cloudinary URL with API secret", severity="MEDIUM",
         regex=r"cloudinary://[0-9]{10,20}:(?P<secret>[A-Za-z0-9_-]{20,40})@[A-Za-z0-9_-]{1,64}",
         keywords=("cloudinary://",), allow=_ALLOW),

    # AI and ML platforms
    Rule(id="openai-api-key", category="OpenAI", title="OpenAI API key (legacy user key)", severity="HIGH",
         # T3BlbkFJ is base64 of "OpenAI"
         regex=_token(r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}"), keywords=("t3blbkfj",), allow=_ALLOW),
    Rule(id="openai-project-key", category="OpenAI", title="OpenAI project, service account or admin key",
         severity="HIGH", regex=_token(r"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,300}"),
         keywords=("sk-proj-", "sk-svcacct-", "sk-admin-"), allow=_ALLOW),
    Rule(id="anthropic-api-key", category="Anthropic", title="Anthropic API or admin key", severity="HIGH",
         regex=_token(r"sk-ant-(?:api|admin|sid)[0-9]{2}-[A-Za-z0-9_-]{80,120}"), keywords=("sk-ant-",),
         allow=_ALLOW),
    Rule(id="huggingface-token", category="HuggingFace", title="Hugging Face access or organization token",
         severity="HIGH", regex=_token(r"hf_[A-Za-z0-9]{34,40}|api_org_[A-Za-z0-9]{34}"),
         keywords=("hf_", "api_org_"), allow=_ALLOW),
    Rule(id="replicate-token", category="Replicate", title="Replicate API token", severity="MEDIUM",
         regex=_token(r"r8_[A-Za-z0-9]{37}"), keywords=("r8_",), allow=_ALLOW),
    Rule(id="groq-api-key", category="Groq", title="Groq API key", severity="MEDIUM",
         regex=_token(r"gsk_[A-Za-z0-9]{52}"), keywords=("gsk_",), allow=_ALLOW),
    Rule(id="perplexity-api-key", category="Perplexity", title="Perplexity API key", severity="MEDIUM",
         regex=_token(r"pplx-[A-Za-z0-9]{48}"), keywords=("pplx-",), allow=_ALLOW),

    # SaaS APIs with a name-only context
    Rule(id="notion-token", category="Notion", title="Notion integration token", severity="MEDIUM",
         regex=_token(r"ntn_[A-Za-z0-9]{40,50}"), keywords=("ntn_",), allow=_ALLOW),
    Rule(id="algolia-api-key", category="Algolia", title="Algolia admin API key", severity="MEDIUM",
         regex=_assigned(r"algolia", r"[a-f0-9]{32}"), keywords=("algolia",), allow=_ALLOW),
    Rule(id="asana-token", category="Asana", title="Asana personal access token or client secret",
         severity="MEDIUM",
         regex=_assigned(r"asana", r"[0-9]/[0-9]{10,20}(?:/[0-9]{10,20})?:[A-Za-z0-9]{32}|[0-9]/[A-Za-z0-9]{32}"
                         r"|[A-Za-z0-9]{32}"),
         keywords=("asana",), allow=_ALLOW),
    Rule(id="beamer-api-token", category="Beamer", title="Beamer API token", severity="LOW",
         regex=_assigned(r"beamer", r"b_[A-Za-z0-9=_-]{44}", edge=r"[\w=-]"), keywords=("beamer",), allow=_ALLOW),
    Rule(id="contentful-token", category="Contentful", title="Contentful delivery or preview API token",
         severity="LOW", regex=_assigned(r"contentful", r"[A-Za-z0-9_=-]{43}", edge=r"[\w=-]"),
         keywords=("contentful",), allow=_ALLOW),
    Rule(id="contentful-pat", category="Contentful", title="Contentful personal access token", severity="MEDIUM",
         regex=_token(r"CFPAT-[A-Za-z0-9_-]{43}"), keywords=("cfpat-",), allow=_ALLOW),
    Rule(id="dropbox-access-token", category="Dropbox", title="Dropbox access token", severity="HIGH",
         regex=_assigned(r"dropbox", r"sl\.[A-Za-z0-9_.-]{130,1400}|[A-Za-z0-9]{11}AAAAAAAAAA[A-Za-z0-9_-]{43}",
                         edge=r"[\w.-]"),
         keywords=("dropbox",), allow=(_PLACEHOLDER,)),
    Rule(id="dropbox-app-secret", category="Dropbox", title="Dropbox app key or secret", severity="MEDIUM",
         regex=_assigned(r"dropbox", r"[a-z0-9]{15}"), keywords=("dropbox",), allow=_ALLOW),
    Rule(id="hubspot-private-app-token", category="HubSpot", title="HubSpot private app access token",
         severity="MEDIUM", regex=_token(r"pat-(?:na|eu)[0-9]-" + _UUID.replace("A-F", "")),
         keywords=("pat-na", "pat-eu"), allow=_ALLOW),
    Rule(id="hubspot-api-key", category="HubSpot", title="HubSpot API key (legacy)", severity="LOW",
         regex=_assigned(r"hubspot|hapikey", _UUID), keywords=("hubspot", "hapikey"), allow=_ALLOW),
    Rule(id="ionic-token", category="Ionic", title="Ionic API token", severity="LOW",
         regex=_assigned(r"ionic", r"ion_[A-Za-z0-9]{42}"), keywords=("ionic",), allow=_ALLOW),
    Rule(id="adobe-client-secret", category="Adobe", title="Adobe client secret", severity="MEDIUM",
         regex=_token(r"p8e-[A-Za-z0-9]{32}"), keywords=("p8e-",), allow=_ALLOW),
    Rule(id="adobe-client-id", category="Adobe", title="Adobe client ID (OAuth web)", severity="LOW",
         regex=_assigned(r"adobe", r"[a-f0-9]{32}"), keywords=("adobe",), allow=_ALLOW),
    Rule(id="mapbox-secret-token", category="Mapbox", title="Mapbox secret access token", severity="MEDIUM",
         # base64 of '{"u":"'
         regex=_token(r"sk\.eyJ1Ijoi[A-Za-z0-9_-]{20,200}\.[A-Za-z0-9_-]{20,30}", edge=r"[\w.-]"),
         keywords=("sk.eyj1ijoi",), allow=_ALLOW),
)


# --- where no built-in rule reports ---------------------------------------------------------

#: Path regexes (re.search over the absolute path) of files that hold documentation, tests,
#: examples and toolchains' own sources: sample keys and tokens live there by design. Like
#: Trivy's built-in allow rules, but /usr/lib and /usr/share are scanned apart from these.
DEFAULT_ALLOWED_PATHS: Final[tuple[str, ...]] = (
    r"\.(?:dist|egg)-info/",  # Python package metadata (READMEs as METADATA descriptions)
    r"/__pycache__/",  # byte code repeats the constants of its .py
    r"^/usr/share/(?:doc|doc-base|man|info|help|gtk-doc|locale|i18n|zoneinfo|icons|fonts)/",
    r"^/usr/include/",
    r"^/etc/ssl/certs/|^/usr/share/ca-certificates/",  # public CA certificates
    r"(?i)\.(?:md|markdown|mdx|rst)$",
    # test code and data: tests/, testdata/, __tests__/, spec/, fixtures/, idle_test/, unit-tests/
    r"(?i)/(?:[^/]*[._-])?(?:tests?|testing|testdata|test[_-]data|__tests__|specs?|fixtures?|__fixtures__"
    r"|__mocks__)/",
    r"(?:^|/)test_[^/]*\.py$|[^/]_test\.[A-Za-z0-9]+$|\.(?:test|spec)\.[A-Za-z0-9]+$",
    r"(?i)/(?:[^/]*[._-])?(?:examples?|samples?|demos?)/",
    # .env.example, config.sample.yml, wp-config-sample.php, example.conf, sample-settings.json
    # (both in the last path component, entered once: a look-ahead from each "/" reads only
    # its own component, and "example." is then decided where it stands)
    r"(?i)(?:^|/)(?=[^/]*+$)(?:[^/]*?[._-](?:example|sample)(?:\.|$)|(?:example|sample)[._-])",
    r"/node_modules/(?:@[^/]+/)?[^/]+/(?:docs?|benchmarks?)/",
    r"/dummyserver/",  # urllib3's test server and its certificates
    # Python's, Go's and Yarn's own sources and test suites. Not GOPATH's /go/src/: the
    # golang images build the application there.
    r"^/usr/(?:local/)?lib/python[0-9.]*/test/",
    r"^/usr/(?:local/go|(?:lib|share)/go(?:-[0-9.]+)?)/(?:src|test|misc|lib|api)/",
    r"/go/pkg/mod/",  # the module cache: third-party modules
    r"^/opt/yarn-v[0-9.]+/",
)


# --- Anchore Engine's secret_search rules ---------------------------------------------------

_ANCHORE_DEFAULTS: Final = (
    # (name, regex as Anchore Engine ships it, keywords, severity, title)
    ("AWS_ACCESS_KEY",
     r"(?i).*aws_access_key_id( *=+ *).*(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9]).*",
     ("aws_access_key_id",), "CRITICAL", "AWS access key ID (Anchore Engine default)"),
    ("AWS_SECRET_KEY",
     r"(?i).*aws_secret_access_key( *=+ *).*(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=]).*",
     ("aws_secret_access_key",), "CRITICAL", "AWS secret access key (Anchore Engine default)"),
    ("PRIV_KEY", r"(?i)-+BEGIN(.*)PRIVATE KEY-+",
     ("private key",), "HIGH", "Private key (Anchore Engine default)"),
    ("DOCKER_AUTH", r'(?i).*"auth": *".+"',
     ('"auth"',), "HIGH", "Docker registry auth (Anchore Engine default)"),
    ("API_KEY", r"(?i).*api(-|_)key( *=+ *).*(?<![A-Z0-9])[A-Z0-9]{20,60}(?![A-Z0-9]).*",
     ("api-key", "api_key"), "MEDIUM", "API key (Anchore Engine default)"),
)

#: Anchore Engine's five default ``secret_search`` rules, under their Anchore names, with
#: Anchore's regexes unchanged and matched as Anchore does (``regex.match`` from the start
#: of each line). Their keywords are literals that every line the regex matches contains.
ANCHORE_RULES: Final[tuple[Rule, ...]] = tuple(
    Rule(id=name, category="Anchore", title=title, severity=severity, regex=regex, keywords=keywords, anchore=True)
    for name, regex, keywords, severity, title in _ANCHORE_DEFAULTS)


#: What the scanner runs for Anchore's three "NAME = ... TOKEN" regexes. As written they
#: backtrack quadratically ("api-key" and 8000 "=": each split of "=+ *" rescans the rest of
#: the line), so each is run as a linear equivalent: the first NAME followed by " *=" (an
#: earlier one leaves at least as much line for the token), then the first token after it,
#: each found once (atomic, lazy), then the rest of the line. The same lines match, and the
#: match is the same (the whole line): tests/unit/test_secret_rules.py compares them.
ANCHORE_LINEAR_FORMS: Final[dict[str, str]] = {
    _ANCHORE_DEFAULTS[0][1]:
        r"(?i)(?>.*?aws_access_key_id *=)(?>.*?(?<![A-Z0-9])[A-Z0-9]{20}(?![A-Z0-9])).*",
    _ANCHORE_DEFAULTS[1][1]:
        r"(?i)(?>.*?aws_secret_access_key *=)(?>.*?(?<![A-Za-z0-9/+=])[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])).*",
    _ANCHORE_DEFAULTS[4][1]:
        r"(?i)(?>.*?api[-_]key *=)(?>.*?(?<![A-Z0-9])[A-Z0-9]{20,60}(?![A-Z0-9])).*",
}


def engine_regex(rule: Rule) -> str:
    """The regex the scanner compiles for ``rule``: its own, or the linear equivalent of one
    of Anchore's regexes (run, like all Anchore rules, with ``match`` from a line's start)."""
    return ANCHORE_LINEAR_FORMS.get(rule.regex, rule.regex) if rule.anchore else rule.regex


def anchore_rule(entry: str, *, severity: str = "MEDIUM") -> Rule:
    """Turn an Anchore Engine ``secret_search`` config entry ``"NAME=regex"`` into a Rule.

    The regex keeps Anchore's semantics (``anchore=True``: ``match`` from the start of each
    line) but is compiled as bytes like every rule, so ``\\w``, ``\\d`` and ``(?i)`` are
    ASCII-only and the ``(?u)`` flag is refused. One of Anchore's default entries gives that
    default rule (renamed if NAME differs). Otherwise keywords come from ``derive_keywords``:
    when the regex has no literal of 3 or more characters that every match must contain, the
    rule has ``keywords=()`` and the scanner must run the regex itself on every line (slow,
    but never misses what Anchore would find).

    Raises:
        ValueError: naming the entry, when it is not NAME=regex or the regex does not compile.
    """
    name, sep, regex = entry.partition("=")
    name = name.strip()
    if not sep or not name or not regex:
        raise ValueError(f"secret_search entry {entry!r} is not NAME=regex")
    try:
        re.compile(regex.encode())
    except re.error as exc:
        raise ValueError(f"secret_search entry {entry!r}: the regex does not compile: {exc}") from None
    for default in ANCHORE_RULES:
        if default.regex == regex:
            return default if default.id == name else replace(default, id=name, title=f"{name} (Anchore rule)")
    return Rule(id=name, category="Anchore", title=f"{name} (Anchore secret_search rule)", severity=severity,
                regex=regex, keywords=derive_keywords(regex), anchore=True)


# --- keyword derivation ---------------------------------------------------------------------
#
# A conservative literal analysis of a parsed regex (the stdlib's own re parser, so it sees the
# pattern exactly as re compiles it). For every subpattern it records strings that every match
# of it must contain; the scanner may prefilter on any such set, and the tests use it to prove
# that each built-in rule's keywords cannot drop a line its regex would match.

_MAX_SET: Final = 64  # alternatives tracked at one position; more and the set is forgotten
_MAX_CLASS: Final = 16  # a character class this small ([0-9a-f], [-_]) is expanded into alternatives


@dataclass(frozen=True, slots=True)
class _Lits:
    exact: frozenset[str] | None  # every match is one of these strings (lowercased)
    prefix: frozenset[str]  # every match starts with one of these ("" in it: nothing known)
    suffix: frozenset[str]  # every match ends with one of these
    factors: tuple[frozenset[str], ...] = ()  # every match contains one string of each set


_EMPTY: Final = _Lits(frozenset({""}), frozenset({""}), frozenset({""}))
_UNKNOWN: Final = _Lits(None, frozenset({""}), frozenset({""}))


def _exact(strings: frozenset[str]) -> _Lits:
    return _Lits(strings, strings, strings)


def _product(left: frozenset[str], right: frozenset[str]) -> frozenset[str] | None:
    if len(left) * len(right) > _MAX_SET:
        return None
    return frozenset(a + b for a in left for b in right)


def _concat(a: _Lits, b: _Lits) -> _Lits:
    if a.exact is not None and b.exact is not None:
        both = _product(a.exact, b.exact)
        if both is not None:
            return _exact(both)
    prefix = a.prefix if a.exact is None else (_product(a.exact, b.prefix) or a.exact)
    suffix = b.suffix if b.exact is None else (_product(a.suffix, b.exact) or b.exact)
    junction = _product(a.suffix, b.prefix)
    factors = a.factors + b.factors + tuple(s for s in (junction, a.exact, b.exact) if s is not None)
    return _Lits(None, prefix, suffix, factors)


def _useful(strings: frozenset[str] | None) -> bool:
    return bool(strings) and "" not in strings  # type: ignore[operator]


def _candidates(lits: _Lits) -> list[frozenset[str]]:
    sets = [*lits.factors, lits.prefix, lits.suffix, lits.exact]
    return [s for s in sets if s is not None and _useful(s)]


def _best(sets: list[frozenset[str]]) -> frozenset[str] | None:
    # Estimated hits: each alternative, and ordinary text holds a given literal about 5 times
    # less often per character it is longer. So "xoxb-", not "xoxb-0" ... "xoxb-9"; but
    # "secret-key"/"secret_key" rather than "secret".
    usable = [s for s in sets if min(map(len, s)) >= 3] or sets
    return max(usable, key=lambda s: min(map(len, s)) - math.log(len(s), 5), default=None)


def _union(sets: list[frozenset[str]]) -> frozenset[str]:
    if any("" in s for s in sets):
        return frozenset({""})
    merged = frozenset().union(*sets)
    return merged if len(merged) <= _MAX_SET else frozenset({""})


def _char(code: int) -> str | None:
    # Non-ASCII bytes are not folded by a caseless byte prefilter: they cannot be keywords.
    return chr(code).lower() if code < 128 else None


def _analyze(pattern: Any) -> _Lits:  # a re._parser.SubPattern: (opcode, argument) pairs
    result = _EMPTY
    for op, av in pattern:
        result = _concat(result, _node(op, av))
    return result


def _node(op: Any, av: Any) -> _Lits:  # noqa: C901 - one case per node kind
    if op is _sre.LITERAL:
        char = _char(av)
        return _UNKNOWN if char is None else _exact(frozenset({char}))
    if op is _sre.IN:
        chars: set[str] = set()
        for item_op, item_av in av:
            if item_op is _sre.LITERAL:
                codes = [item_av]
            elif item_op is _sre.RANGE and item_av[1] - item_av[0] < _MAX_CLASS:
                codes = list(range(item_av[0], item_av[1] + 1))
            else:
                return _UNKNOWN  # NEGATE, CATEGORY, a wide range
            for code in codes:
                char = _char(code)
                if char is None:
                    return _UNKNOWN
                chars.add(char)
        return _exact(frozenset(chars)) if 0 < len(chars) <= _MAX_CLASS else _UNKNOWN
    if op is _sre.SUBPATTERN:
        return _analyze(av[3])
    if op is _sre.ATOMIC_GROUP:
        return _analyze(av)
    if op is _sre.BRANCH:
        parts = [_analyze(branch) for branch in av[1]]
        if all(p.exact is not None for p in parts):
            merged = frozenset[str]().union(*(p.exact for p in parts if p.exact is not None))
            if len(merged) <= _MAX_SET:
                return _exact(merged)
        bests = [_best(_candidates(p)) for p in parts]
        factors: tuple[frozenset[str], ...] = ()
        if all(b is not None for b in bests):
            either = _union([b for b in bests if b is not None])
            factors = (either,) if _useful(either) else ()
        return _Lits(None, _union([p.prefix for p in parts]), _union([p.suffix for p in parts]), factors)
    if op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
        low, high, item = av
        inner = _analyze(item)
        if high == 0:
            return _EMPTY
        if low == 0:
            if high == 1 and inner.exact is not None:
                return _exact(inner.exact | {""})
            return _UNKNOWN
        if low == high and inner.exact is not None:
            repeated: frozenset[str] | None = inner.exact
            for _ in range(low - 1):
                repeated = _product(repeated, inner.exact) if repeated is not None else None
            if repeated is not None:
                return _exact(repeated)
        if inner.exact is not None:
            return _Lits(None, inner.exact, inner.exact, (*inner.factors, inner.exact))
        return _Lits(None, inner.prefix, inner.suffix, inner.factors)
    if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
        return _EMPTY  # zero-width: the text around it is contiguous
    return _UNKNOWN  # ANY, NOT_LITERAL, CATEGORY, GROUPREF, GROUPREF_EXISTS


def _required_sets(regex: str) -> list[frozenset[str]]:
    """Sets of lowercase strings such that every match of ``regex`` (as bytes) contains one
    string of each set."""
    return _candidates(_analyze(_sre_parse.parse(regex.encode())))


def derive_keywords(regex: str) -> tuple[str, ...]:
    """Keywords for a regex: literals, one of which every match of it contains.

    Of the sets of literals that every match must contain one of, picks the one expected to
    hit ordinary text least (long members, few of them), drops members that contain another
    member, and returns () when no set has members of 3 or more characters: the regex must
    then be its own prefilter. Never wrong, sometimes silent: a regex
    built from wide classes has nothing to offer, even when a person could see a keyword.
    """
    best = _best(_required_sets(regex))
    if best is None or min(map(len, best)) < 3:
        return ()
    return tuple(sorted(s for s in best if not any(o != s and o in s for o in best)))
