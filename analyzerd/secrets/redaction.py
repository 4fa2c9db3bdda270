"""What a finding shows of its secret: the rule's public literals, and nothing private.

A secret is shown as the text its rule spells out literally at its start and end (``AKIA``
of an AWS key id, ``ghp_`` of a GitHub token, ``-----BEGIN `` and ``PRIVATE KEY-----`` of a
PEM marker) with ``*****`` between them. Those literals are derived from the rule's own
pattern (the ``secret`` group, else the whole regex), never from a hand-kept list, so a
rule added tomorrow is redacted the same way. A secret whose rule has no literal at its
start or end (a password, an AWS secret key) is shown as its length and the first 8 hex
digits of its keyed fingerprint: ``<redacted: 4 chars, fp 1a2b3c4d>``; no character of it.

What counts as public, walking the pattern from one end until the first part that is not:

- a literal printable ASCII character (under ``(?i)`` a letter matches either case, and
  the secret's own case is shown: the case of a public word is not private);
- a run of one literal character (``-+`` in ``-+BEGIN``);
- an alternation of literal strings (``(?:AKIA|ASIA)``, ``(?:xoxe\\.)?``);
- a character class of at most ``MAX_PUBLIC_CLASS`` characters (``[rs]k_live_``), but only
  between literals: a class at the edge of what is shown would tell a character of the
  secret's own random part;
- zero-width assertions, which match no text.

Sans-IO and stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from re import _constants as _sre  # type: ignore[attr-defined]  # the stdlib's own parser, as rules.py uses
from re import _parser as _sre_parse  # type: ignore[attr-defined]
from typing import Any, Final

__all__ = ["Affixes", "MAX_PUBLIC_CLASS", "REDACTION_VERSION", "affixes_of", "hint", "opaque_hint"]

#: Changes whenever what a hint shows changes: stored layer results whose hints were made
#: another way are looked at again (it is part of the rule set's digest).
REDACTION_VERSION: Final = 2
#: A character class this small is an alternation the rule spells out (``[rs]``, ``[23]``);
#: a larger one is the secret's alphabet.
MAX_PUBLIC_CLASS: Final = 4
#: Alternatives tracked for one alternation; more, and it is not treated as public.
MAX_ALTERNATIVES: Final = 64
#: What stands for the private part of a secret between its public literals.
MASK: Final = "*****"

_IGNORECASE: Final = _sre.SRE_FLAG_IGNORECASE


@dataclass(frozen=True, slots=True)
class _Choice:
    """One of these byte strings (longest first); ``literal``: spelled out by the rule, not a
    small class."""

    options: tuple[bytes, ...]
    caseless: bool
    literal: bool


@dataclass(frozen=True, slots=True)
class _Run:
    """``low`` to ``high`` times the character ``char``."""

    char: int
    low: int
    high: int


_Step = _Choice | _Run


@dataclass(frozen=True, slots=True)
class Affixes:
    """The public literals a rule's secrets start and end with, as steps to match."""

    prefix: tuple[_Step, ...] = ()
    suffix: tuple[_Step, ...] = ()  #: from the end backwards


NO_AFFIXES: Final = Affixes()


def affixes_of(regex: str | bytes) -> Affixes:
    """The public literals at the start and end of what ``regex`` reports as the secret (its
    ``secret`` group, else the whole match). Never raises for a regex ``re`` compiles."""
    pattern = regex.encode() if isinstance(regex, str) else regex
    try:
        parsed = _sre_parse.parse(pattern)
    except Exception:  # a pattern the stdlib's parser refuses: nothing is public
        return NO_AFFIXES
    ignorecase = bool(parsed.state.flags & _IGNORECASE)
    group = parsed.state.groupdict.get("secret")
    nodes: Any = parsed
    if group is not None:
        found = _find_group(list(parsed), group, ignorecase)
        if found is None:
            return NO_AFFIXES
        nodes, ignorecase = found
    return Affixes(_trim(_walk(list(nodes), ignorecase, reverse=False)[0]),
                   _trim(_walk(list(reversed(list(nodes))), ignorecase, reverse=True)[0]))


