"""JSON log lines: key=value pairs of an event become fields, quoted values come back whole."""

import json
import logging

from analyzerd.logformat import JsonFormatter


def test_an_event_line_becomes_one_json_object():
    record = logging.LogRecord("analyzerd.worker", logging.ERROR, __file__, 1,
                               "event=job_failed job=%d ref=%s error=%r", (3, "reg/app:1", "layer x: it's 'broken' = bad"),
                               None)
    line = JsonFormatter().format(record)
    assert "\n" not in line
    document = json.loads(line)
    assert document["level"] == "ERROR" and document["logger"] == "analyzerd.worker"
    assert document["event"] == "job_failed" and document["job"] == 3 and document["ref"] == "reg/app:1"
    assert document["error"] == "layer x: it's 'broken' = bad"


def test_text_that_is_not_key_value_is_kept_as_the_message():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "plain words here", (), None)
    assert json.loads(JsonFormatter().format(record))["message"] == "plain words here"


def record(msg, *args, exc_info=None):
    return logging.LogRecord("analyzerd.analyze", logging.WARNING, __file__, 1, msg, args, exc_info)


def test_text_escapes_every_control_character_an_argument_carries():
    from analyzerd.logformat import TEXT_FORMAT, TextFormatter
    line = TextFormatter(TEXT_FORMAT).format(record("event=layer_warning layer=%s %s", "sha256:1",
                                                    "/a\nb\rc\td\x1be\x7ff\x85g\x9bh\u2028i\x00j"))
    assert "\n" not in line
    assert line.endswith("event=layer_warning layer=sha256:1 /a\\nb\\rc\\td\\x1be\\x7ff\\x85g\\x9bh\\u2028i\\x00j")


def test_a_traceback_cannot_pass_for_a_record():
    from analyzerd.logformat import TEXT_FORMAT, TextFormatter
    try:
        raise ValueError("bad\n2030-01-01 00:00:00,000 ERROR forged event=x\x1b[2J")
    except ValueError:
        import sys
        line = TextFormatter(TEXT_FORMAT).format(record("event=job_failed", exc_info=sys.exc_info()))
    first, *rest = line.split("\n")
    assert first.endswith("event=job_failed") and rest
    assert all(r.startswith("  ") for r in rest) and "\x1b" not in line
    assert "  2030-01-01 00:00:00,000 ERROR forged event=x\\x1b[2J" in rest


def test_json_escapes_what_json_dumps_leaves_raw():
    text = "a\x7fb\x85c\x9bd\u2028e\u2029f\nz"
    line = JsonFormatter().format(record("event=layer_warning %s", text))
    assert not any(c in line for c in "\x7f\x85\x9b\u2028\u2029\n")
    assert len(line.splitlines()) == 1  # str.splitlines splits at \x85 and \u2028 too
    assert json.loads(line)["message"] == text  # escapes that decode to what was logged


def test_fields_come_from_the_template_not_from_an_argument():
    document = json.loads(JsonFormatter().format(record(
        "event=layer_warning layer=%s %s", "sha256:1 job=7", "/etc/x job=9 error='forged' event=other")))
    assert document["event"] == "layer_warning"
    assert document["layer"] == "sha256:1 job=7"  # the whole argument: a space does not end it
    assert "job" not in document and "error" not in document
    assert document["message"] == "/etc/x job=9 error='forged' event=other"


def test_templates_that_are_not_positional_are_text():
    for msg, args in (("plain %(name)s x=1", ({"name": "x"},)), ("100%% done %s", ("ok",)), ("%*d", (3, 4))):
        rec = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)
        assert json.loads(JsonFormatter().format(rec))["message"] == rec.getMessage().strip()
