"""Secrets in a layer, found in the same pass that hashes its files.

The whole uncompressed layer stream (tar headers and all) goes through one Hyperscan
stream of every rule's keywords: C code at GB/s, no Python work per file or per chunk,
and matches across chunk boundaries come for free. A keyword hit is mapped to the file
whose data holds it (the layer analyzer registers each file's data offset), and only then
does Python run: the rules of that keyword are matched against the line around the hit.

Sans-IO like the rest of the middle: ``scan(piece)`` before the tar reader sees a piece,
``add_file()`` for each regular file the reader meets, ``resolve()`` after the reader has
consumed the piece, ``finish()`` at the end. Only the last two pieces are kept (the line
around a hit), so memory does not depend on file sizes.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Final

import hyperscan

from ..model import SecretFinding
from .redaction import REDACTION_VERSION, Affixes, affixes_of, hint
from .rules import ANCHORE_RULES, DEFAULT_ALLOWED_PATHS, RULES, Rule, anchore_rule, engine_regex

__all__ = ["MAX_LINE", "RuleSet", "SecretFinding", "SecretScanner", "TextMatch", "build_rule_set"]

#: Anchore Engine's MAXFILESIZE default: larger files are not searched in anchore mode.
ANCHORE_MAX_FILE_SIZE: Final = 10000
#: The default mode reads much larger files: keys hide in big configuration bundles.
DEFAULT_MAX_FILE_SIZE: Final = 100 * 1024 * 1024

#: Bytes of a line looked at on each side of a keyword: a line longer than this is read in
#: part (minified bundles have megabyte lines; a token is never that long).
MAX_LINE: Final = 4096
#: How far from a keyword hit a rule's regex looks: before it (a name the value is assigned
#: to) and after it (the token itself; JWTs run to a few hundred bytes).
REGION_BEFORE: Final = 256
REGION_AFTER: Final = 1024
#: Bytes at the start of a file that decide whether it is binary (git's heuristic: a NUL).
BINARY_SNIFF: Final = 8000
#: The bytes kept at hand are the current piece and the one before, each at least this
#: long (small pieces are joined): a hit's line and a small file's first block are in them.
WINDOW_PIECE: Final = 64 * 1024
#: Findings kept per layer: a hostile layer cannot fill the database with them.
MAX_FINDINGS: Final = 10_000
#: Keyword hits kept waiting for the rest of their line.
MAX_PENDING: Final = 100_000


@dataclass(frozen=True, slots=True)
class _Compiled:
    rule: Rule
    regex: re.Pattern[bytes]
    allow: tuple[re.Pattern[bytes], ...]
    paths: tuple[re.Pattern[str], ...]
    has_secret_group: bool
    affixes: Affixes  #: the public literals a hint may show (secrets.redaction)


@dataclass(frozen=True, slots=True)
class TextMatch:
    """A secret in a piece of text (``RuleSet.find_in_text``): where it is, and what a
    finding says of it. The secret itself is not kept."""

    rule: Rule
    start: int  #: byte offset of the secret in the text
    end: int
    line: int  #: 1-based
    redacted: str
    fingerprint: str


@dataclass(slots=True)
class RuleSet:
    """Rules compiled once per configuration and shared by every layer's scanner."""

    rules: tuple[Rule, ...]
    allowed_paths: tuple[str, ...] = ()
    max_file_size: int = 100 * 1024 * 1024
    scan_binary: bool = False
    fingerprint_key: bytes = b""
    _database: Any = field(init=False, repr=False)
    #: what each Hyperscan pattern id stands for (keywords, escaped; or a rule's own regex)
    patterns: tuple[bytes, ...] = field(init=False, repr=False)
    _file_rules: tuple[_Compiled, ...] = field(init=False, repr=False)
    _file_tails: tuple[str, ...] | None = field(init=False, repr=False)
    _by_pattern: list[tuple[_Compiled, ...]] = field(init=False, repr=False)
    _allowed: tuple[re.Pattern[str], ...] = field(init=False, repr=False)
    #: the rules not bound to file paths, in rule order (what ``find_in_text`` runs)
    _text_rules: tuple[_Compiled, ...] = field(init=False, repr=False)
    _close_lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        expressions: list[bytes] = []
        flags: list[int] = []
        by_pattern: list[tuple[_Compiled, ...]] = []
        by_keyword: dict[bytes, list[_Compiled]] = {}
        file_rules: list[_Compiled] = []
        text_rules: list[_Compiled] = []
        for rule in self.rules:
            regex = re.compile(engine_regex(rule).encode())
            compiled = _Compiled(rule, regex, tuple(re.compile(a.encode()) for a in rule.allow),
                                 tuple(re.compile(p) for p in rule.paths), "secret" in regex.groupindex,
                                 affixes_of(engine_regex(rule)))
            if rule.paths:  # read whole, for the few files whose path it names
                file_rules.append(compiled)
                continue
            text_rules.append(compiled)
            if rule.keywords:
                for keyword in rule.keywords:
                    by_keyword.setdefault(keyword.lower().encode(), []).append(compiled)
            else:  # no keyword: the rule's own regex, loosened by Hyperscan, is the prefilter
                expressions.append(rule.regex.encode())
                flags.append(hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_ALLOWEMPTY)
                by_pattern.append((compiled,))
        for keyword, compiled_rules in by_keyword.items():
            expressions.append(re.escape(keyword))
            flags.append(hyperscan.HS_FLAG_CASELESS)
            by_pattern.append(tuple(compiled_rules))
        self._by_pattern = by_pattern
        self._file_rules = tuple(file_rules)
        self._text_rules = tuple(text_rules)
        tails = {_literal_tail(p) for c in file_rules for p in c.rule.paths}
        #: what every path a file rule names ends with: most files are turned away in C
        self._file_tails: tuple[str, ...] | None = None if "" in tails else tuple(sorted(tails))
        self.patterns = tuple(expressions)
        self._allowed = tuple(re.compile(p) for p in self.allowed_paths)
        self._database = None
        if expressions:
            self._database = hyperscan.Database(mode=hyperscan.HS_MODE_STREAM)
            self._database.compile(expressions=expressions, ids=list(range(len(expressions))), flags=flags)

    @property
    def key_id(self) -> str:
        """Names the fingerprint key without revealing it: an HMAC of a fixed text under it."""
        return hmac.new(self.fingerprint_key, b"analyzerd fingerprint key id", hashlib.sha256).hexdigest()[:16]

    @property
    def digest(self) -> str:
        """Identifies what the rules find, and under which fingerprint key: stored layer
        results of another rule set are stale, and so are those of another key (hosts that
        share a database but not the key file do not mix their fingerprints)."""
        text = repr((sorted((r.id, r.regex, r.keywords, r.paths, r.allow, r.anchore) for r in self.rules),
                     self.allowed_paths, self.max_file_size, self.scan_binary, self.key_id, REDACTION_VERSION))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def scanner(self) -> SecretScanner:
        return SecretScanner(self)

    def fingerprint(self, secret: bytes) -> str:
        """The keyed fingerprint findings carry: HMAC-SHA256 under the installation's key, hex."""
        return hmac.new(self.fingerprint_key, secret, hashlib.sha256).hexdigest()

    def find_in_text(self, text: bytes, *, limit: int = MAX_FINDINGS) -> list[TextMatch]:
        """Secrets in a short text that is not a file (a value of the image config), found
        by the rules a file of no particular path is searched with, line by line, as the
        layer scanner applies them: keywords select a line (case-insensitively), Anchore's
        rules match from its start, allowed values are not reported. Every occurrence on a
        line is reported, not only the first, so that redacting them all leaves none.
        At most ``limit`` matches."""
        out: list[TextMatch] = []
        line_start = 0
        for number, line in enumerate(text.split(b"\n"), 1):
            lowered = line.lower()
            for compiled in self._text_rules:
                rule = compiled.rule
                if rule.keywords and not any(k.encode() in lowered for k in rule.keywords):
                    continue
                matches = [compiled.regex.match(line)] if rule.anchore else compiled.regex.finditer(line)
                for found in matches:
                    if found is None:
                        continue
                    group = "secret" if compiled.has_secret_group else 0
                    secret = found.group(group)
                    if not secret or any(a.search(secret) for a in compiled.allow):
                        continue
                    fingerprint = self.fingerprint(secret)
                    out.append(TextMatch(rule, line_start + found.start(group), line_start + found.end(group), number,
                                         hint(secret, fingerprint, compiled.affixes), fingerprint))
                    if len(out) >= limit:
                        return out
            line_start += len(line) + 1
        return out


