"""Golden tests of the npm catalogers on real manifests and lockfiles (tests/data/npm, see its
SOURCES.md); expected values come from npm, Yarn and pnpm's own listings."""

import json
import pathlib
import time

import pytest

from analyzerd.analysis.dispatch import Dispatch
from analyzerd.catalogers import npm
from analyzerd.catalogers.base import result_from_json, result_to_json
from analyzerd.catalogers.npm import (NPM_LOCK, NPM_PACKAGE, parse_npm_lockfile, parse_package_json,
                                      parse_package_lock, parse_pnpm_lock, parse_yarn_lock)

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "npm"


def read(relative: str) -> bytes:
    return (DATA / relative).read_bytes()


def expected(name: str):
    return json.loads(read(f"expected/{name}"))


def listed(result) -> list[str]:
    return sorted(f"{p.name}@{p.version}" for p in result.packages)


# -- installed manifests ------------------------------------------------------------------------

@pytest.mark.parametrize("relative", sorted(expected("app-manifests.json")))
def test_installed_manifests_match_npm_ls(relative):
    want = expected("app-manifests.json")[relative]
    result = parse_package_json("/" + relative, read(relative))
    (package,) = result.packages
    assert (package.type, package.name, package.version, package.license) == (
        "npm", want["name"], want["version"], want["license"])
    assert package.declared is False and "application" not in package.metadata
    assert result.warnings == []


def test_manifest_metadata_as_written():
    express = parse_package_json("/app/node_modules/express/package.json",
                                 read("app/node_modules/express/package.json")).packages[0]
    assert express.metadata == {"author": "TJ Holowaychuk <tj@vision-media.ca>", "homepage": "http://expressjs.com/",
                                "description": "Fast, unopinionated, minimalist web framework",
                                "repository": "expressjs/express"}
    # an author object is written in npm's string form "Name <email> (url)"
    has_symbols = parse_package_json("/app/node_modules/has-symbols/package.json",
                                     read("app/node_modules/has-symbols/package.json")).packages[0]
    assert has_symbols.metadata["author"] == "Jordan Harband <ljharb@gmail.com> (http://ljharb.codes)"
    # npm 6 writes its bookkeeping ("_from", "_resolved", ...) into installed manifests
    npm6 = parse_package_json("/app/node_modules/express/package.json",
                              read("app-npm6/node_modules/express/package.json")).packages[0]
    assert (npm6.name, npm6.version, npm6.license) == ("express", "4.22.3", "MIT")


def test_a_manifest_nested_inside_a_package_is_not_a_package():
    relative = "app/node_modules/@babel/runtime/helpers/esm/package.json"
    assert json.loads(read(relative)) == {"type": "module"}
    assert parse_package_json("/" + relative, read(relative)).packages == []
    # decided from the path alone: even a complete manifest deeper inside a package is skipped,
    # and garbage there is no one's problem
    manifest = read("app/node_modules/lodash/package.json")
    for path in ("/app/node_modules/lodash/fp/package.json", "/app/node_modules/x/dist/esm/package.json",
                 "/app/node_modules/.cache/x/package.json", "/usr/share/nodejs/lodash/test/package.json",
                 "/app/node_modules/package.json", "/app/node_modules/@scope/package.json"):
        assert parse_package_json(path, manifest).packages == [], path
    assert parse_package_json("/app/node_modules/x/test/package.json", b"{not json").warnings == []


@pytest.mark.parametrize("path", [
    "/app/node_modules/lodash/package.json",
    "/app/node_modules/@scope/lodash/package.json",
    "/app/node_modules/x/node_modules/lodash/package.json",
    "/app/node_modules/.pnpm/lodash@4.17.21/node_modules/lodash/package.json",
    "/usr/lib/node_modules/npm/node_modules/lodash/package.json",
    "/usr/share/nodejs/lodash/package.json",
    "/usr/lib/nodejs/lodash/package.json",
    "/usr/lib/x86_64-linux-gnu/nodejs/lodash/package.json",
])
def test_installed_locations(path):
    (package,) = parse_package_json(path, read("app/node_modules/lodash/package.json")).packages
    assert (package.name, package.version) == ("lodash", "4.17.21")
    assert "application" not in package.metadata


def test_debian_system_modules_match_their_manifests():
    for relative, want in expected("debian-manifests.json").items():
        result = parse_package_json("/" + relative, read(relative))
        (package,) = result.packages
        assert (package.name, package.version, package.license) == (want["name"], want["version"], want["license"])
        assert package.metadata.get("private", False) is want["private"]
        assert "application" not in package.metadata


