"""The streaming secret scanner inside the layer analyzer: findings map to the right file,
line and offset however the stream is cut; binary files, allowed paths and size caps."""

import gzip
import hashlib
import hmac
import random

import pytest

from analyzerd.analysis.layer import LayerAnalyzer
from analyzerd.secrets.rules import Rule
from analyzerd.secrets.scanner import RuleSet
from analyzerd.testing import Member, make_layer

KEY = b"k" * 32
TOKEN_RULE = Rule(id="test-token", category="Test", title="test token", severity="HIGH",
                  regex=r"(?<![A-Za-z0-9])(?P<secret>tkn_[A-Za-z0-9]{24})(?![A-Za-z0-9])", keywords=("tkn_",))
ASSIGN_RULE = Rule(id="test-assign", category="Test", title="assigned", severity="LOW",
                   regex=r"(?i)^\s*password\s*=\s*(?P<secret>\S{8,})", keywords=("password",), anchore=False)


def token(rng):
    return "tkn_" + "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
                            for _ in range(24))


def scan(members, *, step=65536, rules=None, **options):
    rule_set = RuleSet(rules or (TOKEN_RULE, ASSIGN_RULE), fingerprint_key=KEY, **options)
    blob = gzip.compress(make_layer(members, "pax"))
    analyzer = LayerAnalyzer(digest="sha256:" + hashlib.sha256(blob).hexdigest(), size=len(blob), media_type="m",
                             secrets=rule_set.scanner(), secret_rules=rule_set.digest)
    for i in range(0, len(blob), step):
        analyzer.feed(blob[i:i + step])
    return analyzer.finish()


def expected(path, text, secret, rule="test-token"):
    offset = text.index(secret)
    return (path, rule, text[:offset].count("\n") + 1, offset)


@pytest.mark.parametrize("step", [1, 13, 4096, 1 << 20])
def test_findings_have_the_right_file_line_and_offset_whatever_the_chunking(step):
    rng = random.Random(step)
    filler = "".join(rng.choice("abcdefgh \n") for _ in range(300_000))  # > one piece of output
    small_secret, long_secret, edge_secret = token(rng), token(rng), token(rng)
    small = f"user=app\napi = {small_secret}\n"
    long_text = filler + f"\nkey: {long_secret} # deep in a long file\n" + filler[:1000]
    edge = "x" * (512 * 3 - 10) + f" {edge_secret}\n"  # spans a tar block boundary
    result = scan([Member("etc/app.conf", small.encode()), Member("srv/big.yaml", long_text.encode()),
                   Member("srv/edge.txt", edge.encode()),
                   Member("etc/passwd.ini", b"password = hunter2hunter2\n")], step=step)
    found = sorted((f.path, f.rule, f.line, f.offset) for f in result.secrets)
    assert found == sorted([expected("/etc/app.conf", small, small_secret),
                            expected("/srv/big.yaml", long_text, long_secret),
                            expected("/srv/edge.txt", edge, edge_secret),
                            ("/etc/passwd.ini", "test-assign", 1, 11)])
    by_path = {f.path: f for f in result.secrets}
    assert by_path["/etc/app.conf"].redacted == small_secret[:4] + "*****"
    assert by_path["/etc/app.conf"].fingerprint == hmac.new(KEY, small_secret.encode(), hashlib.sha256).hexdigest()
    assert result.secret_rules is not None


def test_binary_files_are_skipped_unless_asked_and_names_in_headers_are_not_findings():
    rng = random.Random(2)
    secret = token(rng)
    binary = b"\x7fELF\x00\x00" + bytes(5000) + secret.encode() + b"\n"
    members = [Member("usr/bin/tool", binary, mode=0o755), Member(f"etc/{secret}", b"nothing here\n")]
    assert scan(members).secrets == []
    found = scan(members, scan_binary=True).secrets
    assert [(f.path, f.line) for f in found] == [("/usr/bin/tool", 1)]


def test_allowed_paths_and_the_size_cap():
    rng = random.Random(3)
    secret = token(rng)
    members = [Member("usr/share/doc/app/README", f"{secret}\n".encode()),
               Member("etc/big.conf", (f"{secret}\n" + "y" * 20_000).encode()),
               Member("etc/small.conf", f"{secret}\n".encode())]
    found = scan(members, allowed_paths=(r"^/usr/share/doc/",), max_file_size=10_000).secrets
    assert [f.path for f in found] == ["/etc/small.conf"]


