"""The streaming secret scanner inside the layer analyzer: findings map to the right file,
line and offset however the stream is cut; binary files, allowed paths and size caps."""

import gzip
import hashlib
import hmac
import random
import threading

import pytest

from analyzerd.analysis.layer import LayerAnalyzer
from analyzerd.secrets import scanner as scanner_module
from analyzerd.secrets.rules import Rule, anchore_rule
from analyzerd.secrets.scanner import MAX_LINE, WINDOW_PIECE, RuleSet, build_rule_set
from analyzerd.testing import LAYER_TYPES, Member, make_layer

KEY = b"k" * 32
TOKEN_RULE = Rule(id="test-token", category="Test", title="test token", severity="HIGH",
                  regex=r"(?<![A-Za-z0-9])(?P<secret>tkn_[A-Za-z0-9]{24})(?![A-Za-z0-9])", keywords=("tkn_",))
ASSIGN_RULE = Rule(id="test-assign", category="Test", title="assigned", severity="LOW",
                   regex=r"(?i)^\s*password\s*=\s*(?P<secret>\S{8,})", keywords=("password",), anchore=False)


NETRC_RULE = Rule(id="test-netrc", category="Test", title="netrc", severity="HIGH",
                  regex=r"password\s+(?P<secret>\S{6,})", keywords=("password",), paths=(r"(?:^|/)\.netrc$",))
#: a rule whose keyword ends its match: a secret can end where its file does
SUFFIX_RULE = Rule(id="test-suffix", category="Test", title="suffixed", severity="MEDIUM",
                   regex=r"(?<![a-z0-9])(?P<secret>[a-z0-9]{12})\.secret", keywords=(".secret",))


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
    from analyzerd.secrets.scanner import ANCHORE_MAX_FILE_SIZE, DEFAULT_MAX_FILE_SIZE
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


# --- the stream as the layer analyzer cuts it, and as the scanner's own API takes it ----------

def scan_tar(members, *, step=1 << 20, rules=None, **options):
    """An uncompressed layer through the layer analyzer, ``step`` bytes at a time (each one a
    piece the scanner sees as it is): the LayerResult and the scanner."""
    rule_set = RuleSet(rules or (TOKEN_RULE, ASSIGN_RULE), fingerprint_key=KEY, **options)
    tar = make_layer(members, "pax")
    scanner = rule_set.scanner()
    analyzer = LayerAnalyzer(digest="sha256:" + hashlib.sha256(tar).hexdigest(), size=len(tar),
                             media_type=LAYER_TYPES["none"], secrets=scanner, secret_rules=rule_set.digest)
    for i in range(0, len(tar), step):
        analyzer.feed(tar[i:i + step])
    return analyzer.finish(), scanner


def feed(rule_set, stream, files, step):
    """The scanner driven as the layer analyzer drives it, over ``stream`` cut every ``step``
    bytes; ``files``: (data start, size, path), each added in the piece its data begins in
    (and, when its data runs past that piece, a long one). The findings, sorted."""
    scanner = rule_set.scanner()
    waiting = sorted(files)
    for offset in range(0, len(stream), step):
        end = min(offset + step, len(stream))
        scanner.scan(stream[offset:end])
        while waiting and waiting[0][0] < end:
            start, size, path = waiting.pop(0)
            scanner.add_file(start, size, path)
            if start + size > end:
                scanner.long_file_started()
        scanner.resolve()
    return sorted((f.path, f.rule, f.line, f.offset) for f in scanner.finish())


def found_in(result):
    return sorted((f.path, f.rule, f.line, f.offset) for f in result.secrets)


def test_a_file_at_the_streams_first_byte_and_a_file_that_ends_the_stream_are_searched():
    secret = token(random.Random(6))
    first = f"key = {secret}\n".encode()
    netrc = b"machine h password s3cr3tpw"  # its last byte is the stream's last
    stream = first + bytes(100) + netrc
    files = [(0, len(first), "/srv/first"), (len(first) + 100, len(netrc), "/root/.netrc")]
    for step in (1, 5, len(stream)):
        assert feed(RuleSet((TOKEN_RULE, NETRC_RULE), fingerprint_key=KEY), stream, files, step) == [
            ("/root/.netrc", "test-netrc", 1, netrc.index(b"s3cr3tpw")), ("/srv/first", "test-token", 1, 6)], step


