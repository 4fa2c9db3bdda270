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