def test_application_manifest_is_marked():
    (app,) = parse_package_json("/app/package.json", read("app/package.json")).packages
    assert (app.name, app.version, app.license) == ("app", "1.0.0", "ISC")
    assert app.metadata == {"application": True}  # "author": "" and "description": "" are not values
    (root,) = parse_package_json("/srv/ws/package.json", read("workspace/package.json")).packages
    assert root.metadata == {"private": True, "application": True}


@pytest.mark.parametrize("doc, license", [
    ({"license": "(MIT OR Apache-2.0)"}, "(MIT OR Apache-2.0)"),
    ({"license": {"type": "MIT", "url": "https://opensource.org/licenses/MIT"}}, "MIT"),
    ({"licenses": [{"type": "MIT"}, {"type": "Apache-2.0"}]}, "MIT AND Apache-2.0"),
    ({"licenses": [{"type": "Apache 2.0"}]}, "Apache 2.0"),
    ({"license": 42, "licenses": [{"type": "BSD"}]}, "BSD"),
    ({}, None),
])
def test_license_forms(doc, license):
    data = json.dumps({"name": "x", "version": "1.0.0", **doc}).encode()
    assert parse_package_json("/app/node_modules/x/package.json", data).packages[0].license == license


# -- lockfiles -------------------------------------------------------------------------------

@pytest.mark.parametrize("relative, listing", [
    ("app/package-lock.json", "app-lock.json"),
    ("app-npm6/package-lock.json", "app-npm6-lock.json"),
    ("yarn-v1/yarn.lock", "yarn-v1.json"),
    ("pnpm-v5/pnpm-lock.yaml", "pnpm-v5.json"),
    ("pnpm-v6/pnpm-lock.yaml", "pnpm-v6.json"),
    ("pnpm-v9/pnpm-lock.yaml", "pnpm-v9.json"),
])
def test_lockfiles_match_the_package_managers_listing(relative, listing):
    result = parse_npm_lockfile("/" + relative, read(relative))
    assert listed(result) == expected(listing)
    assert result.warnings == []
    assert all(p.type == "npm" and p.declared for p in result.packages)


def test_npm_lockfile_leaves_out_dev_dependencies_and_keeps_nested_versions():
    result = parse_package_lock("/app/package-lock.json", read("app/package-lock.json"))
    names = listed(result)
    assert "is-number@7.0.0" not in names  # "dev": true
    assert {"ms@2.0.0", "ms@2.1.3", "encodeurl@1.0.4", "encodeurl@2.0.3"} <= set(names)
    assert "app@1.0.0" not in names  # the root "" entry is the project
    lodash = next(p for p in result.packages if p.name == "lodash")
    assert lodash.license == "MIT" and lodash.metadata["integrity"].startswith("sha512-")
    v1 = parse_package_lock("/app/package-lock.json", read("app-npm6/package-lock.json"))
    assert "ms@2.0.0" in listed(v1)  # nested under debug's own dependencies


def test_yarn_berry_leaves_out_the_workspace():
    result = parse_yarn_lock("/app/yarn.lock", read("yarn-berry/yarn.lock"))
    assert listed(result) == [e for e in expected("yarn-berry.json") if e != "app@workspace:."]
    assert result.warnings == []


def test_yarn_and_pnpm_keep_dev_dependencies_as_syft_does():
    for relative in ("yarn-v1/yarn.lock", "yarn-berry/yarn.lock", "pnpm-v5/pnpm-lock.yaml", "pnpm-v9/pnpm-lock.yaml"):
        assert "is-number@7.0.0" in listed(parse_npm_lockfile("/" + relative, read(relative))), relative


def test_workspace_lock_skips_links_and_members():
    result = parse_package_lock("/srv/ws/package-lock.json", read("workspace/package-lock.json"))
    assert listed(result) == [e for e in expected("workspace-lock.json") if not e.startswith("@demo/wa@")]
    assert "is-odd@3.0.1" not in listed(result)  # dev


def test_lockfiles_inside_node_modules_are_skipped():
    for name, relative in (("package-lock.json", "app/package-lock.json"), ("yarn.lock", "yarn-v1/yarn.lock"),
                           ("pnpm-lock.yaml", "pnpm-v9/pnpm-lock.yaml")):
        assert parse_npm_lockfile(f"/app/node_modules/x/{name}", read(relative)) == npm.ParseResult()