def test_one_finding_per_rule_and_line_and_a_bounded_count():
    rng = random.Random(4)
    line = " ".join(token(rng) for _ in range(3)) + "\n"
    found = scan([Member("etc/a", line.encode())]).secrets
    assert len(found) == 1


def test_a_huge_file_is_scanned_in_the_stream_with_exact_line_numbers():
    rng = random.Random(5)
    first, last = token(rng), token(rng)
    line = b"log line with nothing secret in it, padded to a realistic width .............\n"
    body = line * 120_000  # ~9.6 MB
    text = body + f"a = {first}\n".encode() + body + f"b = {last}\n".encode()
    result = scan([Member("var/log/huge.log", text)], step=1 << 20)
    assert sorted((f.line, f.offset) for f in result.secrets) == [
        (120_001, len(body) + 4), (240_002, 2 * len(body) + len(f"a = {first}\n") + 4)]


def test_path_bound_rules_read_only_their_files():
    rule = Rule(id="test-netrc", category="Test", title="netrc", severity="HIGH",
                regex=r"password\s+(?P<secret>\S{6,})", keywords=("password",), paths=(r"(?:^|/)\.netrc$",))
    text = b"machine example.org login me password s3cr3tpw\n"
    found = scan([Member("root/.netrc", text), Member("etc/notes", text)], rules=(rule,)).secrets
    assert [(f.path, f.line, f.offset) for f in found] == [("/root/.netrc", 1, text.index(b"s3cr3tpw"))]


def test_path_bound_rules_find_every_line_of_a_multi_line_file_whatever_the_chunking():
    """A path-bound rule reads its file whole, line by line: a secret on each of several lines,
    the first at offset 0 and one on the last line without a newline, each at its own line and
    byte offset, however the stream is cut (a file whose bytes arrive in many pieces waits for
    the rest), and a file the rule's paths do not name is never read."""
    rule = Rule(id="test-netrc", category="Test", title="netrc", severity="HIGH",
                regex=r"password\s+(?P<secret>\S{6,})", keywords=("password",), paths=(r"(?:^|/)\.netrc$",))
    lines = [b"password firstpw1", b"machine a.example login me", b"", b"machine b password second22",
             b"x" * 5000, b"machine c password thirdpw3"]
    text = b"\n".join(lines)
    for step in (1, 7, 512, 1 << 20):
        found = scan([Member("etc/notes", text), Member("root/.netrc", text), Member("srv/after", b"tail\n")],
                     rules=(rule,), step=step).secrets
        assert [(f.path, f.line, f.offset) for f in found] == [
            ("/root/.netrc", 1, text.index(b"firstpw1")), ("/root/.netrc", 4, text.index(b"second22")),
            ("/root/.netrc", 6, text.index(b"thirdpw3"))], step
    # the path-bound file is skipped like any other when it is binary or an allowed path
    binary = scan([Member("root/.netrc", b"\0" + text)], rules=(rule,)).secrets
    allowed = scan([Member("root/.netrc", text)], rules=(rule,), allowed_paths=(r"^/root/",)).secrets
    assert binary == [] and allowed == []


def test_configured_rules_keep_every_field_of_their_mapping():
    """A rule configured as a mapping (secret_search.rules) keeps its id, category, title,
    severity (upper-cased), keywords (lower-cased), paths and allow list; category, title and
    severity default to Custom, the id and HIGH; a bad entry is refused naming it."""
    from analyzerd.secrets.scanner import build_rule_set
    full = {"id": "corp-token", "regex": r"(?P<secret>corp_[a-z0-9]{12})", "category": "Corp", "title": "Corp token",
            "severity": "medium", "keywords": ["CORP_"], "paths": [r"\.env$"], "allow": [r"corp_example00"]}
    rule_set = build_rule_set(extra=(full, {"id": "bare", "regex": r"(?P<secret>bare_[a-z]{8})"}))
    by_id = {rule.id: rule for rule in rule_set.rules}
    assert by_id["corp-token"] == Rule(id="corp-token", category="Corp", title="Corp token", severity="MEDIUM",
                                       regex=full["regex"], keywords=("corp_",), paths=(r"\.env$",),
                                       allow=(r"corp_example00",))
    bare = by_id["bare"]
    assert (bare.category, bare.title, bare.severity, bare.paths, bare.allow) == ("Custom", "bare", "HIGH", (), ())
    for entry in ({"regex": "x"}, {"id": "no-regex"}, {"id": 7, "regex": "x"}):
        with pytest.raises(ValueError, match=r"secret rule .*needs an id and a regex"):
            build_rule_set(extra=(entry,))
    with pytest.raises(ValueError, match="secret rule corp-bad: "):
        build_rule_set(extra=({"id": "corp-bad", "regex": "(?P<secret>x)", "severity": "EXTREME"},))


