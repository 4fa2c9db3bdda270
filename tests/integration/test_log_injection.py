"""Strings an attacker chooses (paths in an image, references, registry messages) cannot
forge or hide log lines: control characters in them are escaped in both log formats."""

import json
import re

import pytest

from analyzerd.testing import Member, build_image, make_layer, write_oci_layout

FORGED = "2030-01-01 00:00:00,000 ERROR analyzerd.worker event=job_failed job=1 error='forged'"
#: a path with a newline and a forged line after it, a CR, ANSI escapes (ESC, and the C1
#: CSI), DEL and a Unicode line separator
CRAFTED = f"evil\n{FORGED}\rX\x1b[2J\x9b31m\x7f\x07\u2028end"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


@pytest.fixture
def crafted_image(tmp_path):
    # A hardlink to a file the layer does not hold: its path is logged in a layer warning.
    layer = make_layer([Member(CRAFTED, kind="hardlink", link="missing"), Member("ok", b"x")])
    write_oci_layout(str(tmp_path / "layout"), {"1": build_image([layer])})
    return f"oci:{tmp_path / 'layout'}:1"


def test_a_newline_in_a_path_does_not_forge_a_text_log_line(cli, crafted_image):
    stderr = cli("analyze", crafted_image).stderr  # warnings are logged by default
    lines = stderr.splitlines()
    warnings = [line for line in lines if "event=layer_warning" in line]
    assert len(warnings) == 1, stderr
    assert "evil\\n2030-01-01" in warnings[0] and "\\x1b[2J" in warnings[0] and "\\x9b31m" in warnings[0]
    assert "\\x7f" in warnings[0] and "\\u2028end" in warnings[0]
    assert not any(line.startswith("2030-01-01") for line in lines)  # no forged line
    assert not CONTROL.search(stderr), stderr


def test_json_log_lines_stay_one_line_each_with_no_raw_control_characters(cli, crafted_image, tmp_path):
    config = tmp_path / "json.yaml"
    config.write_text("log_format: json\n")
    stderr = cli("--config", str(config), "analyze", crafted_image).stderr
    documents = [json.loads(line) for line in stderr.splitlines()]  # every line is one document
    warning = next(d for d in documents if d.get("event") == "layer_warning")
    assert CRAFTED in warning["message"]  # JSON escapes: the path decodes as it was
    assert "job" not in warning and "error" not in warning  # no field forged from inside the path
    assert not CONTROL.search(stderr), stderr