def test_dispatch_sends_manifests_and_lockfiles_but_not_the_hidden_lockfile():
    dispatch = Dispatch([NPM_PACKAGE, NPM_LOCK])
    assert dispatch.match("/app/node_modules/.package-lock.json") is None
    assert dispatch.match("/app/node_modules/@babel/runtime/package.json") is NPM_PACKAGE
    assert dispatch.match("/package.json") is NPM_PACKAGE
    for path in ("/app/package-lock.json", "/app/npm-shrinkwrap.json", "/app/yarn.lock", "/pnpm-lock.yaml"):
        assert dispatch.match(path) is NPM_LOCK, path


@pytest.mark.parametrize("lock, names", [
    # v1 aliases and local directories
    ({"lockfileVersion": 1, "dependencies": {
        "cjs": {"version": "npm:string-width@4.2.3"}, "local": {"version": "file:packages/local"}}},
     ["string-width@4.2.3"]),
    # v2 aliases carry the real name; link entries and workspace directories are the project
    ({"lockfileVersion": 2, "packages": {
        "": {"name": "root", "version": "1.0.0"}, "node_modules/cjs": {"name": "string-width", "version": "4.2.3"},
        "node_modules/ws": {"resolved": "packages/ws", "link": True}, "packages/ws": {"name": "ws", "version": "1.0.0"},
        "packages/ws/node_modules/@s/x": {"version": "2.0.0"}}},
     ["@s/x@2.0.0", "string-width@4.2.3"]),
    ({"lockfileVersion": 3}, []),
])
def test_package_lock_forms(lock, names):
    result = parse_package_lock("/app/package-lock.json", json.dumps(lock).encode())
    assert listed(result) == names and result.warnings == []


def test_yarn_v1_aliases_name_the_real_package():
    text = (b'# yarn lockfile v1\n\n"string-width-cjs@npm:string-width@^4.2.0":\n  version "4.2.3"\n'
            b'  resolved "https://registry.yarnpkg.com/string-width/-/string-width-4.2.3.tgz"\n\n'
            b'"@babel/code-frame@^7.0.0", "@babel/code-frame@^7.10.4":\n  version "7.12.11"\n'
            b'  dependencies:\n    "@babel/highlight" "^7.10.4"\n')
    assert listed(parse_yarn_lock("/app/yarn.lock", text)) == ["@babel/code-frame@7.12.11", "string-width@4.2.3"]


def test_pnpm_peer_suffixes_are_not_versions():
    v5 = b"lockfileVersion: 5.4\npackages:\n  /@babel/core/7.0.0_react@17.0.2:\n    dev: true\n  /ms/2.1.3: {}\n"
    assert listed(parse_pnpm_lock("/a/pnpm-lock.yaml", v5)) == ["@babel/core@7.0.0", "ms@2.1.3"]
    v6 = b"lockfileVersion: '6.0'\npackages:\n  /@babel/core@7.0.0(react@17.0.2):\n    dev: false\n"
    assert listed(parse_pnpm_lock("/a/pnpm-lock.yaml", v6)) == ["@babel/core@7.0.0"]
    v9 = (b"lockfileVersion: '9.0'\npackages:\n  mypkg@https://codeload.github.com/o/r/tar.gz/abc:\n"
          b"    resolution: {tarball: https://codeload.github.com/o/r/tar.gz/abc}\n    version: 1.2.0\n"
          b"snapshots:\n  react-dom@18.2.0(react@18.2.0): {}\n")
    assert listed(parse_pnpm_lock("/a/pnpm-lock.yaml", v9)) == ["mypkg@1.2.0", "react-dom@18.2.0"]


# -- hostile and malformed input ------------------------------------------------------------------

@pytest.mark.parametrize("parser, path", [
    (parse_package_json, "/app/package.json"),
    (parse_package_json, "/app/node_modules/x/package.json"),
    (parse_package_lock, "/app/package-lock.json"),
    (parse_yarn_lock, "/app/yarn.lock"),
    (parse_pnpm_lock, "/app/pnpm-lock.yaml"),
])
@pytest.mark.parametrize("data", [b"\x00\x01\x02binary\xff" * 100, b'{"name": "x", "version": ', b"[1, 2]",
                                  b"[" * 100_000, b"__metadata:\n  version: [unclosed\n"])
def test_garbage_warns_naming_the_file(parser, path, data):
    result = parser(path, data)
    assert result.packages == []
    if parser is parse_yarn_lock and not data.startswith((b"\x00", b"__metadata")):
        return  # Yarn 1's format is line-based: text without entries is an empty lockfile
    assert result.warnings and all(w.startswith(path + ": ") for w in result.warnings)


