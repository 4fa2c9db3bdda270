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