class SecretScanner:
    def __init__(self, rules: RuleSet) -> None:
        self._rules = rules
        self._hits: list[tuple[int, int]] = []  # (pattern id, end offset)
        self._stream: Any = None
        # Hyperscan keeps no reference to the callback (a bound method made on the fly is
        # freed under it: a crash), and a scratch space must not serve two scans at once
        # (layers are scanned in parallel threads): each scanner holds its own of both.
        self._callback = self._on_match
        if rules._database is not None:
            self._scratch = rules._database.scratch.clone()
            self._stream = rules._database.stream(match_event_handler=self._callback)
            self._stream.__enter__()
        # the current piece and the one before it: the bytes a hit's line is read from
        self._previous = b""
        self._previous_start = 0
        self._current = b""
        self._current_start = 0
        # regular files' data: start offsets (ascending), sizes, paths
        self._starts: list[int] = []
        self._sizes: list[int] = []
        self._paths: list[str] = []
        # files that began more than a piece before their hits: what their first block
        # showed (binary?) and newlines counted so far, keyed by start offset
        self._long: dict[int, list[Any]] = {}
        self._open_long: int | None = None
        self._seen: set[tuple[int, str, int]] = set()  # (file start, rule, line)
        self._verdicts: dict[int, bool] = {}  # file index: are its hits looked at?
        # files some path-bound rules (.netrc, .pgpass, ...) apply to: (file index, rules),
        # read whole from the bytes at hand once they are all there
        self._whole: list[tuple[int, tuple[_Compiled, ...]]] = []
        self.findings: list[SecretFinding] = []
        self.truncated = False

    def _on_match(self, pattern: int, start: int, end: int, flags: int, context: object) -> None:
        if len(self._hits) < MAX_PENDING:
            self._hits.append((pattern, end))

    # -- feeding -------------------------------------------------------------------------

    def scan(self, piece: bytes) -> None:
        """The next piece of the uncompressed layer stream, before the tar reader sees it."""
        if self._open_long is not None:
            self._count_long(self._current_start + len(self._current))
        if len(self._current) >= WINDOW_PIECE:
            self._previous, self._previous_start = self._current, self._current_start
            self._current_start += len(self._current)
            self._current = bytes(piece)
        else:  # small pieces are joined, so the bytes at hand never fall below a piece's worth
            self._current += piece
        if self._stream is not None:
            self._stream.scan(piece, scratch=self._scratch, match_event_handler=self._callback)

    def add_file(self, data_start: int, size: int, path: str) -> None:
        """A regular file whose data begins at ``data_start`` in the stream."""
        if self._open_long is not None and data_start >= self._open_long + self._long[self._open_long][2]:
            self._count_long(data_start)  # to its end, while that is at hand
            self._open_long = None
        self._starts.append(data_start)
        self._sizes.append(size)
        self._paths.append(path)
        rules = self._rules
        if rules._file_rules and (rules._file_tails is None or path.endswith(rules._file_tails)) \
                and size <= WINDOW_PIECE:
            chosen = tuple(c for c in rules._file_rules if any(p.search(path) for p in c.paths))
            if chosen:
                self._whole.append((len(self._starts) - 1, chosen))

    def long_file_started(self) -> None:
        """The file added last streams in more than one piece of data: count its lines as
        they pass, and tell from its first block, once that is all at hand (before it leaves
        the bytes kept), whether it is binary."""
        if not self._starts:
            return
        start, size = self._starts[-1], self._sizes[-1]
        # [newlines counted, counted up to offset, size, binary (None: its first block is not all at hand yet)]
        self._long[start] = [0, start, size, None]
        self._open_long = start
        self._count_long(start)

    def _count_long(self, upto: int) -> None:
        assert self._open_long is not None
        state = self._long[self._open_long]
        if state[3] is None:
            state[3] = self._binary(self._open_long, state[2], False)
            if state[3] and not self._rules.scan_binary:
                self._open_long = None  # its hits are not looked at: no line numbers needed
                return
        end = min(upto, self._open_long + state[2])
        if end > state[1]:
            chunk = self._window(state[1], end)
            if chunk is not None:
                state[0] += chunk.count(b"\n")
                state[1] = end

    # -- resolving hits ----------------------------------------------------------------

    def resolve(self, final: bool = False) -> None:
        """Turn the keyword hits into findings, now that the files they fall in are known.
        A hit whose line runs past the bytes at hand waits for the next piece."""
        if self._whole:
            self._read_whole_files()
        if not self._hits:
            return
        hits, self._hits = self._hits, []
        window_end = self._current_start + len(self._current)
        verdicts = self._verdicts
        for pattern, end in hits:
            if len(self.findings) >= MAX_FINDINGS:
                self.truncated = True
                return
            index = bisect.bisect_right(self._starts, end - 1) - 1
            if index < 0:
                continue
            start, size = self._starts[index], self._sizes[index]
            if end > start + size:
                continue  # in a tar header, padding, or a file's name: not file data
            wanted = verdicts.get(index)
            if wanted is None:
                wanted = self._wanted(index, final)
                if wanted is None:
                    self._hits.append((pattern, end))  # its first block is not all at hand yet
                    continue
                verdicts[index] = wanted
            if not wanted:
                continue
            line_end = self._line_end(end, start + size, window_end, final)
            if line_end is None:
                self._hits.append((pattern, end))  # the rest of the line comes next piece
                continue
            line_floor = max(start, end - MAX_LINE, self._previous_start)
            before = self._window(line_floor, end)
            if before is None:
                continue
            line_start = line_floor + before.rfind(b"\n") + 1
            line = self._window(line_start, line_end)
            if line is not None:
                self._check(pattern, index, line_start, line, end - line_start)

    def _read_whole_files(self) -> None:
        """Run path-bound rules over each line of their (small) files, once a file's bytes
        are all at hand; files whose bytes are not (a file larger than what is kept) are
        given up."""
        window_end = self._current_start + len(self._current)
        waiting = []
        for index, chosen in self._whole:
            start, size = self._starts[index], self._sizes[index]
            if start + size > window_end:
                waiting.append((index, chosen))
                continue
            content = self._window(start, start + size)
            if content is None or not self._wanted(index, True):
                continue
            line_start = 0
            for line in content.split(b"\n"):
                for compiled in chosen:
                    self._match(compiled, index, start + line_start, line, 0, len(line))
                line_start += len(line) + 1
        self._whole = waiting

    def _wanted(self, index: int, final: bool) -> bool | None:
        """Whether hits in this file are looked at: not too large, not an allowed path,
        and text (unless binary files are scanned). Decided once per file, from its whole
        first block: None while that is not all at hand (``final``: what came decides)."""
        rules = self._rules
        start, size, path = self._starts[index], self._sizes[index], self._paths[index]
        if size > rules.max_file_size or any(allowed.search(path) for allowed in rules._allowed):
            return False
        if rules.scan_binary:
            return True
        if start >= self._previous_start:
            binary = self._binary(start, size, final)
            return None if binary is None else not binary
        state = self._long.get(start)
        return state is not None and state[3] is False

    def _line_end(self, end: int, file_end: int, window_end: int, final: bool) -> int | None:
        limit = min(file_end, end + MAX_LINE)
        available = min(limit, window_end)
        tail = self._window(end, available) or b""
        newline = tail.find(b"\n")
        if newline >= 0:
            return end + newline
        if available < limit and not final:
            return None
        return available

    def _check(self, pattern: int, index: int, line_start: int, line: bytes, hit: int) -> None:
        """Run the rules of a keyword on the line around a hit (``hit``: where the keyword
        ends in the line). Rules search near the hit only: a regex search costs time in
        proportion to the text, and lines can be kilobytes of minified code or base64."""
        rules = self._rules
        near, far = max(0, hit - REGION_BEFORE), min(len(line), hit + REGION_AFTER)
        for compiled in rules._by_pattern[pattern]:
            self._match(compiled, index, line_start, line, near, far)

    def _match(self, compiled: _Compiled, index: int, line_start: int, line: bytes, near: int, far: int) -> None:
        """One rule on one line (``line_start``: its offset in the stream); a match is a finding."""
        rule = compiled.rule
        start = self._starts[index]
        # lookbehinds still see the bytes before ``near``; Anchore's rules match whole lines
        matches = [compiled.regex.match(line)] if rule.anchore else compiled.regex.finditer(line, near, far)
        for found in matches:
            if found is None:
                return
            secret = found.group("secret") if compiled.has_secret_group else found.group(0)
            if secret is not None and not any(a.search(secret) for a in compiled.allow):
                break
        else:
            return  # none, or only allowed values: an allowed value does not hide a secret after it
        number = self._line_number(start, line_start)
        if number is None or (start, rule.id, number) in self._seen:
            return
        if len(self.findings) >= MAX_FINDINGS:  # files read whole (.netrc...) are bounded here
            self.truncated = True
            return
        self._seen.add((start, rule.id, number))
        position = found.start("secret") if compiled.has_secret_group else found.start()
        fingerprint = self._rules.fingerprint(secret)
        self.findings.append(SecretFinding(
            path=self._paths[index], rule=rule.id, category=rule.category, severity=rule.severity, line=number,
            offset=line_start - start + position, redacted=hint(secret, fingerprint, compiled.affixes),
            fingerprint=fingerprint))

    def _line_number(self, start: int, line_start: int) -> int | None:
        """1-based number of the line beginning at ``line_start`` in the file at ``start``."""
        if start >= self._previous_start:  # the whole file so far is at hand
            counted = self._window(start, line_start)
            return None if counted is None else counted.count(b"\n") + 1
        state = self._long.get(start)
        if state is None:
            return None
        if self._open_long == start:
            self._count_long(line_start)
        counted, upto = state[0], state[1]
        between = self._window(line_start, upto) if upto >= line_start else None
        return None if between is None else counted - between.count(b"\n") + 1

    def _binary(self, start: int, size: int, final: bool) -> bool | None:
        """Whether the file at ``start`` is binary: a NUL in its first block (BINARY_SNIFF
        bytes). None while that block is not all at hand, unless ``final`` (the stream ended)."""
        window_end = self._current_start + len(self._current)
        head_end = start + min(BINARY_SNIFF, size)
        head = self._window(start, min(head_end, window_end))
        if head is None:
            return None
        if b"\0" in head:
            return True
        return False if head_end <= window_end or final else None

    def _window(self, begin: int, end: int) -> bytes | None:
        """Stream bytes [begin, end) from the two pieces at hand; None if not all at hand."""
        if begin < self._previous_start or end > self._current_start + len(self._current) or begin > end:
            return None
        if begin >= self._current_start:
            return self._current[begin - self._current_start:end - self._current_start]
        if end <= self._current_start:
            return self._previous[begin - self._previous_start:end - self._previous_start]
        return (self._previous[begin - self._previous_start:]
                + self._current[:end - self._current_start])

    def finish(self) -> list[SecretFinding]:
        if self._stream is not None:
            # Closing reports matches that only the stream's end completes. It must use the
            # database's own scratch (python-hyperscan 0.9.1 crashes when close() is given
            # one), which one close at a time may use.
            with self._rules._close_lock:
                self._stream.close(match_event_handler=self._callback)
            self._stream = None
        self.resolve(final=True)
        return self.findings