def test_manifest_without_name_or_version_is_silent():
    for data in (b'{"type": "module"}', b'{"name": "x"}', b'{"version": "1.0.0"}', b'{"name": "", "version": ""}'):
        assert parse_package_json("/app/node_modules/x/package.json", data) == npm.ParseResult()
    assert parse_package_json("/app/node_modules/x/package.json", b'{"name": 1, "version": "1"}').warnings


def test_entry_counts_are_bounded(monkeypatch):
    monkeypatch.setattr(npm, "MAX_LOCK_ENTRIES", 10)
    packages = {f"node_modules/p{i}": {"version": "1.0.0"} for i in range(50)}
    result = parse_package_lock("/app/package-lock.json",
                                json.dumps({"lockfileVersion": 3, "packages": packages}).encode())
    assert len(result.packages) == 10
    assert result.warnings == ["/app/package-lock.json: more than 10 entries; the rest skipped"]
    yarn = b"".join(b'p%d@^1:\n  version "1.0.0"\n\n' % i for i in range(50))
    assert len(parse_yarn_lock("/app/yarn.lock", yarn).packages) == 10
    pnpm = b"lockfileVersion: '9.0'\npackages:\n" + b"".join(b"  p%d@1.0.0: {}\n" % i for i in range(50))
    assert len(parse_pnpm_lock("/app/pnpm-lock.yaml", pnpm).packages) == 10


def test_v1_nesting_is_bounded():
    level: dict = {}
    for i in range(300):
        level = {f"p{i}": {"version": "1.0.0", "dependencies": level}}
    result = parse_package_lock("/app/package-lock.json",
                                json.dumps({"lockfileVersion": 1, "dependencies": level}).encode())
    assert len(result.packages) == npm.MAX_V1_DEPTH


def test_yaml_aliases_cost_nothing():
    bomb = b"lockfileVersion: '9.0'\na: &a [x,x,x,x,x,x,x,x,x]\n"
    for prev, name in zip("abcdefgh", "bcdefghi"):
        bomb += f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n".encode()
    bomb += b"packages: {x@1: *i, y@2: {}}\n"
    start = time.monotonic()
    result = parse_pnpm_lock("/app/pnpm-lock.yaml", bomb)
    assert listed(result) == ["x@1", "y@2"] and time.monotonic() - start < 1


def test_entries_without_versions_are_counted_once():
    lock = {"lockfileVersion": 3, "packages": {"node_modules/a": {}, "node_modules/b": {"version": 3},
                                               "node_modules/c": {"version": "1.0.0"}}}
    result = parse_package_lock("/app/package-lock.json", json.dumps(lock).encode())
    assert listed(result) == ["c@1.0.0"]
    assert result.warnings == ["/app/package-lock.json: 2 entries without a name or version; skipped"]


def test_memoryview_input_and_database_round_trip():
    data = read("app/package-lock.json")
    result = parse_package_lock("/app/package-lock.json", memoryview(data))
    assert listed(result) == listed(parse_package_lock("/app/package-lock.json", data))
    again = result_from_json(json.loads(json.dumps(result_to_json(result))))
    assert again.packages == result.packages


def _lock_view(result):
    return [(p.name, p.version, p.metadata.get("resolved"), p.metadata.get("integrity")) for p in result.packages]


def test_package_lock_v1_keeps_every_good_entry_after_odd_ones():
    """Entries that are not objects or have no version are counted in one warning, local
    directories and development dependencies left out, and none of them stops the entries
    after it: an alias is reported under its real name, nested dependencies too, each with
    its resolved URL and integrity."""
    lock = {"lockfileVersion": 1, "dependencies": {
        "broken": "not an object", "broken2": 5, "local": {"version": "file:../local"},
        "alias": {"version": "npm:real-name@1.2.3", "resolved": "https://r.example/real-name-1.2.3.tgz",
                  "integrity": "sha512-AAA"},
        "devonly": {"version": "1.0.0", "dev": True},
        "left-pad": {"version": "1.3.0", "resolved": "https://r.example/left-pad-1.3.0.tgz", "integrity": "sha512-BBB",
                     "dependencies": {"nested": {"version": "2.0.0", "integrity": "sha1-CCC"}}},
        "noversion": {"resolved": "https://r.example/x.tgz"}}}
    result = npm.parse_package_lock("/app/package-lock.json", json.dumps(lock).encode())
    assert _lock_view(result) == [
        ("left-pad", "1.3.0", "https://r.example/left-pad-1.3.0.tgz", "sha512-BBB"),
        ("nested", "2.0.0", None, "sha1-CCC"),
        ("real-name", "1.2.3", "https://r.example/real-name-1.2.3.tgz", "sha512-AAA")]
    assert result.warnings == ["/app/package-lock.json: 3 entries without a name or version; skipped"]