def test_a_secret_at_a_files_last_byte_is_that_files_and_a_neighbours_bytes_make_none():
    """A match that ends at the file's last byte (no newline after it) is the file's; bytes of
    the file that follows, even right after it, neither extend nor make a match."""
    text = b"id = abcdef012345.secret"
    result, _ = scan_tar([Member("srv/key.txt", text)], rules=(SUFFIX_RULE,))
    assert found_in(result) == [("/srv/key.txt", "test-suffix", 1, 5)]
    after = b"345678.secret\n"  # "secret345678.secret" across the two files would match
    for step in (1, 7, 100):
        assert feed(RuleSet((SUFFIX_RULE,), fingerprint_key=KEY), text + after,
                    [(0, len(text), "/srv/key.txt"), (len(text), len(after), "/srv/next.txt")], step) == [
            ("/srv/key.txt", "test-suffix", 1, 5)], step


def test_anchore_rules_match_from_a_lines_start_in_files_and_in_config_values():
    rule = anchore_rule("MY_TOKEN=mytoken=[a-z]{8}")
    text = b"mytoken=abcdefgh\nx mytoken=ijklmnop\n"
    result, _ = scan_tar([Member("etc/app.env", text)], rules=(rule,))
    assert [(f.path, f.rule, f.category, f.severity, f.line, f.offset, f.redacted) for f in result.secrets] == [
        ("/etc/app.env", "MY_TOKEN", "Anchore", "MEDIUM", 1, 0, "mytoken=*****")]
    assert result.secrets[0].fingerprint == hmac.new(KEY, b"mytoken=abcdefgh", hashlib.sha256).hexdigest()
    assert [(m.line, m.start, m.end) for m in RuleSet((rule,), fingerprint_key=KEY).find_in_text(text)] == [(1, 0, 16)]


def test_a_rule_without_a_secret_group_reports_its_whole_match():
    rule = Rule(id="test-bare", category="Bare", title="bare", severity="LOW",
                regex=r"(?<![A-Za-z0-9])tkn_[A-Za-z0-9]{24}", keywords=("tkn_",))
    secret = token(random.Random(8))
    text = f"x\nkey: ({secret})\n".encode()
    result, _ = scan_tar([Member("etc/bare", text)], rules=(rule,))
    assert [(f.rule, f.category, f.severity, f.line, f.offset, f.redacted) for f in result.secrets] == [
        ("test-bare", "Bare", "LOW", 2, text.index(secret.encode()), "tkn_*****")]
    assert result.secrets[0].fingerprint == hmac.new(KEY, secret.encode(), hashlib.sha256).hexdigest()
    matches = RuleSet((rule,), fingerprint_key=KEY).find_in_text(text)
    assert [(m.line, m.start, m.end) for m in matches] == [(2, text.index(secret.encode()),
                                                            text.index(secret.encode()) + 28)]


def test_an_allowed_value_does_not_hide_a_secret_after_it_on_its_line():
    rule = Rule(id=TOKEN_RULE.id, category="Test", title="t", severity="HIGH", regex=TOKEN_RULE.regex,
                keywords=TOKEN_RULE.keywords, allow=(r"tkn_0{24}",))
    secret = token(random.Random(9))
    text = f"EXAMPLE=tkn_{'0' * 24} REAL={secret}\nONLY=tkn_{'0' * 24}\n".encode()
    result, _ = scan_tar([Member("etc/a.env", text)], rules=(rule,))
    assert found_in(result) == [("/etc/a.env", "test-token", 1, text.index(secret.encode()))]
    assert [(m.line, m.start) for m in RuleSet((rule,), fingerprint_key=KEY).find_in_text(text)] == [
        (1, text.index(secret.encode()))]


def test_findings_stop_at_exactly_max_findings_and_the_layer_says_so(monkeypatch):
    monkeypatch.setattr(scanner_module, "MAX_FINDINGS", 3)
    rng = random.Random(10)

    def lines(n):
        return "".join(f"k{i} = {token(rng)}\n" for i in range(n)).encode()

    def netrc(n):
        return b"".join(b"machine m%d password pw%06d\n" % (i, i) for i in range(n))

    for result, scanner in (scan_tar([Member("etc/three", lines(3))]),
                            scan_tar([Member("root/.netrc", netrc(3))], rules=(NETRC_RULE,))):
        assert [f.line for f in result.secrets] == [1, 2, 3]
        assert scanner.truncated is False and result.warnings == []
    for result, scanner in (scan_tar([Member("etc/four", lines(4))]),
                            scan_tar([Member("root/.netrc", netrc(2)), Member("home/u/.netrc", netrc(2))],
                                     rules=(NETRC_RULE,))):
        assert len(result.secrets) == 3
        assert scanner.truncated is True
        assert result.warnings == ["more than 3 secrets found; the rest not recorded"]


