"""Names as the databases store them: one stored text per name, on both backends (a name
that is not UTF-8, or holds a NUL, is written with \\x escapes, so a backslash is escaped too)."""

import json

import pytest

from analyzerd.database import escape_text as _text, unescape_text as _untext
from analyzerd.testing import Member, build_image, make_layer, raw_header, raw_member, write_oci_layout


@pytest.fixture
def cli_database(database):
    return database


def names_layer(*names: bytes) -> bytes:
    """A layer of empty files named by raw ustar name bytes (no PAX: the bytes as they are)."""
    return b"".join(raw_member(raw_header(name)) for name in names) + bytes(1024)


def test_a_byte_that_is_not_utf8_and_its_escape_written_out_are_two_files(cli, tmp_path):
    # b"\xff" is not UTF-8 and used to be stored as the text \xff: exactly what the second
    # name spells, so the two rows collided and the image could not be stored at all.
    layer = names_layer(b"etc/evil\xff", b"etc/evil\\xff", b"etc/back\\slash")
    write_oci_layout(str(tmp_path / "layout"), {"1": build_image([layer])})
    document = json.loads(cli("analyze", f"oci:{tmp_path / 'layout'}:1", "--json").stdout)
    paths = sorted(f["path"] for f in document["files"] if f["path"].startswith("/etc/"))
    assert paths == ["/etc/back\\\\slash", "/etc/evil\\\\xff", "/etc/evil\\xff"]
    assert [_untext(p) for p in paths] == ["/etc/back\\slash", "/etc/evil\\xff", "/etc/evil\udcff"]


def test_a_stored_layer_reused_by_another_image_keeps_its_names(cli, tmp_path):
    """The second image's layer result is read back from the database, not analyzed again:
    the names read back must be the names, not their stored escapes (which would be
    escaped a second time when the second image's files are written)."""
    layer = names_layer(b"etc/evil\xff", b"etc/evil\\xff")
    other = make_layer([Member("other", b"x")])
    write_oci_layout(str(tmp_path / "layout"), {"1": build_image([layer]), "2": build_image([layer, other])})
    first = json.loads(cli("analyze", f"oci:{tmp_path / 'layout'}:1", "--json").stdout)
    second = json.loads(cli("analyze", f"oci:{tmp_path / 'layout'}:2", "--json").stdout)
    names = {f["path"] for f in first["files"]}
    assert {"/etc/evil\\xff", "/etc/evil\\\\xff"} <= names
    assert names | {"/other"} == {f["path"] for f in second["files"]}


@pytest.mark.parametrize("name", ["", "plain/path", "back\\slash", "\\x00", "\x00", "nul\x00\\x00", "\udcff",
                                  "\\xff\udcff", "\udc80\\", "é ü \U0001f600", "\ud800", "\\u d800", "\\\\"])
def test_escaping_is_one_to_one_and_undone_exactly(name):
    stored = _text(name)
    assert "\x00" not in stored
    stored.encode("utf-8")  # what both databases accept
    assert _untext(stored) == name
    assert _text(name + "\\") != stored


def test_distinct_names_never_share_a_stored_text():
    alphabet = ["a", "\\", "x", "0", "f", "u", "\x00", "\udcff", "\ud800", "d", "8"]
    seen = {}
    import itertools
    for length in range(5):
        for parts in itertools.product(alphabet, repeat=length):
            name = "".join(parts)
            assert seen.setdefault(_text(name), name) == name