def test_yarn_berry_lock_keeps_every_good_entry_after_odd_ones():
    text = b"""__metadata:
  version: 6
  cacheKey: 8

"broken@npm:1.0.0": just a string
"broken2@npm:1.0.0": 7
"my-app@workspace:.":
  version: 0.0.0-use.local
  resolution: "my-app@workspace:."
"left-pad@npm:^1.3.0":
  version: 1.3.0
  resolution: "left-pad@npm:1.3.0"
  checksum: 0123abcd
"no-resolution@npm:^2.0.0, other-name@npm:^2.1.0":
  version: 2.1.0
"@scope/pkg@npm:1.0.0":
  version: 1.0.0
  resolution: "@scope/pkg@npm:1.0.0"
"versionless@npm:1.0.0":
  resolution: "versionless@npm:1.0.0"
"""
    result = npm.parse_yarn_lock("/app/yarn.lock", text)
    assert [(p.name, p.version) for p in result.packages] == [
        ("@scope/pkg", "1.0.0"), ("left-pad", "1.3.0"), ("no-resolution", "2.1.0")]
    assert result.warnings == ["/app/yarn.lock: 3 entries without a name or version; skipped"]


def test_yarn_v1_lock_reads_top_level_fields_only():
    text = b"""# THIS IS AN AUTOGENERATED FILE. DO NOT EDIT THIS FILE DIRECTLY.
# yarn lockfile v1


"@scope/pkg@^1.0.0", "@scope/pkg@^1.1.0":
  version "1.1.0"
  resolved "https://registry.yarnpkg.com/@scope/pkg/-/pkg-1.1.0.tgz#abc"
  integrity sha512-XYZ
  dependencies:
    version "9.9.9"
    dep "^2.0.0"

alias@npm:real-name@^3.0.0:
  version "3.0.1"

noversion@^1.0.0:
  resolved "https://registry.yarnpkg.com/noversion/-/noversion-1.0.0.tgz"
"""
    result = npm.parse_yarn_lock("/app/yarn.lock", text)
    assert _lock_view(result) == [
        ("@scope/pkg", "1.1.0", "https://registry.yarnpkg.com/@scope/pkg/-/pkg-1.1.0.tgz#abc", "sha512-XYZ"),
        ("real-name", "3.0.1", None, None)]
    assert result.warnings == ["/app/yarn.lock: 1 entries without a name or version; skipped"]


@pytest.mark.parametrize("version, text, expected", [
    ("5.4", b"""lockfileVersion: 5.4
packages:
  /left-pad/1.3.0:
    resolution: {integrity: sha512-AAA}
  /@scope/pkg/2.0.0_react@18.2.0:
    resolution: {integrity: sha512-BBB}
  /odd/1.0.0: just a string
""", [("@scope/pkg", "2.0.0", None, "sha512-BBB"), ("left-pad", "1.3.0", None, "sha512-AAA"),
          ("odd", "1.0.0", None, None)]),
    ("6.0", b"""lockfileVersion: '6.0'
packages:
  /@scope/pkg@2.0.0(react@18.2.0):
    resolution: {integrity: sha512-BBB}
  github.com/user/repo/abc123:
    resolution: {tarball: https://codeload.github.com/user/repo/tar.gz/abc123}
    name: from-git
    version: 0.1.0
""", [("@scope/pkg", "2.0.0", None, "sha512-BBB"), ("from-git", "0.1.0", None, None)]),
    ("9.0", b"""lockfileVersion: '9.0'
packages:
  left-pad@1.3.0:
    resolution: {integrity: sha512-AAA}
snapshots:
  left-pad@1.3.0: {}
  '@scope/pkg@2.0.0(react@18.2.0)': {}
""", [("@scope/pkg", "2.0.0", None, None), ("left-pad", "1.3.0", None, "sha512-AAA")]),
])
def test_pnpm_lock_versions(version, text, expected):
    """pnpm's three key layouts; a git dependency names itself; the integrity is kept; the
    snapshots section of 9.x adds what packages lacks."""
    result = npm.parse_pnpm_lock("/app/pnpm-lock.yaml", text)
    assert _lock_view(result) == expected and result.warnings == []