def test_keyword_hits_waiting_for_one_resolve_are_kept_up_to_exactly_max_pending(monkeypatch):
    monkeypatch.setattr(scanner_module, "MAX_PENDING", 3)
    rng = random.Random(11)
    for count, kept in ((3, 3), (4, 3)):
        text = "".join(f"k{i} = {token(rng)}\n" for i in range(count)).encode()
        result, _ = scan_tar([Member("etc/keys", text)])
        assert [f.line for f in result.secrets] == list(range(1, kept + 1))


def test_the_file_size_limit_holds_at_exactly_its_bound():
    secret = token(random.Random(12))
    at = f"{secret}\n".encode().ljust(1000, b"#")
    result, _ = scan_tar([Member("etc/at", at), Member("etc/over", at + b"#")], max_file_size=1000)
    assert found_in(result) == [("/etc/at", "test-token", 1, 0)]


def test_path_bound_rules_read_files_of_up_to_exactly_one_window_piece():
    """A file a path-bound rule names is read whole when it is at most WINDOW_PIECE bytes;
    a larger one is not read (its bytes may not all be at hand at once)."""
    text = b"machine h password s3cr3tpw\n"
    result, _ = scan_tar([Member("root/.netrc", text.ljust(WINDOW_PIECE, b"#")),
                          Member("home/u/.netrc", text.ljust(WINDOW_PIECE + 1, b"#"))], rules=(NETRC_RULE,))
    assert found_in(result) == [("/root/.netrc", "test-netrc", 1, text.index(b"s3cr3tpw"))]


def test_a_path_bound_rule_leaves_the_other_rules_in_force_and_an_unanchored_path_still_names_files():
    pypirc = Rule(id="test-pypirc", category="Test", title="pypirc", severity="HIGH",
                  regex=r"password:\s*(?P<secret>\S{6,})", keywords=("password",), paths=(r"(?:^|/)\.pypirc",))
    secret = token(random.Random(13))
    conf = f"api = {secret}\n".encode()
    text = b"[pypi]\npassword: s3cr3tpw\n"
    result, _ = scan_tar([Member("home/u/.pypirc", text), Member("home/u/.pypirc.bak", text),
                          Member("etc/app.conf", conf), Member("etc/other", text)], rules=(pypirc, TOKEN_RULE))
    assert found_in(result) == [("/etc/app.conf", "test-token", 1, 6),
                                ("/home/u/.pypirc", "test-pypirc", 2, text.index(b"s3cr3tpw")),
                                ("/home/u/.pypirc.bak", "test-pypirc", 2, text.index(b"s3cr3tpw"))]


def test_a_rule_without_keywords_is_its_own_prefilter_in_the_stream():
    card = Rule(id="test-card", category="Test", title="card", severity="HIGH",
                regex=r"(?<![0-9])(?P<secret>4[0-9]{3}(?:-[0-9]{4}){3})(?![0-9])", keywords=())
    text = b"name: x\ncard: 4111-1111-1111-1111\n"
    for step in (1, 512, 1 << 20):
        result, _ = scan_tar([Member("etc/pay", text)], rules=(card, TOKEN_RULE), step=step)
        assert found_in(result) == [("/etc/pay", "test-card", 2, text.index(b"4111"))], step


