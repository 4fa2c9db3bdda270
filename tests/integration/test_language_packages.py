"""Language packages end to end on the real registry: real installed metadata in a layer,
an upper layer that deletes one package and patches another's file, and what
``analyze --packages --json`` then reports."""

import base64
import hashlib
import importlib.metadata
import json
import pathlib

from analyzerd.testing import Member, build_image, make_layer, push_image

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
SITE_FIXTURE = DATA / "python/usr/local/lib/python3.11/site-packages"
SITE = "usr/local/lib/python3.11/site-packages"


def tree_members(source: pathlib.Path, target: str) -> list[Member]:
    """Every file under ``source``, as tar members under ``target`` (a path in the image)."""
    members = []
    for path in sorted(source.rglob("*")):
        if path.is_file():
            members.append(Member(f"{target}/{path.relative_to(source)}", path.read_bytes()))
    return members


def record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def packages_of(cli, ref):
    return json.loads(cli("analyze", ref, "--packages", "--json").stdout)["packages"]


def test_python_packages_whiteouts_and_record_integrity(registry, cli):
    installed = {d.metadata["Name"]: d.version for d in importlib.metadata.distributions(path=[str(SITE_FIXTURE)])}
    module = b"VALUE = 1\n"
    own = [Member(f"{SITE}/mypkg/__init__.py", module),
           Member(f"{SITE}/mypkg-1.0.dist-info/METADATA", b"Metadata-Version: 2.1\nName: mypkg\nVersion: 1.0\n"),
           Member(f"{SITE}/mypkg-1.0.dist-info/RECORD",
                  (record_line("mypkg/__init__.py", module) + "\nmypkg-1.0.dist-info/RECORD,,\n").encode())]
    base = make_layer(tree_members(SITE_FIXTURE, SITE) + own, "pax")
    upper = make_layer([Member(f"{SITE}/.wh.six-1.17.0.dist-info"),
                        Member(f"{SITE}/mypkg/__init__.py", b"VALUE = 'patched'\n")])
    image = build_image([base, upper])
    push_image(registry.url, "lang/python", "1", image)

    found = {p["name"]: p for p in packages_of(cli, f"{registry.host}/lang/python:1") if p["type"] == "pypi"}
    expected = {name: version for name, version in installed.items() if name != "six"} | {"mypkg": "1.0"}
    assert {name: p["version"] for name, p in found.items()} == expected
    assert all(p["installed"] and p["layer"] == image.layers[0].digest for p in found.values())
    assert found["typing_extensions"]["purl"] == f"pkg:pypi/typing-extensions@{installed['typing_extensions']}"
    assert found["mypkg"]["files"]["modified"] == [f"/{SITE}/mypkg/__init__.py"]
    assert found["requests"]["location"] == f"/{SITE}/requests-{installed['requests']}.dist-info/METADATA"