def test_pnpm_lock_without_a_version_is_refused_by_name():
    result = npm.parse_pnpm_lock("/app/pnpm-lock.yaml", b"packages:\n  /a/1.0.0: {}\n")
    assert result.packages == [] and result.warnings == ["/app/pnpm-lock.yaml: no lockfileVersion; not a pnpm lockfile"]


@pytest.mark.parametrize("path, role", [
    ("/app/node_modules/left-pad/package.json", "installed"),
    ("/app/node_modules/@scope/pkg/package.json", "installed"),
    ("/app/node_modules/a/node_modules/b/package.json", "installed"),  # the last node_modules decides
    ("/app/node_modules/left-pad/lib/package.json", None),  # nested inside a package
    ("/app/node_modules/.bin/package.json", None),  # dot directories are npm's own
    ("/app/node_modules/@/pkg/package.json", None),  # "@" alone is no scope
    ("/app/node_modules/@scope/.cache/package.json", None),
    ("/app/node_modules/@scope/package.json", None),  # a scope is not a package
    ("/app/node_modules/noscope/pkg/package.json", None),
    ("/usr/share/nodejs/debian-pkg/package.json", "installed"),
    ("/usr/lib/x86_64-linux-gnu/nodejs/native/package.json", "installed"),
    ("/usr/share/nodejs/debian-pkg/sub/package.json", None),
    ("/app/package.json", "application"),
    ("/app/node_modules/@a/pkg/package.json", "installed"),  # a one-letter scope
    ("/app/node_modules/XMLHttpRequest/package.json", "installed"),  # a legacy upper-case name
    ("/app/node_modules//package.json", None),  # an empty directory name is no package
    ("/usr/share/nodejs//package.json", None),
])
def test_which_package_json_is_an_installed_package(path, role):
    assert npm._manifest_role(path) == role


def test_repository_object_gives_its_url():
    (debug,) = parse_package_json("/app/node_modules/debug/package.json",
                                  read("app/node_modules/debug/package.json")).packages
    assert debug.metadata["repository"] == json.loads(read("app/node_modules/debug/package.json"))["repository"]["url"]


def test_author_object_without_a_name():
    data = json.dumps({"name": "x", "version": "1.0.0", "author": {"email": "dev@example.invalid"}}).encode()
    (package,) = parse_package_json("/app/node_modules/x/package.json", data).packages
    assert package.metadata["author"] == "<dev@example.invalid>"


def test_license_blank_values_and_the_list_bound():
    """A blank "license" falls back to "licenses"; blank entries of a list are no license; a
    list keeps its first 64 entries."""
    path = "/app/node_modules/x/package.json"
    for doc, want in [({"license": "", "licenses": [{"type": "MIT"}]}, "MIT"),
                      ({"license": ["MIT", " ", "ISC"]}, "MIT AND ISC"),
                      ({"license": [f"L{i}" for i in range(65)]}, " AND ".join(f"L{i}" for i in range(64)))]:
        data = json.dumps({"name": "x", "version": "1.0.0", **doc}).encode()
        assert parse_package_json(path, data).packages[0].license == want


def test_manifest_with_a_stray_latin1_byte_is_still_read():
    data = b'{"name": "x", "version": "1.0.0", "description": "caf\xe9 helper"}'
    (package,) = parse_package_json("/app/node_modules/x/package.json", data).packages
    assert (package.name, package.version, package.metadata["description"]) == ("x", "1.0.0", "caf\ufffd helper")


def test_manifest_name_and_version_checks():
    """An empty name or version (one of them) is silent, as a manifest without them; a blank
    or non-string one is a warning naming the file."""
    path = "/app/node_modules/x/package.json"
    for doc in ({"name": "", "version": "1.0.0"}, {"name": "x", "version": ""}):
        assert parse_package_json(path, json.dumps(doc).encode()) == npm.ParseResult()
    for doc in ({"name": " ", "version": "1.0.0"}, {"name": "x", "version": 1}):
        result = parse_package_json(path, json.dumps(doc).encode())
        assert result.packages == []
        assert result.warnings == [f"{path}: package.json name or version is not a string; skipped"]