def test_files_skipped_in_a_piece_do_not_stop_the_search_of_the_files_after_them():
    """A keyword in a tar header (before any file's data, or after a file's), a binary file,
    an allowed path: each is passed over, and the files after it in the same piece are still
    searched."""
    rng = random.Random(14)
    named, in_binary, in_text, named_after = token(rng), token(rng), token(rng), token(rng)
    netrc = b"machine h password s3cr3tpw\n"
    members = [Member(f"srv/{named}", kind="dir"),
               Member("usr/bin/tool", b"\x7fELF\x00" + f" {in_binary}\n".encode(), mode=0o755),
               Member("usr/share/doc/app/.netrc", netrc), Member(f"srv/{named_after}", kind="dir"),
               Member("root/.netrc", netrc),
               Member("etc/app.conf", f"key = {in_text}\n".encode())]
    result, _ = scan_tar(members, rules=(TOKEN_RULE, NETRC_RULE), allowed_paths=(r"^/usr/share/doc/",))
    assert found_in(result) == [("/etc/app.conf", "test-token", 1, 6),
                                ("/root/.netrc", "test-netrc", 1, netrc.index(b"s3cr3tpw"))]


def test_a_binary_file_that_streams_in_many_pieces_is_skipped_unless_asked_then_its_lines_are_exact():
    rng = random.Random(15)
    secret = token(rng)
    data = b"\x7fELF\x00" + b"binary data line\n" * 20_000 + f"key = {secret}\n".encode()  # > 5 pieces
    members = [Member("usr/bin/tool", data, mode=0o755)]
    for step in (4096, 100_000):
        assert scan_tar(members, step=step)[0].secrets == []
        result, _ = scan_tar(members, step=step, scan_binary=True)
        assert found_in(result) == [("/usr/bin/tool", "test-token", 20_001, data.index(secret.encode()))], step


@pytest.mark.parametrize("nul_at, binary", [(0, True), (scanner_module.BINARY_SNIFF - 1, True),
                                            (scanner_module.BINARY_SNIFF, False)])
def test_a_file_is_binary_by_its_whole_first_block_however_the_stream_is_cut(nul_at, binary):
    """A NUL in the first BINARY_SNIFF bytes makes a file binary, even when a secret before
    it arrives, its line ended, in an earlier piece than the NUL; one byte later, it is text.
    The same for a file whose start has long left the bytes kept when its (first) secret comes."""
    rng = random.Random(16)
    first, second, third = token(rng), token(rng), token(rng)
    short = bytearray(f"a = {first}\n".encode() + b"x" * (scanner_module.BINARY_SNIFF + 100)
                      + f"\nb = {second}\n".encode())
    short[nul_at] = 0
    long = bytes(short) + b"z" * 200_000 + f"\nc = {third}\n".encode()
    deep = bytearray(b"x" * (scanner_module.BINARY_SNIFF + 100) + b"\n" + b"z" * 200_000 + f"\nc = {third}\n".encode())
    deep[nul_at] = 0  # the file's only secret comes long after its first block
    for data, steps, lines in ((bytes(short), (1, 512, 1 << 20), [1, 3]), (long, (700, 4096, 1 << 20), [1, 3, 5]),
                               (bytes(deep), (700, 4096), [3])):
        for step in steps:
            result, _ = scan_tar([Member("srv/mixed", data)], step=step)
            assert [f.line for f in result.secrets] == ([] if binary else lines), (len(data), step)


def test_hits_and_lines_on_either_side_of_a_window_piece_boundary_are_found():
    """The scanner keeps the piece at hand and the one before. Secrets whose lines ended in a
    piece but wait for the file's first block (it ends in the next piece) are read from the
    piece before; a line cut by a piece boundary waits for its end and is read across both;
    every hit waiting in one resolve is kept (two rules' keywords on one waiting line)."""
    rng = random.Random(20)
    first, second, third = token(rng), token(rng), token(rng)
    start = 2 * WINDOW_PIECE - 200  # in the second piece: by the third, the bytes before it are gone
    text = bytearray(f"a = {first}\nb = {second}\n".encode())
    while len(text) < 2 * WINDOW_PIECE:
        text += b"filler text, no secret in it\n"
    text[scanner_module.BINARY_SNIFF + 1000] = 0  # after the first block: a text file still
    cut = f"password = {third}\n".encode()
    at = WINDOW_PIECE + 200 - 30  # "password" and the token's keyword before a piece boundary, its end after
    text[at:at + len(cut)] = cut
    text[at - 1:at] = b"\n"
    text = bytes(text[:2 * WINDOW_PIECE])
    stream = bytes(start) + text + bytes(100)
    line = text[:at].count(b"\n") + 1
    assert feed(RuleSet((TOKEN_RULE, ASSIGN_RULE), fingerprint_key=KEY), stream,
                [(start, len(text), "/srv/big")], WINDOW_PIECE) == sorted([
        ("/srv/big", "test-token", 1, 4), ("/srv/big", "test-token", 2, 33 + 4),
        ("/srv/big", "test-token", line, at + 11), ("/srv/big", "test-assign", line, at + 11)])


