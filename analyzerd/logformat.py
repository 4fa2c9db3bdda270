"""Log lines: one line per event, as ``event=name key=value ...`` text (the default) or as
one JSON object per line (``log_format: json``) for log pipelines."""

from __future__ import annotations

import ast
import json
import logging
import re
from typing import Any, Final

__all__ = ["JsonFormatter", "TEXT_FORMAT", "configure"]

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s %(message)s"
_PAIR: Final = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S+)""")


def _value(text: str) -> Any:
    if text[:1] in ("'", '"'):
        try:
            return ast.literal_eval(text)  # the repr() the message was written with
        except (ValueError, SyntaxError):
            return text
    if text.isdigit():
        return int(text)
    return text


class JsonFormatter(logging.Formatter):
    """``event=job_failed job=3 error='…'`` becomes {"event": "job_failed", "job": 3, "error": "…"}
    beside time, level and logger; text that is not key=value stays in "message"."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        out: dict[str, Any] = {"time": self.formatTime(record), "level": record.levelname,
                               "logger": record.name}
        rest = _PAIR.sub("", message).strip()
        for key, value in _PAIR.findall(message):
            out.setdefault(key, _value(value))
        if rest:
            out["message"] = rest
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure(level: str, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level, logging.INFO))