def _literal_tail(path_regex: str) -> str:
    """The literal text every path ``path_regex`` finds ends with ("" if none can be told):
    ``(?:^|/)\\.git-credentials$`` gives ".git-credentials"."""
    if not path_regex.endswith("$") or path_regex.startswith("(?i"):
        return ""
    tail: list[str] = []
    i = len(path_regex) - 2
    while i >= 0:
        char = path_regex[i]
        if i > 0 and path_regex[i - 1] == "\\" and char in ".-/_":
            tail.append(char)
            i -= 2
        elif char.isalnum() or char in "-_/":
            tail.append(char)
            i -= 1
        else:
            break
    # what stopped the walk (a quantifier, a group, a class) applies to what precedes it
    return "".join(reversed(tail))


def build_rule_set(*, mode: str = "default", extra: tuple[Any, ...] = (), disabled: tuple[str, ...] = (),
                   allowed_paths: tuple[str, ...] = (), max_file_size: int | None = None,
                   scan_binary: bool = False, fingerprint_key: bytes = b"") -> RuleSet:
    """The rule set a ``secret_search:`` configuration asks for. Raises ValueError naming
    the rule at fault (a bad regex, an unknown disabled id)."""
    if mode == "anchore":
        # Anchore's rules and nothing else; a configured list replaces the five defaults
        chosen = [anchore_rule(e) if isinstance(e, str) else _rule_from_mapping(e) for e in extra] \
            if extra else list(ANCHORE_RULES)
        allowed = tuple(allowed_paths)
        size = ANCHORE_MAX_FILE_SIZE if max_file_size is None else max_file_size
    else:
        chosen = list(RULES) + [anchore_rule(e) if isinstance(e, str) else _rule_from_mapping(e) for e in extra]
        allowed = DEFAULT_ALLOWED_PATHS + tuple(allowed_paths)
        size = DEFAULT_MAX_FILE_SIZE if max_file_size is None else max_file_size
    known = {r.id for r in chosen}
    unknown = sorted(set(disabled) - known)
    if unknown:
        raise ValueError(f"secret_search.disabled_rules: no rule named {', '.join(unknown)}")
    chosen = [r for r in chosen if r.id not in disabled]
    seen: set[str] = set()
    for rule in chosen:
        if rule.id in seen:
            raise ValueError(f"secret rule {rule.id}: two rules have this id")
        seen.add(rule.id)
        try:
            re.compile(rule.regex.encode())
        except re.error as exc:
            raise ValueError(f"secret rule {rule.id}: the regex does not compile: {exc}") from None
    try:
        return RuleSet(tuple(chosen), allowed_paths=allowed, max_file_size=size, scan_binary=scan_binary,
                       fingerprint_key=fingerprint_key)
    except hyperscan.error as exc:
        raise ValueError(f"secret rules: a rule without keywords cannot be used as a prefilter ({exc}); "
                         "give it keywords") from None


def _rule_from_mapping(entry: dict[str, Any]) -> Rule:
    name = entry.get("id")
    if not isinstance(name, str) or not isinstance(entry.get("regex"), str):
        raise ValueError(f"secret rule {entry!r}: needs an id and a regex")
    try:
        return Rule(id=name, category=str(entry.get("category", "Custom")), title=str(entry.get("title", name)),
                    severity=str(entry.get("severity", "HIGH")).upper(), regex=entry["regex"],
                    keywords=tuple(k.lower() for k in entry.get("keywords", ())),
                    paths=tuple(entry.get("paths", ())), allow=tuple(entry.get("allow", ())))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"secret rule {name}: {exc}") from None