def test_a_file_cut_short_by_the_end_of_the_stream_is_searched_as_far_as_it_goes():
    """A truncated layer: the stream ends inside a file (no newline, and less than its first
    block): what came of it is judged and searched at the end."""
    secret = token(random.Random(21))
    data = f"key = {secret}".encode()
    stream = bytes(50) + data
    for step in (1, 7, len(stream)):
        assert feed(RuleSet((TOKEN_RULE,), fingerprint_key=KEY), stream, [(50, 20_000, "/srv/cut")], step) == [
            ("/srv/cut", "test-token", 1, 6)], step


def test_a_rule_looks_region_after_bytes_past_its_keyword_and_reports_the_secret_group():
    """A value that ends exactly REGION_AFTER bytes after its keyword's end is found (the
    fingerprint is the secret group's, not the whole match's); one byte further, it is not."""
    value = b"s3cr3tpw"
    pad = scanner_module.REGION_AFTER - len(b" =") - len(value)
    text = b"password =" + b" " * pad + value + b"\npassword =" + b" " * (pad + 1) + value + b"\n"
    result, _ = scan_tar([Member("etc/app.ini", text)], rules=(ASSIGN_RULE,))
    assert [(f.line, f.offset, f.fingerprint) for f in result.secrets] == [
        (1, text.index(value), hmac.new(KEY, value, hashlib.sha256).hexdigest())]


def test_a_secret_is_looked_for_on_its_keywords_line_only():
    text = b"password =\nhunter2hunter2\npassword\n= hunter2hunter2\n\npassword = s3cr3tpassword\n"
    result, _ = scan_tar([Member("etc/app.ini", text)], rules=(ASSIGN_RULE,))
    assert found_in(result) == [("/etc/app.ini", "test-assign", 6, text.index(b"s3cr3t"))]


def test_a_last_line_without_a_newline_is_searched_when_much_more_follows():
    secret = token(random.Random(17))
    members = [Member("srv/a.env", f"key = {secret}".encode()), Member("srv/big", b"filler\n" * 40_000)]
    for step in (512, 4096):
        result, _ = scan_tar(members, step=step)
        assert found_in(result) == [("/srv/a.env", "test-token", 1, 6)], step


def test_a_line_longer_than_max_line_is_read_max_line_bytes_each_side_of_the_keyword():
    """An Anchore rule matches the whole line: on a line of exactly MAX_LINE bytes each side
    of its keyword's end, all of it; one byte more each side, MAX_LINE bytes each side."""
    rule = anchore_rule("LONG=.*mytoken=[a-z]{8}.*")
    keyword = b"mytoken="
    exact = b"x" * (MAX_LINE - len(keyword)) + keyword + b"abcdefgh" + b"y" * (MAX_LINE - 8)
    longer = b"x" + exact + b"y"
    text = exact + b"\n" + longer + b"\n"
    result, _ = scan_tar([Member("srv/min.js", text)], rules=(rule,))
    got = [(f.line, f.offset, f.fingerprint, f.redacted) for f in result.secrets]
    read = longer[1:-1]
    assert got == [(1, 0, hmac.new(KEY, exact, hashlib.sha256).hexdigest(), f"<redacted: {2 * MAX_LINE} chars, fp "
                    f"{hmac.new(KEY, exact, hashlib.sha256).hexdigest()[:8]}>"),
                   (2, len(exact) + 2, hmac.new(KEY, read, hashlib.sha256).hexdigest(),
                    f"<redacted: {2 * MAX_LINE} chars, fp {hmac.new(KEY, read, hashlib.sha256).hexdigest()[:8]}>")]


