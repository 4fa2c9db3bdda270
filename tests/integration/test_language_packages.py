"""Language packages end to end on the real registry: real installed metadata in a layer,
an upper layer that deletes one package and patches another's file, and what
``analyze --packages --json`` then reports."""

import base64
import hashlib
import importlib.metadata
import io
import json
import pathlib
import zipfile

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


def jar_coordinates(jar: bytes) -> set[tuple[str, str, str]]:
    """(groupId, artifactId, version) of every pom.properties in a jar, read with zipfile."""
    found = set()
    with zipfile.ZipFile(io.BytesIO(jar)) as archive:
        for name in archive.namelist():
            if name.startswith("META-INF/maven/") and name.endswith("/pom.properties"):
                props = dict(line.split("=", 1) for line in archive.read(name).decode().splitlines()
                             if "=" in line and not line.startswith("#"))
                found.add((props["groupId"].strip(), props["artifactId"].strip(), props["version"].strip()))
    return found


def test_npm_gem_java_and_go_packages_end_to_end(registry, cli, tmp_path):
    node_modules = DATA / "npm/app/node_modules"
    # what `npm ls --all --long` says of each manifest kept in the fixture
    manifests = json.loads((DATA / "npm/expected/app-manifests.json").read_text())
    gemspecs = sorted((DATA / "gem/usr/share/rubygems-integration/all/specifications").glob("*.gemspec"))
    jars = {p.name: p.read_bytes() for p in sorted((DATA / "java/usr/share/java").glob("*.jar"))}
    war = io.BytesIO()
    with zipfile.ZipFile(war, "w") as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        for name, data in jars.items():
            archive.writestr(f"WEB-INF/lib/{name}", data, compress_type=zipfile.ZIP_STORED)
    go_binary = (DATA / "golang/usr/local/bin/hello-vcs-replace").read_bytes()
    layer = make_layer(
        tree_members(node_modules, "srv/app/node_modules")
        + [Member("srv/app/package.json", (DATA / "npm/app/package.json").read_bytes())]
        + [Member(f"usr/share/rubygems-integration/all/specifications/{p.name}", p.read_bytes()) for p in gemspecs]
        + [Member("opt/shop.war", war.getvalue()), Member("usr/local/bin/hello", go_binary, mode=0o755)], "pax")
    image = build_image([layer])
    push_image(registry.url, "lang/mixed", "1", image)
    # a tiny in-memory budget: the war (several MB) is spooled to tmp_dir, and deleted after
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(f"tmp_dir: {spool_dir}\nlimits:\n  max_catalog_memory_megabytes: 0.25\n")
    document = json.loads(cli("--config", str(config), "analyze", f"{registry.host}/lang/mixed:1",
                              "--packages", "--json").stdout)
    assert list(spool_dir.iterdir()) == []
    packages = document["packages"]

    installed_npm = {(p["name"], p["version"]) for p in packages if p["type"] == "npm" and p["installed"]
                     and not p.get("metadata", {}).get("application")}
    assert installed_npm == {(m["name"], m["version"]) for m in manifests.values()}
    by_location = {p["location"]: p for p in packages if p["type"] == "npm"}
    for path, listed in manifests.items():
        assert by_location["/srv/" + path]["license"] == listed["license"]
    app = [p for p in packages if p["type"] == "npm" and p.get("metadata", {}).get("application")]
    assert [p["location"] for p in app] == ["/srv/app/package.json"]

    gems = {(p["name"], p["version"]) for p in packages if p["type"] == "gem"}
    assert gems == {tuple(p.stem.rsplit("-", 1)) for p in gemspecs}

    maven = {(p["namespace"], p["name"], p["version"]): p for p in packages if p["type"] == "maven"}
    for name, data in jars.items():
        for coordinates in jar_coordinates(data):
            nested = maven[coordinates]
            assert nested["metadata"]["virtual_path"] == f"/opt/shop.war:WEB-INF/lib/{name}"
            assert nested["metadata"]["sha1"] == hashlib.sha1(data).hexdigest()
            assert nested["purl"] == "pkg:maven/{}/{}@{}".format(*coordinates)
            assert nested["location"] == "/opt/shop.war" and nested["layer"] == image.layers[0].digest

    golang = {p["name"]: p for p in packages if p["type"] == "golang"}
    # as `go version -m` prints it (tests/data/golang/expected-go-version-m.txt): the dependency
    # github.com/pkg/errors is replaced by example.org/forks/errors v0.9.2-fork.1
    assert golang["example.org/forks/errors"]["version"] == "v0.9.2-fork.1"
    assert golang["stdlib"]["version"] == "go1.19.8" and golang["stdlib"]["purl"] == "pkg:golang/stdlib@1.19.8"
    assert golang["example.com/hello2"]["location"] == "/usr/local/bin/hello"
