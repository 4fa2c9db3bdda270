"""Secrets in the image config, and the config with them redacted.

``docker build --build-arg TOKEN=...`` and ``ENV AWS_SECRET_ACCESS_KEY=...`` put secrets in
the config blob, which anyone who pulls the image reads: its ``Env``, ``Labels``,
``Entrypoint``, ``Cmd`` and each ``history[].created_by`` (the ``RUN`` line as written).
The layer scanner never sees them, so the same compiled rules run here over every string
of the config (names and values), and what is kept of the config has every secret they
find replaced by the finding's hint, so that the raw value is stored and printed nowhere.

Findings are reported where a person looks for them: a path such as ``config:Env[2]``,
``config:Labels["org.example.token"]`` or ``config:history[3].created_by`` (the config's
``config`` object is the ``config:`` root; other fields keep their names), the 1-based
line in that value, and the byte offset of the secret in it. A ``history`` entry that
made a layer (one without ``empty_layer``; they map to the layers in order) names that
layer. Every place in ``Env``, ``Labels``, ``Entrypoint``, ``Cmd`` and ``history`` is a
finding; elsewhere (Docker's ``container_config`` repeats ``Env`` and ``Cmd``) a secret
is reported only if none of those already holds it.

Sans-IO: a parsed config in, findings and the redacted config out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ..model import SecretFinding
from .redaction import opaque_hint
from .scanner import MAX_FINDINGS, RuleSet, TextMatch

__all__ = ["ConfigFinding", "ConfigScan", "ROOT", "scan_config"]

#: What every config finding's path starts with (no file path does: they start with "/").
ROOT: Final = "config:"
#: Places whose every finding is reported (paths under ROOT, up to the first "[" or ".").
LISTED: Final = ("Env", "Labels", "Entrypoint", "Cmd", "history")
#: Mappings whose keys are the image author's, not the config format's: always ["key"]
_USER_MAPPINGS: Final = ("Labels", "ExposedPorts", "Volumes")


@dataclass(frozen=True, slots=True)
class ConfigFinding:
    finding: SecretFinding
    layer: int | None  #: the layer a history entry made; None: no layer holds it


@dataclass(frozen=True, slots=True)
class ConfigScan:
    findings: tuple[ConfigFinding, ...]
    #: the config with every secret replaced by its hint; the same object as the input when
    #: nothing was found (then the blob as served may be kept as it is)
    config: Any
    redacted: bool


def scan_config(rules: RuleSet, config: dict[str, Any], *, layers: int) -> ConfigScan:
    """Secrets in ``config`` (a parsed image config) and the config without them.
    ``layers``: how many layers the image has (a history entry past them names none)."""
    walker = _Walker(rules, _history_layers(config, layers))
    # the places people read first, first: their findings are the ones reported
    order = [k for k in ("config", "history") if k in config] + [k for k in config if k not in ("config", "history")]
    copied: dict[str, tuple[str, Any]] = {}
    for key in order:
        value = config[key]
        if key == "config" and isinstance(value, dict):
            copied[key] = (key, walker.value(value, ROOT.rstrip(":"), root=True))
        else:
            name = walker.key(key, ROOT.rstrip(":"), root=True)
            copied[key] = (name, walker.value(value, _child(ROOT.rstrip(":"), name, root=True)))
    if not walker.changed:
        return ConfigScan((), config, False)
    return ConfigScan(tuple(walker.findings), dict(copied[key] for key in config), True)


def _history_layers(config: dict[str, Any], layers: int) -> dict[int, int]:
    """history index -> layer index, for the entries that made a layer."""
    history = config.get("history")
    out: dict[int, int] = {}
    if not isinstance(history, list):
        return out
    layer = 0
    for index, entry in enumerate(history):
        if isinstance(entry, dict) and entry.get("empty_layer") is True:
            continue
        if layer < layers:
            out[index] = layer
        layer += 1
    return out


def _child(parent: str, key: str | int, *, root: bool = False) -> str:
    """``parent.key``, ``parent["key"]`` (a key of a user's mapping, or not a plain name) or
    ``parent[3]``; under the root, ``config:key``."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if key.isascii() and key.isidentifier() and not parent.endswith(_USER_MAPPINGS):
        return f"{parent}:{key}" if root else f"{parent}.{key}"
    quoted = json.dumps(key, ensure_ascii=False)
    return f"{parent}:[{quoted}]" if root else f"{parent}[{quoted}]"


class _Walker:
    """Walks the config iteratively-deep (json.loads bounds its depth), copying it with
    every secret replaced, and collects the findings."""

    def __init__(self, rules: RuleSet, history_layers: dict[int, int]) -> None:
        self._rules = rules
        self._history_layers = history_layers
        self._seen: set[tuple[str, str]] = set()  # (rule, fingerprint) reported
        self.findings: list[ConfigFinding] = []
        self.changed = False

    def value(self, value: Any, path: str, *, root: bool = False) -> Any:
        # an explicit stack: a config nested a thousand deep must not exhaust Python's
        stack: list[tuple[Any, str, bool, Any, Any]] = []
        result: list[Any] = [None]
        stack.append((value, path, root, result, 0))
        while stack:
            item, where, at_root, holder, slot = stack.pop()
            if isinstance(item, dict):
                copy: dict[str, Any] = {}
                holder[slot] = copy
                pending = []
                for key, inner in item.items():
                    name = self.key(key, where, root=at_root)
                    inner_path = _child(where, name, root=at_root)
                    if isinstance(inner, str):
                        copy[name] = self._text(inner, inner_path, name=key)
                    else:
                        copy[name] = None
                        pending.append((inner, inner_path, False, copy, name))
                stack.extend(reversed(pending))
            elif isinstance(item, list):
                items: list[Any] = [None] * len(item)
                holder[slot] = items
                stack.extend(reversed([(inner, _child(where, i), False, items, i) for i, inner in enumerate(item)]))
            elif isinstance(item, str):
                holder[slot] = self._text(item, where)
            else:
                holder[slot] = item
        return result[0]

    def key(self, key: str, parent: str, *, root: bool) -> str:
        """A mapping's key, redacted when a secret is in it (and reported there)."""
        matches = self._rules.find_in_text(_bytes(key), limit=MAX_FINDINGS)
        if not matches:
            return key
        self.changed = True
        # the key itself is the place: named by its hints, never by its text
        redacted = _replace(key, matches, self._rules)
        self._report(matches, _child(parent, redacted, root=root))
        return redacted

    def _text(self, value: str, path: str, *, name: str | None = None) -> str:
        """A string value, redacted. ``name``: the key it is the value of, read with it
        (``aws_secret_access_key: ...`` in Labels is named by its key)."""
        raw = _bytes(value)
        matches = self._rules.find_in_text(raw, limit=MAX_FINDINGS)
        if name is not None:
            prefix = _bytes(name) + b"="
            alone = [(m.rule.id, m.start, m.end) for m in matches]
            for m in self._rules.find_in_text(prefix + raw, limit=MAX_FINDINGS):
                start, end = m.start - len(prefix), m.end - len(prefix)
                if end <= 0 or any(rule == m.rule.id and a < end and max(start, 0) < b for rule, a, b in alone):
                    continue  # all in the key (reported with it), or found in the value alone
                # a secret that takes in part of the key (Anchore's rules report whole lines):
                # the value is redacted from its start
                matches.append(TextMatch(m.rule, max(start, 0), end, m.line, m.redacted, m.fingerprint))
        if not matches:
            return value
        self.changed = True
        self._report(matches, path)
        return _replace(value, matches, self._rules)

    def _report(self, matches: list[TextMatch], path: str) -> None:
        place = path[len(ROOT):]
        listed = place.split("[", 1)[0].split(".", 1)[0] in LISTED
        layer = None
        if place.startswith("history["):
            index = place[len("history["):].split("]", 1)[0]
            layer = self._history_layers.get(int(index)) if index.isdigit() else None
        for m in sorted(matches, key=lambda m: (m.start, m.rule.id)):
            key = (m.rule.id, m.fingerprint)
            if not listed and key in self._seen:
                continue
            self._seen.add(key)
            if len(self.findings) >= MAX_FINDINGS:
                return
            rule = m.rule
            self.findings.append(ConfigFinding(SecretFinding(
                path=path, rule=rule.id, category=rule.category, severity=rule.severity, line=m.line,
                offset=m.start, redacted=m.redacted, fingerprint=m.fingerprint), layer))


def _bytes(text: str) -> bytes:
    # json.loads keeps lone surrogates ("\ud800"): they are carried through, not refused
    return text.encode("utf-8", "surrogatepass")


def _replace(text: str, matches: list[TextMatch], rules: RuleSet) -> str:
    """``text`` with each secret replaced by its hint; secrets that overlap are replaced
    together, by one hint that shows nothing of either."""
    raw = _bytes(text)
    spans = sorted((m.start, m.end, m.redacted) for m in matches)
    merged: list[list[Any]] = []
    for start, end, shown in spans:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            last[1], last[2] = max(last[1], end), None
        else:
            merged.append([start, end, shown])
    out = bytearray()
    position = 0
    for start, end, shown in merged:
        out += raw[position:start]
        if shown is None:
            part = raw[start:end]
            shown = opaque_hint(len(part.decode("utf-8", "replace")), rules.fingerprint(part))
        out += shown.encode()
        position = end
    out += raw[position:]
    return out.decode("utf-8", "surrogatepass")