def test_the_anchore_mode_and_the_default_mode_build_the_rule_sets_they_promise():
    """anchore: Anchore's five rules (or the configured entries instead of them), only the
    configured allowed paths, Anchore's 10,000-byte file limit; default: every rule plus the
    configured ones, the default allowed paths plus the configured, a 100 MiB limit."""
    from analyzerd.secrets.rules import ANCHORE_RULES, DEFAULT_ALLOWED_PATHS, RULES
    from analyzerd.secrets.scanner import ANCHORE_MAX_FILE_SIZE, DEFAULT_MAX_FILE_SIZE, build_rule_set
    anchore = build_rule_set(mode="anchore", allowed_paths=("^/srv/",))
    assert [r.id for r in anchore.rules] == [r.id for r in ANCHORE_RULES]
    assert (anchore.allowed_paths, anchore.max_file_size, anchore.scan_binary) == (("^/srv/",), ANCHORE_MAX_FILE_SIZE,
                                                                                   False)
    entries = build_rule_set(mode="anchore", extra=("MY_TOKEN=(?i).*mytoken=.*",
                                                    {"id": "mapped", "regex": "(?P<secret>m_[a-z]{8})"}),
                             max_file_size=500, scan_binary=True)
    assert [r.id for r in entries.rules] == ["MY_TOKEN", "mapped"]
    assert (entries.max_file_size, entries.scan_binary) == (500, True)
    default = build_rule_set(extra=("MY_TOKEN=(?i).*mytoken=.*",), allowed_paths=("^/srv/",))
    assert [r.id for r in default.rules] == [r.id for r in RULES] + ["MY_TOKEN"]
    assert default.allowed_paths == DEFAULT_ALLOWED_PATHS + ("^/srv/",)
    assert default.max_file_size == DEFAULT_MAX_FILE_SIZE
    assert build_rule_set(disabled=(RULES[0].id,)).rules == RULES[1:]
    with pytest.raises(ValueError, match="secret_search.disabled_rules: no rule named nope"):
        build_rule_set(disabled=("nope",))


def test_secrets_in_a_config_value_are_found_on_every_line_with_lines_and_offsets():
    """find_in_text (an Env value, a label, a history command): 1-based lines, byte offsets
    from the text's start, every occurrence (an allowed value is skipped, not the end of the
    search), at most ``limit``."""
    rule_set = RuleSet((TOKEN_RULE,), fingerprint_key=KEY)
    first, second, third = (token(random.Random(seed)) for seed in (1, 2, 3))
    text = f"echo start\nA={first} B={second}\nC=tkn_{'0' * 24}\n\nD={third}".encode()
    allowing = RuleSet((Rule(id=TOKEN_RULE.id, category="Test", title="t", severity="HIGH", regex=TOKEN_RULE.regex,
                             keywords=TOKEN_RULE.keywords, allow=(r"tkn_0{24}",)),), fingerprint_key=KEY)
    for rules, extra in ((rule_set, [(3, text.index(b"tkn_000"))]), (allowing, [])):
        found = [(m.line, m.start) for m in rules.find_in_text(text)]
        assert found == sorted([(2, text.index(first.encode())), (2, text.index(second.encode())),
                                (5, text.index(third.encode()))] + extra)
    assert len(rule_set.find_in_text(text, limit=2)) == 2


@pytest.mark.parametrize("path_regex, tail", [
    (r"(?:^|/)\.git-credentials$", ".git-credentials"),
    (r"(?:^|/)[._]netrc$", "netrc"),  # the class stops the walk: only what every match ends with
    (r"(?:^|/)settings(?:-security)?\.xml$", ".xml"),
    (r"(?:^|/)id_rsa$", "id_rsa"),  # the group before it may be "^": no "/" is certain
    (r"(?:^|/)\.?npmrc$", "npmrc"),  # "?" applies to the dot: not part of the tail
    (r"(?:^|/)\.pypirc", ""),  # not anchored at the end: nothing is certain
    (r"(?i)(?:^|/)\.netrc$", ""),  # case-insensitive: the literal may be in any case
    (r"a_b-c/d$", "a_b-c/d"),
    (r"\.$", "."),
])
def test_path_rules_are_prefiltered_by_the_literal_their_paths_end_with(path_regex, tail):
    from analyzerd.secrets.scanner import _literal_tail
    assert _literal_tail(path_regex) == tail