@pytest.mark.parametrize("parser, path, data, warning", [
    (parse_package_json, "/app/package.json", b"{",
     "not a valid package.json (JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    (parse_package_lock, "/app/package-lock.json", b"{",
     "not a valid npm lockfile (JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    (parse_package_lock, "/app/package-lock.json", b'{"name": "app"}',
     "no lockfileVersion, packages or dependencies; not an npm lockfile"),
    (parse_yarn_lock, "/app/yarn.lock", b"__metadata:\n  version: [unclosed\n",
     "not a valid yarn.lock (YAML: while parsing a flow sequence)"),
    (parse_pnpm_lock, "/app/pnpm-lock.yaml", b"lockfileVersion: [unclosed\n",
     "not a valid pnpm-lock.yaml (YAML: while parsing a flow sequence)"),
    (parse_npm_lockfile, "/app/bun.lockb", b"{}", "not a JavaScript lockfile name"),
])
def test_warnings_name_the_file_and_what_it_should_be(parser, path, data, warning):
    result = parser(path, data)
    assert result.packages == [] and result.warnings == [f"{path}: {warning}"]


def test_package_lock_v2_odd_entries_and_resolved_urls():
    """An entry that is not an object is passed over; an empty name or version counts as
    missing; resolved and integrity are kept when they are strings."""
    lock = {"lockfileVersion": 3, "packages": {
        "": {"name": "app", "version": "1.0.0"},
        "node_modules/junk": "not an object",
        "node_modules/empty-name": {"name": "", "version": "1.0.0"},
        "node_modules/odd-meta": {"version": "1.0.0", "resolved": 5, "integrity": ["sha512-X"]},
        "node_modules/left-pad": {"version": "1.3.0", "resolved": "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz",
                                  "integrity": "sha512-AAA"}}}
    result = parse_package_lock("/app/package-lock.json", json.dumps(lock).encode())
    assert _lock_view(result) == [
        ("left-pad", "1.3.0", "https://registry.npmjs.org/left-pad/-/left-pad-1.3.0.tgz", "sha512-AAA"),
        ("odd-meta", "1.0.0", None, None)]
    assert result.warnings == ["/app/package-lock.json: 1 entries without a name or version; skipped"]


def test_yarn_v1_lines_as_yarn_reads_them():
    """Only entries at column 0 and fields indented by exactly two spaces count: a line
    indented otherwise is neither; a nested dependency named like a field does not fill it;
    a quoted key is the same key; an integrity of two hashes is kept whole; names and values
    are kept to their last character."""
    text = b"""# yarn lockfile v1

XMLHttpRequest@^1.4.2:
  version "1.4.2"
  resolved "https://registry.example.invalid/XMLHttpRequest-1.4.2.tgz?sig=ABCX"

"Xpath@^0.0.1":
  "version" "0.0.27"
 stray "line"
\ttabbed "line"
  integrity "sha512-AAA sha1-BBB"

old-entry@^1.0.0:
  version "1.0.0"
  dependencies:
    integrity "^2.0.0"
    resolved "^1.0.0"
"""
    result = parse_yarn_lock("/app/yarn.lock", text)
    assert _lock_view(result) == [
        ("XMLHttpRequest", "1.4.2", "https://registry.example.invalid/XMLHttpRequest-1.4.2.tgz?sig=ABCX", None),
        ("Xpath", "0.0.27", None, "sha512-AAA sha1-BBB"),
        ("old-entry", "1.0.0", None, None)]
    assert result.warnings == []


def test_yarn_berry_alias_resolution_names_the_real_package_and_entries_are_bounded(monkeypatch):
    text = b"""__metadata:
  version: 8
  cacheKey: 10c0

"string-width-cjs@npm:string-width@^4.2.0":
  version: 4.2.3
  resolution: "string-width@npm:4.2.3"
  checksum: 10c0/abc
"""
    assert listed(parse_yarn_lock("/app/yarn.lock", text)) == ["string-width@4.2.3"]
    monkeypatch.setattr(npm, "MAX_LOCK_ENTRIES", 2)
    many = b"__metadata:\n  version: 8\n" + b"".join(
        b'"p%d@npm:1.0.0":\n  version: 1.0.0\n  resolution: "p%d@npm:1.0.0"\n' % (i, i) for i in range(5))
    result = parse_yarn_lock("/app/yarn.lock", many)
    assert listed(result) == ["p0@1.0.0", "p1@1.0.0"]
    assert result.warnings == ["/app/yarn.lock: more than 2 entries; the rest skipped"]


def test_pnpm_keys_with_several_peers_and_odd_sections():
    """Every peer suffix is cut: several "(...)" groups (6.x, 9.x), several "_" (5.x, peer
    names may hold "_"); a key without a version is counted as skipped, naming the file; a
    missing packages section does not hide snapshots; an upper-case legacy name is kept."""
    v5 = (b"lockfileVersion: 5.4\npackages:\n  /XMLHttpRequest/1.4.2: {}\n"
          b"  /styled/5.3.0_react_dom@17.0.2_react@17.0.2: {}\n")
    assert listed(parse_pnpm_lock("/a/pnpm-lock.yaml", v5)) == ["XMLHttpRequest@1.4.2", "styled@5.3.0"]
    v6 = (b"lockfileVersion: '6.0'\npackages:\n  /@mui/material@5.15.0(@types/react@18.2.0)(react@18.2.0): {}\n"
          b"  github.com/user/repo/abc123:\n    resolution: {tarball: https://codeload.github.com/user/repo/tar.gz/abc123}\n")
    result = parse_pnpm_lock("/a/pnpm-lock.yaml", v6)
    assert listed(result) == ["@mui/material@5.15.0"]
    assert result.warnings == ["/a/pnpm-lock.yaml: 1 entries without a name or version; skipped"]
    v9 = b"lockfileVersion: '9.0'\nsnapshots:\n  ms@2.1.3: {}\n"
    assert listed(parse_pnpm_lock("/a/pnpm-lock.yaml", v9)) == ["ms@2.1.3"]


def test_yarn_v1_alias_without_a_range():
    """`"x": "npm:real"` in package.json locks as the descriptor "x@npm:real" (quoted, as Yarn
    quotes any key holding ":"), alone or first among the entry's descriptors: it names the
    real package."""
    text = (b'# yarn lockfile v1\n\n'
            b'"string-width-cjs@npm:string-width", "string-width-cjs@npm:string-width@^4.1.0", '
            b'"string-width-cjs@npm:string-width@^4.2.0":\n  version "4.2.3"\n\n'
            b'"wrap-ansi-cjs@npm:wrap-ansi":\n  version "7.0.0"\n')
    result = parse_yarn_lock("/app/yarn.lock", text)
    assert listed(result) == ["string-width@4.2.3", "wrap-ansi@7.0.0"] and result.warnings == []


# Mutation survivors that cannot matter (tools/mutation.sh catalogers):
# - npm _load_json, parse_yarn_lock, parse_pnpm_lock: `"UTF-8-SIG"` for "utf-8-sig": codec names are
#   case-insensitive.
# - npm _split_spec: `at <= 0`, `at < 1` for `at < 0`: find("@", 1) starts at index 1, so it never
#   returns 0.
# - npm _lock_v2: `key == "XXXX"`: the project's own "" entry then reaches the "node_modules/" test,
#   which it fails, so it is passed over all the same.
# - npm _yarn_v1_entries: `fields = None` before the first entry: fields are only yielded with a
#   descriptor, and each descriptor line sets a fresh {}.
# - npm _yarn_v1_entries: `.split(",")` without a limit, `.split(",", 2)`: item [0] is the same first
#   descriptor; `line.lstrip()` for `line.rstrip()`: an entry line starts at column 0 and Yarn writes
#   no blank after its colon; `.rstrip("XX:XX")`: the colon goes as before, and an "X" before it only at
#   the end of an unquoted descriptor, which ends in its range (a quoted one ends in its quote).
# - npm _yarn_v1_entries: `if value or not value.endswith(":")`, `endswith("XX:XX")`: a two-space line
#   without a value is a block header ("dependencies:"), stored under a key with its colon that is never
#   read; Yarn writes no version, resolved or integrity ending in ":".
# - npm _yarn_v1_entries: `key.strip('XX"XX')`: the keys read (version, resolved, integrity) neither
#   start nor end with "X".
# - npm _yarn_berry: the key's first descriptor by `split(None, 1)`, `split(",")`, `rsplit(",", 1)`,
#   `split("XX,XX", 1)`, `split(",", 2)` (only for an entry without "resolution", which Yarn 2+ always
#   writes): the name ends at its "@" and only the start of the reference is tested (workspace:, ...),
#   both the same in every variant.
# - npm _pnpm_key: `split("(")`, `split("(", 2)`, `split("_")`, `split("_", 2)`: item [0], the part
#   before the first peer suffix, is the same.
# - npm _pnpm_major: `if value is not None or True`: str(None) is "None", which the leading-integer
#   pattern does not match, so the major version is None either way.