def test_layers_scanned_at_once_in_threads_each_find_their_own_secrets():
    """Layers are scanned in parallel threads with one rule set: each scanner has its own
    Hyperscan scratch space, so neither fails nor sees the other's secrets."""
    rule_set = RuleSet((TOKEN_RULE,), fingerprint_key=KEY)
    piece = b"nothing to see here, only the bytes of a big layer; " * 20_000  # 1 MB
    secrets = [token(random.Random(seed)) for seed in (18, 19)]
    barrier = threading.Barrier(2)
    found, errors = {}, []
    pieces = 500  # Hyperscan runs without the GIL: the two scans overlap

    def run(n):
        scanner = rule_set.scanner()
        try:
            barrier.wait()
            for _ in range(pieces):
                scanner.scan(piece)
                scanner.resolve()
            data = f"key = {secrets[n]}\n".encode()
            scanner.add_file(pieces * len(piece), len(data), f"/srv/{n}")
            scanner.scan(data)
            scanner.resolve()
            found[n] = [(f.path, f.line, f.offset, f.fingerprint) for f in scanner.finish()]
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert found == {n: [(f"/srv/{n}", 1, 6, hmac.new(KEY, secrets[n].encode(), hashlib.sha256).hexdigest())]
                     for n in (0, 1)}


def test_build_rule_set_takes_the_configured_size_limit_and_fingerprint_key():
    secret = b"tkn_" + b"A" * 24
    assert build_rule_set(max_file_size=500).max_file_size == 500
    assert build_rule_set(fingerprint_key=KEY).fingerprint(secret) == hmac.new(KEY, secret, hashlib.sha256).hexdigest()
    # no key given: the empty key, as a RuleSet built without one
    assert build_rule_set().fingerprint(secret) == RuleSet(()).fingerprint(secret) == hmac.new(
        b"", secret, hashlib.sha256).hexdigest()


def test_build_rule_set_refuses_a_configuration_naming_the_rule_at_fault():
    with pytest.raises(ValueError, match=r"^secret_search\.disabled_rules: no rule named nope, zap$"):
        build_rule_set(disabled=("zap", "nope"))
    twice = {"id": "dup", "regex": r"(?P<secret>dup_[a-z]{8})", "keywords": ["dup_"]}
    with pytest.raises(ValueError, match=r"^secret rule dup: two rules have this id$"):
        build_rule_set(extra=(twice, twice))
    with pytest.raises(ValueError, match=r"^secret rule bad: the regex does not compile: missing \), unterminated"):
        build_rule_set(extra=({"id": "bad", "regex": "(unclosed", "keywords": ["unc"]},))
    with pytest.raises(ValueError, match=r"^secret rules: a rule without keywords cannot be used as a prefilter "
                                         r"\(.+\); give it keywords$"):
        build_rule_set(extra=({"id": "python-only", "regex": r"(?a)secret_[a-z]+"},))


def test_rules_sharing_a_keyword_are_one_hyperscan_pattern_and_each_is_run():
    """Keywords are Hyperscan patterns, each once (lowercase, escaped) however many rules
    share it, beside the keywordless rules' own regexes; a hit runs every rule of its keyword."""
    twin = Rule(id="test-twin", category="Test", title="twin", severity="LOW",
                regex=r"(?P<secret>TKN_[A-Z0-9]{24})", keywords=("tkn_",))
    card = Rule(id="test-card", category="Test", title="card", severity="HIGH",
                regex=r"(?P<secret>4[0-9]{3}(?:-[0-9]{4}){3})", keywords=())
    rule_set = RuleSet((TOKEN_RULE, twin, card), fingerprint_key=KEY)
    assert sorted(rule_set.patterns) == sorted([card.regex.encode(), b"tkn_"])
    text = b"a = tkn_" + b"A1" * 12 + b"\nb = TKN_" + b"B2" * 12 + b"\n"
    result, _ = scan_tar([Member("etc/keys", text)], rules=(TOKEN_RULE, twin, card))
    assert found_in(result) == [("/etc/keys", "test-token", 1, 4), ("/etc/keys", "test-twin", 2, 37)]


