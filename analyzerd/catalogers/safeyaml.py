"""YAML lockfiles (Yarn 2+, pnpm) read safely: every scalar a string, bounded nesting, and no
recursion.

PyYAML's own composer recurses once per nesting level (in C when LibYAML is used, where a deep
document overflows the stack and kills the whole process, not just the parse), and LibYAML's
scanner is quadratic in the nesting of flow collections (``[[[[...`` of 100k levels takes
minutes). So flow nesting is bounded before LibYAML runs, and the document is composed here from
its event stream, with a depth limit. Aliases are shared, never copied, so an alias "bomb" costs
no more than its text. Scalars stay strings (YAML 1.1 would read ``version: 1.10`` as 1.1).
"""

from __future__ import annotations

import re
from typing import Any, Final

import yaml

__all__ = ["MAX_DEPTH", "YamlError", "load_mapping"]

#: Lockfiles nest about five levels deep; a hundred is far past any real one.
MAX_DEPTH: Final = 64

_LOADER: Final[Any] = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # LibYAML when PyYAML has it
_NOT_BRACKETS: Final = re.compile(r"[^\[\]{}]+")
_BRACKETS_AS_PARENS: Final = str.maketrans("[{]}", "(())")
_NO_KEY: Final = object()
_COLLECTION_STARTS: Final = (yaml.MappingStartEvent, yaml.SequenceStartEvent)


class YamlError(ValueError):
    """The text is not YAML, or not YAML of the shape asked for."""


def flow_depth_bound(text: str) -> int:
    """An upper bound of how deeply ``[...]`` and ``{...}`` nest in ``text`` (brackets inside
    quoted strings count too, which only overestimates). Each round drops every innermost pair,
    so a balanced run of height h vanishes in h rounds; unclosed openers add to the bound. The
    work is str methods (C), at most MAX_DEPTH + 1 passes."""
    brackets = _NOT_BRACKETS.sub("", text).translate(_BRACKETS_AS_PARENS)
    rounds = 0
    while "()" in brackets and rounds <= MAX_DEPTH:
        brackets = brackets.replace("()", "")
        rounds += 1
    return rounds + brackets.count("(")


def _attach(frame: list[Any], node: Any) -> None:
    container, key = frame
    if isinstance(container, list):
        container.append(node)
    elif key is _NO_KEY:
        frame[1] = node
    elif not isinstance(key, str):
        raise YamlError("a mapping key that is not a scalar")
    else:
        container[key] = node
        frame[1] = _NO_KEY


def _compose(text: str) -> Any:
    root: Any = None
    stack: list[list[Any]] = []  # [container, the mapping key waiting for its value]
    anchors: dict[str, Any] = {}
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
            continue
        if isinstance(event, yaml.DocumentEndEvent):
            break  # the first document only
        node: Any
        if isinstance(event, yaml.AliasEvent):
            if event.anchor not in anchors:
                raise YamlError(f"undefined alias {event.anchor!r}")
            node = anchors[event.anchor]
        elif isinstance(event, yaml.ScalarEvent):
            node = event.value
        elif isinstance(event, _COLLECTION_STARTS):
            node = {} if isinstance(event, yaml.MappingStartEvent) else []
        else:
            continue  # stream and document starts
        anchor = None if isinstance(event, yaml.AliasEvent) else event.anchor
        if anchor:
            anchors[anchor] = node
        if stack:
            _attach(stack[-1], node)
        else:
            root = node
        if isinstance(event, _COLLECTION_STARTS):
            if len(stack) >= MAX_DEPTH:
                raise YamlError("nested too deeply")
            stack.append([node, _NO_KEY])
    return root


def load_mapping(text: str) -> dict[str, Any]:
    """The first document of ``text``, which must be a mapping; YamlError otherwise."""
    if flow_depth_bound(text) > MAX_DEPTH:
        raise YamlError("nested too deeply")
    try:
        doc = _compose(text)
    except yaml.YAMLError as exc:
        raise YamlError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from exc
    if not isinstance(doc, dict):
        raise YamlError("not a mapping")
    return doc
