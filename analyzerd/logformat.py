"""Log lines: one line per event, as ``event=name key=value ...`` text (the default) or as
one JSON object per line (``log_format: json``) for log pipelines.

Much of what is logged is chosen by an attacker: paths in an image, references, registry
messages, warnings. Neither format lets such a string forge or hide a line. In text, control
characters (C0 incl. newline, CR and tab, DEL, C1, and the Unicode line and paragraph
separators) are written as ``\\n``, ``\\x1b``, ``\\u2028``...; an exception's traceback, the
only text that spans lines, has each of its lines indented, so no line of it can pass for a
record. In JSON, the same characters are JSON escapes (they decode to what was logged), and
fields come only from the message template: ``key=%s`` takes the whole argument as its value,
and ``key=value`` spelt inside an argument (a path ``/a job=1``) stays text.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from typing import Any, Final

__all__ = ["JsonFormatter", "TEXT_FORMAT", "TextFormatter", "configure", "escape_control"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
_PAIR: Final = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""")
#: What ends, breaks or rewrites a line on a terminal or in a log reader: C0 controls (newline,
#: CR, tab, ESC...), DEL, C1 controls (NEL, CSI...) and the Unicode line/paragraph separators.
_CONTROL: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: Of those, what json.dumps(ensure_ascii=False) leaves as it is.
_JSON_RAW: Final = re.compile("[\x7f-\x9f\u2028\u2029]")
_NAMED: Final = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
#: A %-conversion of a logging template (printf-style, as logging formats its messages).
_CONVERSION: Final = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]")
#: Stands for argument ``n`` while a template is split into fields (NUL: in no template).
_SLOT: Final = re.compile("\x00(\\d+)\x00")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """``text`` with every control character written as an escape: one line, inert."""
    return _CONTROL.sub(_escape_char, text) if _CONTROL.search(text) else text


def _indented(text: str) -> str:
    """A traceback or stack: its lines escaped and indented under the record's line."""
    return "\n".join("  " + escape_control(line) for line in text.split("\n"))


def _value(text: str) -> Any:
    if text[:1] in ("'", '"'):
        try:
            return ast.literal_eval(text)  # the repr() the message was written with
        except (ValueError, SyntaxError):
            return text
    if text.isdigit():
        return int(text)
    return text


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT`` lines, with what the message's arguments carry escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_control(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _split(record: logging.LogRecord) -> tuple[str, list[str]] | None:
    """The template with argument n as ``\\0n\\0`` and the arguments as formatted, or None
    when the template does not take its arguments one by one (then the whole message is text)."""
    template, args = record.msg, record.args
    if not isinstance(template, str) or "\x00" in template or isinstance(args, dict):
        return None
    args = tuple(args or ())
    out: list[str] = []
    formatted: list[str] = []
    position = 0
    for match in _CONVERSION.finditer(template):
        conversion = match.group()
        out.append(template[position:match.start()])
        position = match.end()
        if conversion == "%%":
            out.append("%")
            continue
        if "*" in conversion or "(" in conversion or len(formatted) >= len(args):
            return None
        try:
            formatted.append(conversion % (args[len(formatted)],))
        except (TypeError, ValueError):
            return None
        out.append(f"\x00{len(formatted) - 1}\x00")
    if len(formatted) != len(args):
        return None
    out.append(template[position:])
    return "".join(out), formatted


class JsonFormatter(logging.Formatter):
    """``event=job_failed job=3 error='…'`` becomes {"event": "job_failed", "job": 3, "error": "…"}
    beside time, level and logger; text that is not key=value stays in "message"."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname,
                               "logger": record.name}
        split = _split(record)
        if split is None:
            rest = record.getMessage()
        else:
            template, formatted = split

            def filled(text: str) -> str:
                return _SLOT.sub(lambda m: formatted[int(m.group(1))], text)

            for key, value in _PAIR.findall(template):
                out.setdefault(key, _value(filled(value)))
            rest = filled(_PAIR.sub("", template))
        rest = rest.strip()
        if rest:
            out["message"] = rest
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(out, ensure_ascii=False)
        # json.dumps escapes C0 only; the rest of what breaks lines is escaped here (inside
        # strings only: nothing else of the document is outside ASCII).
        return _JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


def configure(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