# Mutation survivors that cannot matter (tools/mutation.sh secrets):
# - scanner RuleSet.__post_init__: every change to `_file_tails` (always None, never None, `"" not in tails`,
#   `"XXXX" in tails`): the tails only turn files away before the rules' own path regexes, which decide alone
#   (a tail of "" passes every path; _literal_tail is tested to give only what every matching path ends with).
# - scanner RuleSet.__post_init__: `ids=None` or no `ids` in `Database.compile`: python-hyperscan numbers the
#   expressions 0..n-1 when given no ids, which are the ids passed.
# - scanner RuleSet.find_in_text: `continue` -> `break` after `found is None`: only Anchore's one-element
#   `[regex.match(line)]` can hold None, so there is nothing after it to skip.
# - scanner SecretScanner.__init__/scan/finish: `match_event_handler=None` (or left out) in `stream()`,
#   `stream.scan()` or `stream.close()`: python-hyperscan uses the handler the stream was opened with when a
#   call gives none, and the other calls still pass `self._callback` (kept referenced by the scanner).
# - scanner SecretScanner.__init__: `self._previous = None` / `b"XXXX"`: it is read only for bytes before
#   `_current_start`, which is 0 until the first roll replaces `_previous`.
# - scanner SecretScanner.scan: `len(self._current) > WINDOW_PIECE` for `>=`: a piece of exactly WINDOW_PIECE
#   bytes is joined with the next instead of rolled: more bytes are kept, none fewer; every hit's line, a
#   file's first block and a path-bound file (<= WINDOW_PIECE) fit either way (tests above at the boundary).
# - scanner SecretScanner.add_file: `data_start > ...` for `>=`, `_open_long - size`: in a tar stream the next
#   file's data starts at least a header past the long file's end, so the long file is closed either way.
# - scanner SecretScanner._count_long: `_binary(..., None)` (None is falsy like False); `end >= state[1]`: an
#   empty chunk counts no newline.
# - scanner SecretScanner.resolve: `len(self.findings) > MAX_FINDINGS`: this check only stops early; _match
#   refuses the finding past MAX_FINDINGS and sets `truncated` the same (test at the bound above).
# - scanner SecretScanner.resolve: `bisect_right(..., end - 2)`: it differs only for a keyword whose last byte
#   is a file's first, i.e. that begins before the file: the line is cut at the file's start, so no rule's
#   regex (which contains the keyword) can match there; both forms report nothing.
# - scanner SecretScanner.resolve: `wanted = None`, `verdicts.get(None)`, `verdicts[index] = None`: the verdict
#   is then worked out again for each hit, from the same complete first block (or a long file's recorded one):
#   the same answer.
# - scanner SecretScanner.resolve: `max(start, end - MAX_LINE)` without `_previous_start`, and `break` for
#   `continue` after `before is None`: a hit waits at most MAX_LINE or BINARY_SNIFF bytes (both < WINDOW_PIECE),
#   so its line's first bytes are always at hand: `before` is never None (unreachable bound).
# - scanner SecretScanner._read_whole_files: `break` for `continue` on a file still arriving: in a tar stream a
#   file is added only after the one before has ended, so a waiting file is always the last one listed.
# - scanner SecretScanner._read_whole_files: `_wanted(index, None/False)`: the file is wholly at hand, so its
#   first block is complete and `final` decides nothing.
# - scanner SecretScanner._wanted: `state is not None or state[3] is False`: a binary long file is not counted,
#   so a hit in it has no line number and gives no finding either way; a file without a record never gets
#   here (one that spans pieces is always a long one).
# - scanner SecretScanner._line_end: `or b"XXXX"`: the fallback is used only for an empty tail, where neither
#   holds a newline.
# - scanner SecretScanner._line_number: `(counted is None) and False`, `(between is None) and False`,
#   `(upto >= line_start) or True`: the line's bytes are always at hand and a long file is counted up to the
#   line first, so neither window is None and `upto >= line_start` always holds.
# - scanner SecretScanner._binary: `head_end < window_end` for `<=`: a first block ending exactly at the bytes'
#   end is judged one piece later (or at the end): the same verdict, and the waiting hit is still at hand.
# - scanner SecretScanner._window: `and` for either `or` in the guard, `begin > _current_start`,
#   `end < _current_start`: no caller asks for bytes before the previous piece, past the current one, or
#   backwards (none does in these tests either), and at `begin == _current_start` / `end == _current_start` both
#   branches slice the same bytes.
# - scanner SecretScanner.finish: `self._stream = ""`: finish is called once; nothing reads the stream after.
# - scanner _literal_tail: `i >= 0` (at i == 0, `path_regex[-1]` is the final "$", never "\\");
#   `"XX.-/_XX"` (`\X` does not compile in a path regex); `"XX-_/XX"` ("X" is alphanumeric already).
# - scanner build_rule_set: `mode="XXdefaultXX"` / `"DEFAULT"`: every mode but "anchore" is the default mode.
# - scanner _rule_from_mapping: default severity `"high"`: it is upper-cased at once.