def _find_group(nodes: list[Any], group: int, ignorecase: bool) -> tuple[Any, bool] | None:
    """The subpattern of capture group ``group`` and whether it is caseless."""
    for op, av in nodes:
        if op is _sre.SUBPATTERN:
            number, add, remove, inner = av
            caseless = _flags(ignorecase, add, remove)
            if number == group:
                return inner, caseless
            found = _find_group(list(inner), group, caseless)
        elif op is _sre.ATOMIC_GROUP or op in (_sre.ASSERT, _sre.ASSERT_NOT):
            found = _find_group(list(av if op is _sre.ATOMIC_GROUP else av[1]), group, ignorecase)
        elif op is _sre.BRANCH:
            found = next((f for f in (_find_group(list(b), group, ignorecase) for b in av[1]) if f), None)
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            found = _find_group(list(av[2]), group, ignorecase)
        else:
            continue
        if found is not None:
            return found
    return None


def _flags(ignorecase: bool, add: int, remove: int) -> bool:
    return bool((ignorecase or add & _IGNORECASE) and not remove & _IGNORECASE)


def _printable(code: int) -> bool:
    return 32 <= code < 127


def _walk(nodes: list[Any], ignorecase: bool, *, reverse: bool) -> tuple[list[_Step], bool]:
    """Public steps from the start of ``nodes`` (already reversed for a suffix), and whether
    every node was public (so the caller may go on past them)."""
    steps: list[_Step] = []
    for op, av in nodes:
        if op in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            continue  # zero-width
        if op is _sre.LITERAL:
            if not _printable(av):
                return steps, False
            steps.append(_Choice((bytes([av]),), ignorecase and chr(av).isalpha(), True))
        elif op is _sre.IN:
            chars = _class(av)
            if chars is None:
                return steps, False
            steps.append(_Choice(tuple(bytes([c]) for c in chars), ignorecase and any(chr(c).isalpha() for c in chars),
                                 len(chars) == 1))
        elif op is _sre.SUBPATTERN or op is _sre.ATOMIC_GROUP:
            inner, caseless = (av[3], _flags(ignorecase, av[1], av[2])) if op is _sre.SUBPATTERN else (av, ignorecase)
            items = list(inner)
            more, complete = _walk(list(reversed(items)) if reverse else items, caseless, reverse=reverse)
            steps += more
            if not complete:
                return steps, False
        elif op is _sre.BRANCH:
            # each branch's leading literal text is an option ("sntryu_" | "sntrys_eyJ"); the
            # walk goes on past the alternation only when every branch is all literal
            heads: set[bytes] = set()
            complete = True
            for branch in av[1]:
                items = list(branch)
                head, whole = _literal_head(list(reversed(items)) if reverse else items, ignorecase, reverse)
                if head is None:
                    return steps, False
                heads |= head
                complete = complete and whole
            if len(heads) > MAX_ALTERNATIVES:
                return steps, False
            steps.append(_Choice(tuple(sorted(heads, key=lambda h: (-len(h), h))), False, True))
            if not complete:
                return steps, False
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            low, high, item = av
            items = list(item)
            if len(items) == 1 and items[0][0] is _sre.LITERAL and _printable(items[0][1]) \
                    and not (ignorecase and chr(items[0][1]).isalpha()):
                steps.append(_Run(items[0][1], low, high))
                continue
            strings = _alternatives([items], ignorecase) if low == 0 and high == 1 else None
            if strings is None:
                return steps, False
            steps.append(_Choice(_order(strings | {b""}, reverse), False, True))
        else:
            return steps, False
    return steps, True


def _literal_head(nodes: list[Any], ignorecase: bool, reverse: bool) -> tuple[frozenset[bytes] | None, bool]:
    """The literal strings a branch starts with (as matched in the walk's direction: reversed
    for a suffix), node by node while each is literal, and whether that is all of it. None:
    no text at all is literal (the alternation shows nothing)."""
    strings: frozenset[bytes] = frozenset({b""})
    for index, node in enumerate(nodes):
        if node[0] in (_sre.AT, _sre.ASSERT, _sre.ASSERT_NOT):
            continue
        options = _alternatives([[node]], ignorecase)
        if options is None or node[0] is _sre.IN and len(options) > 1:
            break  # a class is not shown at the edge of what is shown
        if reverse:
            options = frozenset(o[::-1] for o in options)
        joined = frozenset(s + o for s in strings for o in options)
        if len(joined) > MAX_ALTERNATIVES:
            break
        strings = joined
    else:
        return strings, True
    return (None if strings == {b""} else strings), False


