"""An image's secrets, in process through the layer analyzer and the merge: a secret in a file
an upper layer deleted, replaced or hid (whiteout, opaque directory, an ancestor directory
replaced by a file or a link) is still in the image's blobs, so it is reported, with the layer
that hid it; a secret still visible has none."""

from __future__ import annotations

from analyzerd.analyze import merge
from analyzerd.model import LayerResult
from analyzerd.secrets.rules import Rule
from analyzerd.secrets.scanner import RuleSet
from analyzerd.testing import Member, analyze_layer

RULES = RuleSet((Rule(id="test-token", category="Test", title="test token", severity="HIGH",
                      regex=r"(?P<secret>tkn_[A-Za-z0-9]{24})", keywords=("tkn_",)),), fingerprint_key=b"k" * 32)
SECRET = b"key = tkn_" + b"A" * 24 + b"\n"
PATHS = ("srv/deleted.env", "srv/replaced.env", "srv/kept.env", "gone/dir/a.env", "opaque/b.env",
         "linked/c.env", "rewritten/d.env", "sibling/e.env")


def analyze(members: list[Member]) -> LayerResult:
    return analyze_layer(members, secrets=RULES.scanner(), secret_rules=RULES.digest)


def test_secrets_hidden_by_upper_layers_are_reported_with_the_layer_that_hid_them():
    lower = analyze([Member(path, SECRET) for path in PATHS])
    middle = analyze([Member("srv/.wh.deleted.env"), Member("srv/replaced.env", b"nothing here\n"),
                      Member("gone/.wh.dir"), Member("opaque/.wh..wh..opq"),
                      Member("linked", kind="symlink", link="/tmp")])
    upper = analyze([Member("rewritten", kind="dir"), Member("sibling/.wh.other.env")])
    _, _, secrets = merge([lower, middle, upper])
    hidden = {s.finding.path: (s.layer, s.deleted_in) for s in secrets}
    assert hidden == {
        "/srv/deleted.env": (0, 1), "/srv/replaced.env": (0, 1), "/gone/dir/a.env": (0, 1),
        "/opaque/b.env": (0, 1), "/linked/c.env": (0, 1),
        "/srv/kept.env": (0, None), "/rewritten/d.env": (0, None), "/sibling/e.env": (0, None)}


def test_the_first_upper_layer_that_hides_a_secret_is_named():
    lower = analyze([Member("app/.env", SECRET)])
    again = analyze([Member("app/.env", SECRET)])  # rewritten with the same secret
    gone = analyze([Member("app/.wh..env")])
    _, _, secrets = merge([lower, again, gone])
    assert sorted((s.layer, s.deleted_in) for s in secrets) == [(0, 1), (1, 2)]


def test_an_opaque_root_hides_every_secret_below_it_as_it_hides_the_files():
    """A layer whose root holds the opaque marker replaces the whole filesystem (the merge
    shows none of the lower files), so every lower secret is hidden by it, at any depth,
    whatever letter its path starts or ends with."""
    lower = analyze([Member("app/.env", SECRET), Member("X/deep/key.env", SECRET), Member("top.envX", SECRET)])
    upper = analyze([Member(".wh..wh..opq"), Member("etc/hostname", b"x\n")])
    visible, _, secrets = merge([lower, upper])
    assert [record.path for _, record, _ in visible] == ["/etc", "/etc/hostname"]
    assert sorted((s.finding.path, s.layer, s.deleted_in) for s in secrets) == [
        ("/X/deep/key.env", 0, 1), ("/app/.env", 0, 1), ("/top.envX", 0, 1)]


def test_a_deleted_directory_hides_the_secrets_in_it_whatever_its_name():
    lower = analyze([Member("X/key.env", SECRET), Member("dirX/key.env", SECRET), Member("Xkept/key.env", SECRET)])
    upper = analyze([Member(".wh.X"), Member(".wh.dirX")])
    _, _, secrets = merge([lower, upper])
    assert sorted((s.finding.path, s.deleted_in) for s in secrets) == [
        ("/X/key.env", 1), ("/Xkept/key.env", None), ("/dirX/key.env", 1)]