def _class(items: Any) -> list[int] | None:
    chars: list[int] = []
    for op, av in items:
        if op is _sre.LITERAL:
            chars.append(av)
        elif op is _sre.RANGE and av[1] - av[0] < MAX_PUBLIC_CLASS:
            chars.extend(range(av[0], av[1] + 1))
        else:
            return None  # NEGATE, CATEGORY, a wide range
    if not 0 < len(chars) <= MAX_PUBLIC_CLASS or not all(map(_printable, chars)):
        return None
    return chars


def _alternatives(branches: list[list[Any]], ignorecase: bool) -> frozenset[bytes] | None:
    """Every string the branches can match, when each is a case-sensitive literal string
    (possibly with small classes, as in ``(?:sk|rk)_``); None otherwise."""
    out: set[bytes] = set()
    for branch in branches:
        strings: set[bytes] = {b""}
        for op, av in branch:
            if op is _sre.LITERAL and _printable(av) and not (ignorecase and chr(av).isalpha()):
                options: set[bytes] = {bytes([av])}
            elif op is _sre.IN:
                chars = _class(av)
                if chars is None or ignorecase and any(chr(c).isalpha() for c in chars):
                    return None
                options = {bytes([c]) for c in chars}
            elif op is _sre.SUBPATTERN and not _flags(ignorecase, av[1], av[2]) or op is _sre.BRANCH:
                inner = _alternatives([list(av[3])] if op is _sre.SUBPATTERN else [list(b) for b in av[1]],
                                      ignorecase)
                if inner is None:
                    return None
                options = set(inner)
            else:
                return None
            strings = {s + o for s in strings for o in options}
            if len(strings) > MAX_ALTERNATIVES:
                return None
        out |= strings
        if len(out) > MAX_ALTERNATIVES:
            return None
    return frozenset(out)


def _order(strings: frozenset[bytes], reverse: bool) -> tuple[bytes, ...]:
    # a suffix is matched from the end: its options are kept reversed, like the walk
    return tuple(sorted((s[::-1] if reverse else s for s in strings), key=lambda s: (-len(s), s)))


def _trim(steps: list[_Step]) -> tuple[_Step, ...]:
    """Without the small classes at the end (the edge of what is shown)."""
    while steps and isinstance(steps[-1], _Choice) and not steps[-1].literal:
        steps.pop()
    return tuple(steps)


def _public_length(text: bytes, steps: tuple[_Step, ...]) -> int:
    """How many bytes at the start of ``text`` the steps match, up to the last literal step
    they matched (greedy: every byte counted is one the rule spells out)."""
    position = shown = 0
    for step in steps:
        rest = text[position:]
        if isinstance(step, _Run):
            count = len(rest) - len(rest.lstrip(bytes([step.char])))
            count = min(count, step.high)
            if count < step.low:
                break
            # the characters past ``low`` may be the secret's own (A{20,24}[A-Za-z0-9]...):
            # shown only when a literal after them confirms where the run ends
            shown = max(shown, position + step.low)
            position += count
            continue
        folded = rest.lower() if step.caseless else rest
        option = next((o for o in step.options if folded.startswith(o.lower() if step.caseless else o)), None)
        if option is None:
            break
        position += len(option)
        if step.literal:
            shown = position
    return shown


def opaque_hint(length: int, fingerprint: str) -> str:
    """A secret shown as nothing but its length and its keyed fingerprint."""
    return f"<redacted: {length} chars, fp {fingerprint[:8]}>"


def hint(secret: bytes, fingerprint: str, affixes: Affixes) -> str:
    """What a finding shows of ``secret``: its rule's public literals around ``*****``, or
    its length and fingerprint (``fingerprint``: the keyed HMAC, hex) when there are none."""
    head = _public_length(secret, affixes.prefix)
    tail = _public_length(secret[::-1], affixes.suffix)
    if secret and head + tail >= len(secret):
        # every byte of it is a literal of the rule ("-----BEGIN PRIVATE KEY-----"): public text
        return secret.decode("utf-8", "replace")
    if head or tail:
        end = secret[len(secret) - tail:] if tail else b""
        return secret[:head].decode("utf-8", "replace") + MASK + end.decode("utf-8", "replace")
    return opaque_hint(len(secret.decode("utf-8", "replace")), fingerprint)
