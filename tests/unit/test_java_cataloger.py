"""Golden tests of the Java archive cataloger on real Debian jars (tests/data/java, see its
SOURCES.md), on a war, a Spring Boot fat jar and an ear built here from those jars, and on
hostile archives (bombs, deep nesting, damaged zips): each gives a warning naming the file.

Expected coordinates are those of the jars' own pom.properties, as `unzip -p JAR
'META-INF/maven/*/*/pom.properties'` prints them; SHA-1s are `sha1sum` of the jar files;
manifest values are those Java's own java.util.jar.Manifest reads from the jars.
"""

import hashlib
import io
import mmap
import os
import struct
import tempfile
import zipfile
import zlib

import pytest

from analyzerd.catalogers import java
from analyzerd.catalogers.java import (JAVA_ARCHIVE, MAX_INFLATED_BYTES, MAX_MEMBERS, MAX_NESTED_ARCHIVE_BYTES,
                                       MAX_NESTING_DEPTH, archive_filename, parse_java_archive, parse_manifest,
                                       parse_pom_xml)

JARS = os.path.join(os.path.dirname(__file__), "..", "data", "java", "usr", "share", "java")
S, D = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED

# unzip -p JAR 'META-INF/maven/*/*/pom.properties' (groupId, artifactId, version); sha1sum JAR
REAL = {
    "commons-lang3.jar": ("org.apache.commons", "commons-lang3", "3.12.0", "003d0394826097ee9becbd2938fa61374c78dae0"),
    "commons-io.jar": ("commons-io", "commons-io", "2.11.0", "72d7095aef5a919286d5ebef32bf9a19ca46c105"),
    "slf4j-api.jar": ("org.slf4j", "slf4j-api", "1.7.32", "c2da549972bd86ce3bd92029c12dfdde62fb253a"),
    "slf4j-simple.jar": ("org.slf4j", "slf4j-simple", "1.7.32", "5177034ad329e4d9aa655a9b7b017b3348b11af7"),
}


def real(name):
    with open(os.path.join(JARS, name), "rb") as f:
        return f.read()


def build(members, *, prepend=b""):
    """A zip of (name, bytes, compress_type) members, as jar, war and Spring Boot tools write."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data, method in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.compress_type = method
            archive.writestr(info, data)
    return prepend + out.getvalue()


def manifest(**fields):
    lines = ["Manifest-Version: 1.0"] + [f"{key.replace('_', '-')}: {value}" for key, value in fields.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def coordinates(result):
    return [(p.namespace, p.name, p.version, p.metadata["virtual_path"], p.metadata.get("sha1"))
            for p in result.packages]


# -- real jars -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(REAL))
def test_real_jars_are_their_pom_properties(name):
    group, artifact, version, _ = REAL[name]
    path = f"/usr/share/java/{name}"
    result = parse_java_archive(path, real(name))
    assert result.warnings == []
    (package,) = result.packages
    assert (package.type, package.namespace, package.name, package.version) == ("maven", group, artifact, version)
    assert package.metadata["virtual_path"] == path
    assert package.metadata["pom_path"] == f"META-INF/maven/{group}/{artifact}/pom.properties"
    assert "sha1" not in package.metadata  # the top-level archive's digest comes from the layer stream
    assert package.license is None  # no Bundle-License, and their POMs list no licenses


def test_manifest_values_match_java_util_jar():
    # java.util.jar.Manifest.getMainAttributes().getValue(...) on the same jars (JDK 17)
    lang = parse_manifest(zipfile.ZipFile(os.path.join(JARS, "commons-lang3.jar")).read("META-INF/MANIFEST.MF"))
    assert lang.get("Include-Resource") == "META-INF/NOTICE.txt=NOTICE.txt,META-INF/LICENSE.txt=LICENSE.txt"
    assert lang.get("Require-Capability") == 'osgi.ee;filter:="(&(osgi.ee=JavaSE)(version=1.8))"'
    assert lang.get("Bundle-Description") == (
        "Apache Commons Lang, a package of Java utility classes for the  classes that are in java.lang's hierarchy, "
        "or are considered to be sostandard as to justify existence in java.lang.")
    io_manifest = parse_manifest(zipfile.ZipFile(os.path.join(JARS, "commons-io.jar")).read("META-INF/MANIFEST.MF"))
    assert io_manifest.get("Import-Package") == "sun.misc;resolution:=optional,sun.nio.ch;resolution:=optional"
    package = parse_java_archive("/usr/share/java/slf4j-api.jar", real("slf4j-api.jar")).packages[0]
    assert package.metadata["manifest"] == {
        "Implementation-Title": "slf4j-api", "Implementation-Version": "1.7.32", "Bundle-Name": "slf4j-api",
        "Bundle-SymbolicName": "slf4j.api", "Bundle-Version": "1.7.32", "Automatic-Module-Name": "org.slf4j",
        "Created-By": "Apache Maven 3.6.3"}


def test_manifest_continuations_line_ends_and_split_characters():
    # a 72-byte line may end inside a UTF-8 character; CR LF, LF and lone CR all end lines
    text = "Ünïcödé wrapped at the byte limit".encode()
    raw = (b"Manifest-Version: 1.0\r\nImplementation-Title: " + text[:8] + b"\r\n " + text[8:] + b"\n"
           b"Bundle-Name: a\r\n  b\rNo colon here\r\n\r\nName: x/\r\nImplementation-Version: 9\r\n")
    parsed = parse_manifest(raw)
    assert parsed.get("Implementation-Title") == "Ünïcödé wrapped at the byte limit"
    assert parsed.get("Bundle-Name") == "a b"
    assert parsed.field("Implementation-Version") == "9" and parsed.get("Implementation-Version") == ""
    assert parse_manifest(b"Implementation-Title: cut\r\nImplementation-Vers", complete=False).main == {
        "Implementation-Title": "cut"}


def test_manifest_header_lines_as_syft_reads_them():
    # as Syft 1.18.1 reads the same manifest: "Name:value" without the space; a line with no name or
    # no colon is skipped and starts no section; bytes that are not UTF-8 are replaced, in names and values
    raw = (b": no name\r\nnot a header line\r\nCreated-By:Maven 3.9\r\nX-Vendor\xff: Soci\xe9t\xe9\r\n"
           b"Implementation-Version:  2.0 \r\n")
    assert parse_manifest(raw).main == {"Created-By": "Maven 3.9", "X-Vendor\ufffd": "Soci\ufffdt\ufffd",
                                        "Implementation-Version": "2.0"}
    assert parse_manifest(b"").main == {} and parse_manifest(b"").sections == []


def test_manifest_last_line_is_kept_unless_the_read_cut_it():
    # a complete manifest whose last line has no line end still gives that line
    unended = parse_manifest(b"Manifest-Version: 1.0\r\nImplementation-Version: 2.5")
    assert unended.get("Implementation-Version") == "2.5"
    # a cut one drops its last line even when the cut left a colon in it ("1.2" of "1.2.3")
    assert parse_manifest(b"Implementation-Title: cut\r\nImplementation-Version: 1.2", complete=False).main == {
        "Implementation-Title": "cut"}
    data = build([("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\r\nImplementation-Version: 2.5", D)])
    assert [(p.name, p.version) for p in parse_java_archive("/opt/widgets.jar", data).packages] == [("widgets", "2.5")]


def test_manifest_field_falls_back_to_the_first_per_entry_section_having_it():
    raw = (b"Manifest-Version: 1.0\r\n\r\nName: a/\r\nImplementation-Title: a\r\n\r\n"
           b"Name: b/\r\nBundle-License: MIT\r\n\r\n")
    parsed = parse_manifest(raw)
    assert parsed.field("Bundle-License") == "MIT"  # the first section has other keys only
    assert parsed.field("Plugin-License-Name") == ""  # in no section
    (package,) = parse_java_archive("/opt/widgets-1.0.jar", build([("META-INF/MANIFEST.MF", raw, D)])).packages
    assert package.license == "MIT"


def test_a_manifest_longer_than_the_read_bound_is_read_up_to_it_and_its_cut_line_dropped(monkeypatch):
    head = b"Manifest-Version: 1.0\r\nImplementation-Title: widgets\r\n"
    monkeypatch.setattr(java, "MAX_METADATA_BYTES", len(head) + len(b"Implementation-Version: 1.2"))
    data = build([("META-INF/MANIFEST.MF", head + b"Implementation-Version: 1.2.3\r\n", D)])
    result = parse_java_archive("/opt/widgets.jar", data)
    assert result.warnings == []
    (package,) = result.packages
    assert package.metadata["manifest"] == {"Implementation-Title": "widgets"}
    assert package.version == ""  # not "1.2": the line was cut


def test_group_ids_from_the_manifest_drop_osgi_directives_and_fragments():
    osgi = build([("META-INF/MANIFEST.MF", manifest(Bundle_SymbolicName="org.example.widgets;singleton:=true",
                                                    Bundle_Version="3.1"), D)])
    vendor = build([("META-INF/MANIFEST.MF", manifest(Implementation_Vendor_Id="com.example#tools",
                                                      Implementation_Version="3.1"), D)])
    # as Syft 1.18.1 reads the same jars: pkg:maven/org.example.widgets/widgets@3.1, pkg:maven/com.example/tools@3.1
    assert coordinates(parse_java_archive("/opt/widgets.jar", osgi)) == [
        ("org.example.widgets", "widgets", "3.1", "/opt/widgets.jar", None)]
    assert coordinates(parse_java_archive("/opt/tools.jar", vendor)) == [
        ("com.example", "tools", "3.1", "/opt/tools.jar", None)]


@pytest.mark.parametrize("path, name, version", [
    # Syft's own cases (syft/pkg/cataloger/java/archive_filename_test.go)
    ("pkg-maven-4.3.2.blerg", "pkg-maven", "4.3.2"),
    ("/some/path/pkg-extra-field-maven-4.3.2-rc1.jpi", "pkg-extra-field-maven", "4.3.2-rc1"),
    ("/some/path-with-version-5.4.3/wagon-webdav-1.0.2-beta-2.2.3a-hudson.jar", "wagon-webdav",
     "1.0.2-beta-2.2.3a-hudson"),
    ("/some/path-with-version-5.4.3/wagon-http-lightweight-1.0.5-beta-2.jar", "wagon-http-lightweight", "1.0.5-beta-2"),
    ("WEB-INF/lib/jtidy-4aug2000r7-dev-hudson-1.jar", "jtidy", "4aug2000r7-dev-hudson-1"),
    ("WEB-INF/lib/trilead-ssh2-build212-hudson-5.jar", "trilead-ssh2", "build212-hudson-5"),
    ("WEB-INF/lib/guava-r06.jar", "guava", "r06"),
    ("BOOT-INF/lib/spring-data-r2dbc-1.1.0.RELEASE.jar", "spring-data-r2dbc", "1.1.0.RELEASE"),
    ("jboss-saaj-api_1.4_spec-1.0.2.Final.jar", "jboss-saaj-api_1.4_spec", "1.0.2.Final"),
    ("liferay-package.lpkg", "liferay-package", ""),
    ("/opt/lib/tool-2", "tool", "2"),  # no extension: Go's filepath.Ext is empty, nothing is cut
])
def test_names_and_versions_from_file_names(path, name, version):
    assert archive_filename(path) == (name, version)


# -- archives built from the real jars ------------------------------------------------------------

def war():
    return build([("META-INF/MANIFEST.MF", manifest(Implementation_Title="shop", Implementation_Version="1.4.2"), D),
                  ("WEB-INF/web.xml", b"<web-app/>", D),
                  ("WEB-INF/classes/shop/Cart.class", b"\xca\xfe\xba\xbe", D),
                  ("WEB-INF/lib/commons-lang3-3.12.0.jar", real("commons-lang3.jar"), D),
                  ("WEB-INF/lib/slf4j-api-1.7.32.jar", real("slf4j-api.jar"), S)])


def test_war_with_deflated_and_stored_libraries():
    result = parse_java_archive("/app/shop.war", war())
    assert result.warnings == []
    assert coordinates(result) == [
        (None, "shop", "1.4.2", "/app/shop.war", None),  # no groupId anywhere in the war
        ("org.apache.commons", "commons-lang3", "3.12.0", "/app/shop.war:WEB-INF/lib/commons-lang3-3.12.0.jar",
         REAL["commons-lang3.jar"][3]),
        ("org.slf4j", "slf4j-api", "1.7.32", "/app/shop.war:WEB-INF/lib/slf4j-api-1.7.32.jar",
         REAL["slf4j-api.jar"][3]),
    ]


def spring_boot_jar(prepend=b""):
    # Spring Boot's layout: BOOT-INF/lib jars stored uncompressed, its own Maven metadata
    return build([("META-INF/MANIFEST.MF", manifest(Main_Class="org.springframework.boot.loader.JarLauncher",
                                                    Start_Class="com.example.demo.DemoApplication",
                                                    Spring_Boot_Lib="BOOT-INF/lib/"), D),
                  ("META-INF/maven/com.example/demo/pom.properties",
                   b"artifactId=demo\ngroupId=com.example\nversion=0.0.1-SNAPSHOT\n", D),
                  ("META-INF/maven/com.example/demo/pom.xml",
                   b"<project xmlns='http://maven.apache.org/POM/4.0.0'><parent><groupId>org.springframework.boot"
                   b"</groupId><artifactId>spring-boot-starter-parent</artifactId><version>2.7.18</version></parent>"
                   b"<groupId>com.example</groupId><artifactId>demo</artifactId><version>0.0.1-SNAPSHOT</version>"
                   b"<licenses><license><name>Apache-2.0</name></license></licenses></project>", D),
                  ("BOOT-INF/classes/application.properties", b"server.port=8080\n", D),
                  ("BOOT-INF/lib/commons-io-2.11.0.jar", real("commons-io.jar"), S),
                  ("BOOT-INF/lib/slf4j-simple-1.7.32.jar", real("slf4j-simple.jar"), S)], prepend=prepend)


@pytest.mark.parametrize("prepend", [b"", b"#!/bin/bash\n# launch script of a fully executable jar\n" * 40])
def test_spring_boot_fat_jar(prepend):
    result = parse_java_archive("/app/demo-0.0.1-SNAPSHOT.jar", spring_boot_jar(prepend))
    assert result.warnings == []
    assert coordinates(result) == [
        ("com.example", "demo", "0.0.1-SNAPSHOT", "/app/demo-0.0.1-SNAPSHOT.jar", None),
        ("commons-io", "commons-io", "2.11.0", "/app/demo-0.0.1-SNAPSHOT.jar:BOOT-INF/lib/commons-io-2.11.0.jar",
         REAL["commons-io.jar"][3]),
        ("org.slf4j", "slf4j-simple", "1.7.32", "/app/demo-0.0.1-SNAPSHOT.jar:BOOT-INF/lib/slf4j-simple-1.7.32.jar",
         REAL["slf4j-simple.jar"][3]),
    ]
    assert result.packages[0].license == "Apache-2.0"  # from the pom.xml beside the matching pom.properties


def test_ear_holding_a_war_holding_jars():
    ear = build([("META-INF/application.xml", b"<application/>", D), ("shop.war", war(), S),
                 ("lib/slf4j-simple-1.7.32.jar", real("slf4j-simple.jar"), D)])
    result = parse_java_archive("/srv/store.ear", ear)
    assert result.warnings == []
    # the ear has no manifest: no package of its own (as Syft); everything inside is found
    assert [(p.name, p.metadata["virtual_path"]) for p in result.packages] == [  # nested ones in name order
        ("slf4j-simple", "/srv/store.ear:lib/slf4j-simple-1.7.32.jar"),
        ("shop", "/srv/store.ear:shop.war"),
        ("commons-lang3", "/srv/store.ear:shop.war:WEB-INF/lib/commons-lang3-3.12.0.jar"),
        ("slf4j-api", "/srv/store.ear:shop.war:WEB-INF/lib/slf4j-api-1.7.32.jar"),
    ]
    assert result.packages[1].metadata["sha1"] == hashlib.sha1(war()).hexdigest()


def with_wrong_crc(data, name):
    """The archive with the CRC-32 its central directory records for ``name`` zeroed."""
    at = data.find(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(name)] != name.encode():
        at = data.find(b"PK\x01\x02", at + 4)
    return data[:at + 16] + b"\0\0\0\0" + data[at + 20:]


def damaged_war():
    return with_wrong_crc(build([("META-INF/MANIFEST.MF", manifest(Implementation_Version="3"), D),
                                 ("WEB-INF/lib/a-corrupt.jar", os.urandom(5000), D),
                                 ("WEB-INF/lib/b-truncated.jar", real("slf4j-api.jar")[:-100], S),
                                 ("WEB-INF/lib/c-bad-checksum.jar", real("slf4j-api.jar"), S),
                                 ("WEB-INF/lib/slf4j-simple-1.7.32.jar", real("slf4j-simple.jar"), D)]),
                          "WEB-INF/lib/c-bad-checksum.jar")


@pytest.mark.parametrize("archive, path, names", [
    (spring_boot_jar, "/app/demo-0.0.1-SNAPSHOT.jar", ["demo", "commons-io", "slf4j-simple"]),
    (damaged_war, "/app/mixed.war", ["mixed", "slf4j-simple"])])
def test_memory_mapped_input_and_no_view_outlives_the_parse(archive, path, names):
    with tempfile.TemporaryFile() as spool:
        spool.write(archive())
        spool.flush()
        mapped = mmap.mmap(spool.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mapped)
        result = parse_java_archive(path, view)
        view.release()
        mapped.close()  # raises BufferError if the parser kept a view of the map
    assert [p.name for p in result.packages] == names


def test_shaded_pom_properties_and_pom_xml_without_properties():
    shaded = build([
        ("META-INF/MANIFEST.MF",
         manifest(Implementation_Version="2.0", Bundle_License="https://opensource.org/licenses/MIT"), D),
        ("META-INF/maven/org.example/tool/pom.properties", b"groupId=org.example\nartifactId=tool\nversion=2.0\n", D),
        ("META-INF/maven/com.google.guava/guava/pom.properties",
         b"#Generated\ngroupId=com.google.guava\nartifactId=guava\nversion=31.1-jre\n", D),
        # a POM without pom.properties: groupId and version from its parent, ${...} expanded
        ("META-INF/maven/org.example/tool-core/pom.xml",
         b"<?xml version='1.0' encoding='ISO-8859-1'?><project><parent><groupId>org.example</groupId>"
         b"<artifactId>tool-parent</artifactId><version>2.0</version></parent><artifactId>tool-core</artifactId>"
         b"<name>Tool core \xe9</name><licenses><license><name>${license.name}</name></license></licenses>"
         b"<properties><license.name>MIT</license.name></properties></project>", D),
    ])
    result = parse_java_archive("/opt/tool-2.0.jar", shaded)
    assert result.warnings == []
    assert [(p.namespace, p.name, p.version, p.metadata["virtual_path"], p.license) for p in result.packages] == [
        ("org.example", "tool", "2.0", "/opt/tool-2.0.jar", "https://opensource.org/licenses/MIT"),
        ("com.google.guava", "guava", "31.1-jre", "/opt/tool-2.0.jar:com.google.guava:guava", None),
        ("org.example", "tool-core", "2.0", "/opt/tool-2.0.jar:org.example:tool-core", "MIT"),
    ]


def test_archives_without_a_manifest_or_instrumenting_others_have_no_package_of_their_own():
    inner = build([("META-INF/MANIFEST.MF", manifest(Implementation_Version="1"), D)])
    bare = build([("META-INF/maven/g/bare/pom.properties", b"groupId=g\nartifactId=bare\nversion=1\n", D),
                  ("lib/inner-1.jar", inner, D)])
    assert coordinates(parse_java_archive("/x/bare-1.jar", bare)) == [
        (None, "inner", "1", "/x/bare-1.jar:lib/inner-1.jar", hashlib.sha1(inner).hexdigest())]
    weaver = build([("META-INF/MANIFEST.MF", manifest(Weave_Classes="spring", Implementation_Version="8.0"), D)])
    assert parse_java_archive("/newrelic/instrumentation/spring-4.jar", weaver).packages == []


def pom_properties(group, artifact, version=None):
    lines = ([f"groupId={group}"] if group else []) + [f"artifactId={artifact}"] + (
        [f"version={version}"] if version else [])
    return ("\n".join(lines) + "\n").encode()


def test_group_ids_and_licenses_when_pom_properties_lack_a_group_id():
    archive = build([
        ("META-INF/MANIFEST.MF", manifest(Implementation_Version="1.0"), D),
        ("META-INF/maven/x/guava/pom.properties", pom_properties("", "guava", "2.0"), D),
        # an artifactId that looks like a groupId is taken for one (Syft's groupIDFromJavaMetadata)
        ("META-INF/maven/x/org.example.core/pom.properties", pom_properties("", "org.example.core", "1.0"), D),
        # the pom.xml beside it: its groupId, else its parent's, else a dotted artifactId; its licenses
        ("META-INF/maven/y/child/pom.properties", pom_properties("", "child", "4"), D),
        ("META-INF/maven/y/child/pom.xml", b"<project><parent><groupId>org.parent</groupId><artifactId>parent"
                                           b"</artifactId><version>4</version></parent><artifactId>child</artifactId>"
                                           b"</project>", D),
        ("META-INF/maven/y/dotted/pom.properties", pom_properties("", "dotted", "5"), D),
        ("META-INF/maven/y/dotted/pom.xml", b"<project><artifactId>org.dotted.lib</artifactId><version>5</version>"
                                            b"</project>", D),
        ("META-INF/maven/y/own/pom.properties", pom_properties("", "own", "3"), D),
        ("META-INF/maven/y/own/pom.xml", b"<project><groupId>org.own</groupId><artifactId>own</artifactId><version>3"
                                         b"</version><licenses><license><name>MIT</name></license><license><name>"
                                         b"Apache-2.0</name></license></licenses></project>", D),
    ])
    result = parse_java_archive("/opt/bundle.jar", archive)
    assert result.warnings == []
    assert [(p.namespace, p.name, p.version, p.metadata["virtual_path"], p.license) for p in result.packages] == [
        (None, "bundle", "1.0", "/opt/bundle.jar", None),
        (None, "guava", "2.0", "/opt/bundle.jar::guava", None),
        ("org.example.core", "org.example.core", "1.0", "/opt/bundle.jar::org.example.core", None),
        ("org.parent", "child", "4", "/opt/bundle.jar::child", None),
        ("org.dotted.lib", "dotted", "5", "/opt/bundle.jar::dotted", None),
        ("org.own", "own", "3", "/opt/bundle.jar::own", "MIT AND Apache-2.0"),
    ]


def test_pom_xml_files_without_pom_properties_that_name_a_package():
    def pom(group, artifact, version=None):
        return (f"<project><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                + (f"<version>{version}</version>" if version else "") + "</project>").encode()
    archive = build([
        ("META-INF/MANIFEST.MF", manifest(Implementation_Version="1.0"), D),
        ("META-INF/maven/a/first/pom.properties", pom_properties("a", "first", "1"), D),
        ("META-INF/maven/a/first/pom.xml", pom("a", "first", "1"), D),  # beside its pom.properties: one package
        ("META-INF/maven/b/unresolved/pom.xml", pom("b", "unresolved", "${revision}"), D),
        ("META-INF/maven/c/unversioned/pom.xml", pom("c", "unversioned"), D),
        ("META-INF/maven/c/unversioned-too/pom.properties", pom_properties("c", "unversioned-too"), D),
        ("META-INF/maven/d/last/pom.xml", pom("d", "last", "4"), D),
        ("archetype-resources/pom.xml", pom("e", "template", "5"), D),  # not Maven metadata of this archive
    ])
    result = parse_java_archive("/opt/tool-1.0.jar", archive)
    assert result.warnings == []
    assert [(p.namespace, p.name, p.version, p.metadata["virtual_path"]) for p in result.packages] == [
        (None, "tool", "1.0", "/opt/tool-1.0.jar"),
        ("a", "first", "1", "/opt/tool-1.0.jar:a:first"),
        ("d", "last", "4", "/opt/tool-1.0.jar:d:last"),
    ]


def test_a_pom_properties_at_the_archive_root_is_read_too_and_comes_first():
    # Syft's glob is "*pom.properties" (Syft 1.18.1 reports the same three packages); packages
    # inside an archive come in the order of their directories, the root (".") first
    archive = build([("META-INF/MANIFEST.MF", manifest(), D),
                     ("META-INF/maven/org.meta/meta/pom.properties", pom_properties("org.meta", "meta", "3.0"), D),
                     ("pom.properties", pom_properties("org.root", "rooted", "2.0"), D)])
    result = parse_java_archive("/opt/tool-1.0.jar", archive)
    assert [(p.namespace, p.name, p.version, p.metadata.get("pom_path")) for p in result.packages] == [
        (None, "tool", "1.0", None), ("org.root", "rooted", "2.0", "pom.properties"),
        ("org.meta", "meta", "3.0", "META-INF/maven/org.meta/meta/pom.properties")]


def test_the_archive_is_named_by_the_pom_properties_its_file_name_matches():
    # as Syft 1.18.1 names the same files
    # Debian's unversioned link name, shorter than the artifactId
    assert coordinates(parse_java_archive("/usr/share/java/slf4j.jar", real("slf4j-api.jar"))) == [
        ("org.slf4j", "slf4j-api", "1.7.32", "/usr/share/java/slf4j.jar", None)]
    empty = ("META-INF/MANIFEST.MF", manifest(), D)
    core = build([empty, ("META-INF/maven/org.example/widgets-core/pom.properties",
                          pom_properties("org.example", "widgets-core", "1.0"), D)])
    assert coordinates(parse_java_archive("/opt/widgets.jar", core)) == [
        ("org.example", "widgets-core", "1.0", "/opt/widgets.jar", None)]
    # a file name giving no name matches no artifact: the pom.properties is a package inside the archive
    widgets = build([empty, ("META-INF/maven/org.example/widgets/pom.properties",
                             pom_properties("org.example", "widgets", "1.0"), D)])
    assert coordinates(parse_java_archive("/opt/3rdparty.jar", widgets)) == [
        ("org.example", "widgets", "1.0", "/opt/3rdparty.jar:org.example:widgets", None)]
    # pom.properties, not the pom.xml beside it, names the archive
    gadgets = build([empty, ("META-INF/maven/g/gadgets/pom.properties", pom_properties("g", "gadgets", "1.0"), D),
                     ("META-INF/maven/g/gadgets/pom.xml", b"<project><groupId>g</groupId><artifactId>"
                                                          b"gadgets-parent-pom</artifactId><version>9</version>"
                                                          b"</project>", D)])
    assert coordinates(parse_java_archive("/opt/gadgets.jar", gadgets)) == [
        ("g", "gadgets", "1.0", "/opt/gadgets.jar", None)]


def test_archives_at_the_root_of_others_are_named_by_their_own_file_name():
    leaf = build([("META-INF/MANIFEST.MF", manifest(), D)])
    middle = build([("META-INF/MANIFEST.MF", manifest(), D), ("core-2.0.jar", leaf, D)])
    ear = build([("app-3.0.war", middle, S)])
    result = parse_java_archive("/srv/store.ear", ear)
    assert [(p.name, p.version, p.metadata["virtual_path"]) for p in result.packages] == [
        ("app", "3.0", "/srv/store.ear:app-3.0.war"), ("core", "2.0", "/srv/store.ear:app-3.0.war:core-2.0.jar")]


def test_cataloger_declaration():
    assert JAVA_ARCHIVE.name == "java-archive" and JAVA_ARCHIVE.parse is parse_java_archive
    for glob in ("**/*.jar", "**/*.war", "**/*.ear", "**/*.jpi", "**/*.hpi", "**/*.JAR", "**/*.WAR"):
        assert glob in JAVA_ARCHIVE.globs


# -- hostile and damaged archives -------------------------------------------------------------------

def zeros_deflated(size):
    """Raw deflate data of ``size`` zero bytes, built from one repeated fully-flushed block."""
    block = bytes(1024 * 1024)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = compressor.compress(block) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert size % len(block) == 0
    return chunk * (size // len(block)) + compressor.flush()


def raw_zip(members):
    """A zip of (name, raw deflate data, declared size, crc) members, written by hand so that
    sizes can be declared that zipfile would never write."""
    local, directory = b"", b""
    for name, data, size, crc in members:
        name = name.encode()
        header = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 8, 0, 0, crc, len(data), size, len(name), 0)
        directory += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 8, 0, 0, crc, len(data), size,
                                 len(name), 0, 0, 0, 0, 0, len(local)) + name
        local += header + name + data
    return local + directory + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(members), len(members),
                                           len(directory), len(local), 0)


GIB = 1024 ** 3


def test_zip_bomb_member_declaring_a_gigabyte_is_skipped_unread():
    bomb = raw_zip([("META-INF/MANIFEST.MF", zlib.compress(manifest(Implementation_Version="1.0"))[2:-4],
                     len(manifest(Implementation_Version="1.0")), zlib.crc32(manifest(Implementation_Version="1.0"))),
                    ("lib/zeros.jar", zeros_deflated(GIB), GIB, 0)])
    result = parse_java_archive("/app/bomb-1.0.jar", bomb)
    assert [(p.name, p.version) for p in result.packages] == [("bomb", "1.0")]
    assert result.warnings == [f"/app/bomb-1.0.jar:lib/zeros.jar: declares {GIB} bytes, more than the "
                               f"{MAX_NESTED_ARCHIVE_BYTES} read; skipped"]


def test_member_inflating_past_its_declared_size_stops_there():
    lying = raw_zip([("lib/small.jar", zeros_deflated(GIB), 1024, 0)])  # says 1 KiB, holds 1 GiB
    result = parse_java_archive("/app/lying.war", lying)
    assert result.packages == []
    assert result.warnings == ["/app/lying.war:lib/small.jar: inflates to more than its declared 1024 bytes; skipped"]


def test_members_declaring_two_gigabytes():
    two_gib = 2 * GIB
    stored = bytearray(build([("lib/huge.jar", b"tiny", S)]))
    at = stored.find(b"PK\x01\x02")
    struct.pack_into("<II", stored, at + 20, two_gib, two_gib)  # compressed and uncompressed sizes
    result = parse_java_archive("/app/huge-stored.war", bytes(stored))
    assert result.warnings == ["/app/huge-stored.war:lib/huge.jar: member data runs past the end of the archive "
                               "(truncated?); skipped"]
    deflated = raw_zip([("lib/huge.jar", zeros_deflated(1024 * 1024), two_gib, 0)])
    result = parse_java_archive("/app/huge-deflated.war", deflated)
    assert result.warnings == [f"/app/huge-deflated.war:lib/huge.jar: declares {two_gib} bytes, more than the "
                               f"{MAX_NESTED_ARCHIVE_BYTES} read; skipped"]


def test_inflating_stops_at_the_budget_of_the_top_level_archive():
    size = 48 * 1024 * 1024
    count = MAX_INFLATED_BYTES // size + 1
    data = zeros_deflated(size)
    crc = zlib.crc32(bytes(size))
    bomb = raw_zip([(f"lib/z{i:02}.jar", data, size, crc) for i in range(count)])
    result = parse_java_archive("/app/many.war", bomb)
    assert result.packages == []
    read = MAX_INFLATED_BYTES // size
    assert result.warnings[:read] == [f"/app/many.war:lib/z{i:02}.jar: not a readable zip archive: not a zip archive, "
                                      "or truncated (no end of central directory record)" for i in range(read)]
    assert result.warnings[read:] == [f"/app/many.war: more than {MAX_INFLATED_BYTES} bytes inflated from this archive "
                                      "and the archives in it (a zip bomb?); stopped before "
                                      f"/app/many.war:lib/z{read:02}.jar"]


def test_nesting_stops_at_the_depth_bound():
    archive = build([("META-INF/MANIFEST.MF", manifest(Implementation_Version="50"), D)])
    for level in range(49, -1, -1):
        archive = build([("META-INF/MANIFEST.MF", manifest(Implementation_Version=str(level)), D),
                         (f"lib/level{level + 1}.jar", archive, S if level % 2 else D)])
    result = parse_java_archive("/deep/level0.jar", archive)
    path = "/deep/level0.jar"
    expected = [("level0", "0", path)]
    for level in range(1, MAX_NESTING_DEPTH + 1):
        path += f":lib/level{level}.jar"
        expected.append((f"level{level}", str(level), path))
    assert [(p.name, p.version, p.metadata["virtual_path"]) for p in result.packages] == expected
    deepest = f"{path}:lib/level{MAX_NESTING_DEPTH + 1}.jar"
    assert result.warnings == [f"{deepest}: nested more than {MAX_NESTING_DEPTH} archives deep; not cataloged"]


@pytest.mark.parametrize("data, reason", [
    (b"", "shorter than an end record"),
    (b"PK\x03\x04 this is not really a zip " * 200, "no end of central directory record"),
    (real("commons-io.jar")[:200_000], "no end of central directory record"),  # truncated
])
def test_damaged_top_level_archives(data, reason):
    result = parse_java_archive("/usr/share/java/broken.jar", data)
    assert result.packages == []
    (warning,) = result.warnings
    assert warning.startswith("/usr/share/java/broken.jar: not a readable zip archive: ") and reason in warning


def test_damaged_nested_archives_are_named_and_the_others_kept():
    result = parse_java_archive("/app/mixed.war", damaged_war())
    assert [(p.name, p.metadata["virtual_path"]) for p in result.packages] == [
        ("mixed", "/app/mixed.war"), ("slf4j-simple", "/app/mixed.war:WEB-INF/lib/slf4j-simple-1.7.32.jar")]
    assert [w.split(": not a readable zip archive")[0] for w in result.warnings] == [
        "/app/mixed.war:WEB-INF/lib/a-corrupt.jar", "/app/mixed.war:WEB-INF/lib/b-truncated.jar",
        "/app/mixed.war:WEB-INF/lib/c-bad-checksum.jar: CRC-32 mismatch; skipped"]


def test_too_many_members_are_not_all_examined():
    names = [f"c/C{i}.class" for i in range(MAX_MEMBERS + 10)] + ["META-INF/MANIFEST.MF"]
    local, directory, offset = [], [], 0
    for name in names:  # empty stored members, written by hand: zipfile takes seconds for this many
        encoded = name.encode()
        directory.append(struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, 0, 0, 0, len(encoded),
                                     0, 0, 0, 0, 0, offset) + encoded)
        local.append(struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(encoded), 0) + encoded)
        offset += len(local[-1])
    local_bytes, directory_bytes = b"".join(local), b"".join(directory)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, len(directory_bytes), len(local_bytes), 0)
    result = parse_java_archive("/app/huge.jar", local_bytes + directory_bytes + end)
    assert result.packages == []  # the manifest is past the bound
    assert result.warnings == [f"/app/huge.jar: 65535 members; only the first {MAX_MEMBERS} examined"]


def test_hostile_and_malformed_maven_files_are_warnings():
    laughs = (b"<?xml version='1.0'?><!DOCTYPE project [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;'>"
              b"<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;'>]><project><artifactId>&c;</artifactId></project>")
    archive = build([("META-INF/MANIFEST.MF", manifest(Implementation_Version="1.0"), D),
                     ("META-INF/maven/g/laughs/pom.xml", laughs, D),
                     ("META-INF/maven/g/broken/pom.properties", b"groupId=g\nthis line has no separator\n", D),
                     ("META-INF/maven/g/deep/pom.xml", b"<a>" * 100_000 + b"</a>" * 100_000, D),
                     ("META-INF/maven/g/app/pom.properties", b"groupId=g.h\nartifactId=app\nversion=1.0\n", D)])
    result = parse_java_archive("/srv/app-1.0.jar", archive)
    assert [(p.namespace, p.name, p.version) for p in result.packages] == [("g.h", "app", "1.0")]
    assert result.warnings == [
        "/srv/app-1.0.jar:META-INF/maven/g/broken/pom.properties: not a properties line: "
        "'this line has no separator'; skipped",
        "/srv/app-1.0.jar:META-INF/maven/g/laughs/pom.xml: declares a DTD or entities "
        "(not read: entity expansion is a memory bomb); skipped",
    ]


def test_pom_property_references_cannot_grow_without_bound():
    doubling = "".join(f"<p{i}>${{p{i + 1}}}${{p{i + 1}}}</p{i}>" for i in range(40)) + "<p40>x</p40>"
    pom = f"<project><artifactId>a</artifactId><version>${{p0}}</version><properties>{doubling}</properties></project>"
    project = parse_pom_xml("pom.xml", pom.encode())
    assert len(project.version) <= java.MAX_POM_VALUE


# -- what is kept is bounded too: warnings, virtual paths, package fields ---------------------

def overlapping_zip(names, data, *, prefix=b""):
    """A zip whose central directory lists every name in ``names``, all pointing at one stored
    local member holding ``data`` (overlapping members: one copy of the data, read once per
    entry). Written by hand, because no zip tool writes this; ``prefix`` goes first."""
    crc = zlib.crc32(data)
    local = struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, 0, 0, 0, crc, len(data), len(data), 1, 0)
    local = prefix + local + b"x" + data
    directory = b"".join(
        struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, 0, 0, 0, crc, len(data), len(data),
                    len(name.encode()), 0, 0, 0, 0, 0, len(prefix)) + name.encode() for name in names)
    return local + directory + struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(names), len(names),
                                           len(directory), len(local), 0)


def test_warnings_about_thousands_of_long_paths_are_bounded():
    """The confirmed attack, in the layer's terms: an outer jar holding, under a 4,000-character
    name, a jar of 2,000 entries with 4,000-character names, each a "jar" that is not a zip, so
    each yields a warning naming outer and inner path. Before the bound: 2,000 warnings of
    ~8 KB (16 MB); gzip makes the whole thing a 17 KB layer. After: 101 lines, 112 KB."""
    long_dir = "d" * 4000
    inner = overlapping_zip([f"{long_dir}/{i:05}.jar" for i in range(2000)], b"not a zip archive at all")
    outer = build([(f"WEB-INF/lib/{long_dir}/inner.jar", inner, S)])
    result = parse_java_archive("/app/outer.war", outer)
    assert len(zlib.compress(outer, 9)) < 20_000
    assert len(result.warnings) == java.MAX_WARNINGS + 1
    assert result.warnings[-1] == f"/app/outer.war: {2000 - java.MAX_WARNINGS} more warnings not shown"
    assert sum(len(w) for w in result.warnings) < java.MAX_WARNINGS * (java.MAX_VIRTUAL_PATH + 200)
    where, reason = result.warnings[0].split(": not a readable zip archive: ")
    assert len(where) == java.MAX_VIRTUAL_PATH
    assert where.startswith("/app/outer.war:WEB-INF/lib/dddd") and "…" in where and where.endswith("ddd/00000.jar")
    assert reason == "not a zip archive, or truncated (no end of central directory record)"


def test_nested_archive_count_is_bounded():
    data = overlapping_zip([f"lib/{i:05}.jar" for i in range(java.MAX_NESTED_ARCHIVES + 50)], b"not a zip")
    result = parse_java_archive("/app/many.war", data)
    assert len(result.warnings) == java.MAX_WARNINGS + 2
    assert result.warnings[-2] == (f"/app/many.war: more than {java.MAX_NESTED_ARCHIVES} nested archives; "
                                   "the rest not cataloged")
    dropped = java.MAX_NESTED_ARCHIVES - java.MAX_WARNINGS
    assert result.warnings[-1] == f"/app/many.war: {dropped} more warnings not shown"


def test_damaged_manifest_and_pom_properties_are_named_and_the_rest_read():
    jar = with_wrong_crc(build([("META-INF/MANIFEST.MF", manifest(Implementation_Version="1"), D)]),
                         "META-INF/MANIFEST.MF")
    result = parse_java_archive("/opt/a.jar", jar)
    assert (result.packages, result.warnings) == ([], ["/opt/a.jar:META-INF/MANIFEST.MF: CRC-32 mismatch; skipped"])
    jar = with_wrong_crc(build([("META-INF/MANIFEST.MF", manifest(Implementation_Version="1"), D),
                                ("META-INF/maven/g/a/pom.properties", pom_properties("g", "a", "1"), D),
                                ("META-INF/maven/g/b/pom.properties", pom_properties("g", "b", "2"), D)]),
                         "META-INF/maven/g/a/pom.properties")
    result = parse_java_archive("/opt/tool-1.jar", jar)
    assert [(p.name, p.version) for p in result.packages] == [("tool", "1"), ("b", "2")]
    assert result.warnings == ["/opt/tool-1.jar:META-INF/maven/g/a/pom.properties: CRC-32 mismatch; skipped"]


def test_maven_files_read_per_archive_are_bounded(monkeypatch):
    monkeypatch.setattr(java, "MAX_MAVEN_FILES", 2)
    files = [(f"META-INF/maven/g/{name}/pom.properties", pom_properties("g", name, "1"), D) for name in "abc"]
    result = parse_java_archive("/opt/tool-1.jar", build([("META-INF/MANIFEST.MF", manifest(), D), *files[:2]]))
    assert ([p.name for p in result.packages], result.warnings) == (["tool", "a", "b"], [])  # at the bound
    result = parse_java_archive("/opt/tool-1.jar", build([("META-INF/MANIFEST.MF", manifest(), D), *files]))
    assert [p.name for p in result.packages] == ["tool", "a", "b"]
    assert result.warnings == ["/opt/tool-1.jar: 3 pom.properties and pom.xml files; only the first 2 read"]


def test_every_archive_past_the_depth_bound_is_named(monkeypatch):
    monkeypatch.setattr(java, "MAX_NESTING_DEPTH", 1)
    leaf = build([("META-INF/MANIFEST.MF", manifest(), D)])
    middle = build([("META-INF/MANIFEST.MF", manifest(), D), ("lib/a-1.jar", leaf, D), ("lib/b-2.jar", leaf, D)])
    result = parse_java_archive("/opt/outer.jar", build([("lib/middle-3.jar", middle, D)]))
    assert [p.name for p in result.packages] == ["middle"]
    assert result.warnings == [f"/opt/outer.jar:lib/middle-3.jar:lib/{name}: nested more than 1 archives deep; "
                               "not cataloged" for name in ("a-1.jar", "b-2.jar")]


def test_nothing_more_is_read_once_a_bound_stops_the_walk():
    many = overlapping_zip([f"lib/{i:05}.jar" for i in range(java.MAX_NESTED_ARCHIVES + 1)], b"not a zip")
    result = parse_java_archive("/app/outer.war", build([("lib/a-many.jar", many, S), ("lib/b-more.jar", many, S)]))
    assert result.warnings[-2:] == [
        f"/app/outer.war: more than {java.MAX_NESTED_ARCHIVES} nested archives; the rest not cataloged",
        f"/app/outer.war: {java.MAX_NESTED_ARCHIVES - 1 - java.MAX_WARNINGS} more warnings not shown"]
    assert len(result.warnings) == java.MAX_WARNINGS + 2  # one stop: lib/b-more.jar is not even counted


def test_stored_bytes_read_stop_at_the_budget_of_the_top_level_archive():
    """Stored members are views, not copies, but each one read is checksummed: overlapping
    members naming one 64 MiB stored "jar" 33 times would have 2 GiB + 64 MiB read."""
    size = 64 * 1024 * 1024
    read = java.MAX_SLICED_BYTES // size
    result = parse_java_archive("/app/sliced.war", overlapping_zip([f"lib/{i:02}.jar" for i in range(read + 1)],
                                                                   bytes(size)))
    assert result.warnings == [  # exactly the budget is read
        *(f"/app/sliced.war:lib/{i:02}.jar: not a readable zip archive: not a zip archive, or truncated (no end of "
          "central directory record)" for i in range(read)),
        f"/app/sliced.war: more than {java.MAX_SLICED_BYTES} bytes read from this archive and the archives in it "
        f"(a zip bomb?); stopped before /app/sliced.war:lib/{read:02}.jar"]


def test_package_fields_from_huge_metadata_values_are_bounded():
    artifact = "a" * 500_000
    data = build([("META-INF/MANIFEST.MF", manifest(Implementation_Version="1"), D),
                  ("META-INF/maven/g/x/pom.properties", f"groupId=g\nartifactId={artifact}\nversion=1\n".encode(), D)])
    own, shaded = parse_java_archive("/app/x.jar", data).packages
    assert (own.name, own.metadata["virtual_path"]) == ("x", "/app/x.jar")
    assert (len(shaded.name), len(shaded.metadata["virtual_path"])) == (java.MAX_PACKAGE_FIELD, java.MAX_VIRTUAL_PATH)
    assert shaded.name == "a" * 511 + "…" + "a" * 512
    assert shaded.metadata["virtual_path"].startswith("/app/x.jar:g:aaa")


@pytest.mark.parametrize("file_name, expected", [
    ("org.apache.commons.lang3", "lang3"),  # groupId.artifactId: the last part
    ("org.eclipse.osgi", "org.eclipse.osgi"),  # Eclipse's bundles keep their whole name
    ("guava", "guava"),
    ("commons-lang3", "commons-lang3"),
    ("foo.1x", "foo.1x"),  # a part that is not a Java identifier: not groupId.artifactId
    ("foo..bar", "foo..bar"),  # an empty part
    ("_priv.$cash", "$cash"),  # identifiers may start with _ or $
])
def test_a_dotted_file_name_is_taken_for_group_and_artifact_as_syft_does(file_name, expected):
    assert java._name_from_filename(file_name) == expected


@pytest.mark.parametrize("manifest, file_name, expected", [
    # maven-bundle-plugin's symbolic name wins over the file name, unless the vendor id equals it
    (b"Created-By: Apache Maven Bundle Plugin\nBundle-SymbolicName: org.example.widgets\n", "widgets-core", "widgets"),
    (b"Created-By: Apache Maven Bundle Plugin\nBundle-SymbolicName: org.example\n"
     b"Implementation-Vendor-Id: org.example\n", "from-file", "from-file"),
    (b"Created-By: Apache Maven Bundle Plugin\nBundle-SymbolicName: org.example.widgets\n"
     b"Implementation-Vendor-Id: org.example\n", "from-file", "widgets"),
    (b"Created-By: Maven Jar Plugin\nBundle-SymbolicName: org.example.widgets\n", "from-file", "from-file"),
    # no file name: the manifest's naming fields, in Syft's order
    (b"Bundle-Name: bundle\nShort-Name: short\nImplementation-Title: title\n", "", "bundle"),
    (b"Short-Name: short\nExtension-Name: ext\nImplementation-Title: title\n", "", "short"),
    (b"Extension-Name: ext\nImplementation-Title: title\n", "", "ext"),
    (b"Implementation-Title: title\n", "", "title"),
    (b"Name: named\nBundle-Name: bundle\n", "", "named"),
    (b"Manifest-Version: 1.0\n", "", ""),
])
def test_the_package_name_is_chosen_as_syft_chooses_it(manifest, file_name, expected):
    assert java._select_name(java.parse_manifest(manifest), file_name) == expected


def test_pom_properties_lines_as_syft_reads_them():
    raw = (b"#Generated by Maven\r\n   # an indented comment\r\n\r\nGroupId=org.example\r\n"
           b"artifactId: widgets\r\nversion = 1.2.3=final\r\nurl: http://example.org:8080/x\r\n")
    props = java.parse_pom_properties("META-INF/maven/org.example/widgets/pom.properties", raw)
    assert (props.group_id, props.artifact_id, props.version) == ("org.example", "widgets", "1.2.3=final")
    with pytest.raises(ValueError, match="not a properties line: 'garbage without a separator'"):
        java.parse_pom_properties("p", b"groupId=a\ngarbage without a separator\n")


def test_pom_properties_edge_lines_as_syft_reads_them():
    # as Syft 1.18.1 reads the same file: a separator at the start of a line is a key of its own,
    # the first separator splits, bytes that are not UTF-8 are replaced
    raw = b"=orphan value\r\ngroupId=org.soci\xe9t\xe9\r\nartifactId=eq\r\nversion: 1.2.3:final\r\n"
    props = java.parse_pom_properties("META-INF/maven/g/eq/pom.properties", raw)
    assert (props.group_id, props.artifact_id, props.version) == ("org.soci\ufffdt\ufffd", "eq", "1.2.3:final")
    assert java.parse_pom_properties("p", b"# nothing but a comment\n") == java.PomProperties(
        path="p", group_id="", artifact_id="", version="")


@pytest.mark.parametrize("raw, shown", [
    (b"groupId=a\r\ngarbage without a separator\r\n", "'garbage without a separator'"),  # no CR in the message
    (b"\t# a tab-indented comment\n", "'\\t# a tab-indented comment'"),  # only spaces may indent one (Syft too)
    (b"x" * 100 + b"\n", repr("x" * 80)),  # a long line: its first 80 characters
])
def test_a_pom_properties_line_that_is_not_a_property_is_named(raw, shown):
    with pytest.raises(ValueError) as error:
        java.parse_pom_properties("p", raw)
    assert str(error.value) == f"not a properties line: {shown}"


def test_pom_licenses_by_name_else_url():
    pom = (b"<project><artifactId>a</artifactId><version>1</version><licenses>"
           b"<license><name>Apache License, Version 2.0 &amp; MIT</name></license>"
           b"<license><url>https://www.eclipse.org/legal/epl-2.0/</url></license>"
           b"<license><comments>neither a name nor a url</comments></license>"
           b"</licenses></project>")
    assert parse_pom_xml("pom.xml", pom).licenses == ("Apache License, Version 2.0 & MIT",
                                                      "https://www.eclipse.org/legal/epl-2.0/")


def test_pom_references_to_project_fields_and_properties():
    pom = (b"<project><parent><groupId>org.parent</groupId><artifactId>parent</artifactId><version>7</version></parent>"
           b"<artifactId>core</artifactId><version>2.${minor}</version><properties><minor>1</minor></properties>"
           b"<licenses><license><name>${project.groupId} ${pom.artifactId} ${version} ${project.version} ${unknown.key}"
           b"</name></license></licenses></project>")
    project = parse_pom_xml("pom.xml", pom)
    assert (project.group_id, project.resolved_group_id, project.version) == ("", "org.parent", "2.1")
    assert project.licenses == ("org.parent core 2.1 2.1 ${unknown.key}",)  # an unknown reference is kept
    # Maven inherits groupId and version from the parent, not the artifactId
    inheriting = (b"<project><parent><groupId>org.parent</groupId><artifactId>parent</artifactId><version>7</version>"
                  b"</parent><licenses><license><name>${project.groupId}|${project.version}|${project.artifactId}"
                  b"</name></license></licenses></project>")
    assert parse_pom_xml("pom.xml", inheriting).licenses == ("org.parent|7|",)
    orphan = (b"<project><artifactId>a</artifactId><licenses><license><name>[${project.groupId}]</name></license>"
              b"</licenses></project>")
    assert parse_pom_xml("pom.xml", orphan).licenses == ("[]",)


def test_pom_properties_are_kept_up_to_their_bound(monkeypatch):
    monkeypatch.setattr(java, "MAX_POM_PROPERTIES", 2)
    pom = (b"<project><artifactId>a</artifactId><version>${v1}.${v2}.${v3}</version>"
           b"<properties><v1>1</v1><v2>2</v2><v3>3</v3></properties></project>")
    assert parse_pom_xml("pom.xml", pom).version == "1.2.${v3}"


def test_pom_encodings_namespaces_and_malformed_xml():
    latin1 = "<project><groupId>org.société</groupId><artifactId>café</artifactId><version>1</version></project>"
    project = parse_pom_xml("pom.xml", latin1.encode("latin-1"))  # ISO-8859-1 without saying so
    assert (project.group_id, project.artifact_id) == ("org.société", "café")
    prefixed = (b"<pom:project xmlns:pom='http://maven.apache.org/POM/4.0.0'><pom:groupId>org.example</pom:groupId>"
                b"<pom:artifactId>prefixed</pom:artifactId><pom:version>1</pom:version></pom:project>")
    project = parse_pom_xml("pom.xml", prefixed)  # elements matched by local name, as Go's encoding/xml does
    assert (project.group_id, project.artifact_id, project.version) == ("org.example", "prefixed", "1")
    for raw, message in [
        (b"<project><artifactId>a</version></project>", "not well-formed XML: mismatched tag: line 1, column 24"),
        (b"<project><artifactId>a</artifactId>", "not well-formed XML: no element found: line 1, column 35"),
        (b"<?xml version='1.0'?><!DOCTYPE project><project><artifactId>a</artifactId></project>",
         "declares a DTD or entities (not read: entity expansion is a memory bomb)"),
    ]:
        with pytest.raises(ValueError) as error:
            parse_pom_xml("pom.xml", raw)
        assert str(error.value) == message


@pytest.mark.parametrize("golden_file", ["syft.json", "syft-edge.json"])
def test_names_and_versions_from_archive_file_names_agree_with_syft(golden_file):
    """Syft's reading of jar file names (tests/data/java/archive-names: jars with an empty
    manifest, so only the file name speaks): syft.json, 34 common shapes (dash, dot and
    underscore separators, build/r/rc release markers in either case, dotted groupId.artifactId
    names, no version: Syft's UNKNOWN); syft-edge.json, 24 edge cases (non-letter starts,
    non-name characters, mixed-case markers; null: Syft reports no package at all)."""
    import json
    import pathlib
    golden = json.loads((pathlib.Path(__file__).parent.parent / "data" / "java" / "archive-names" /
                         golden_file).read_text())["jars"]
    manifest = io.BytesIO()
    with zipfile.ZipFile(manifest, "w") as jar:
        jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
    for file_name, want in golden.items():
        packages = java.parse_java_archive(f"/opt/{file_name}", manifest.getvalue()).packages
        if want is None:
            assert packages == [], file_name
            continue
        (package,) = packages
        assert (package.name, package.version or "UNKNOWN") == (want["name"], want["version"]), file_name


# Mutation survivors that cannot matter (tools/mutation.sh catalogers):
# - java parse_manifest, parse_pom_properties, _read_pom_any_encoding: `decode("UTF-8", ...)` for "utf-8",
#   `_read_pom(raw, "iso-8859-1")`: codec names (Python's and expat's) are case-insensitive.
# - java Manifest.field: `section.get(key, None)`, `section.get(key, )`: the value only feeds a truthiness
#   test, where None and "" are alike.
# - java parse_manifest: `in_section = None` (twice): only ever tested for truth, like False.
# - java parse_manifest: the one space after the colon not cut (`... and False`, `value[:2] == b" "`,
#   `== b"XX XX"`): every value is stripped after decoding, which removes that space anyway.
# - java archive_filename: `path.rsplit("/", )[-1]`, `rsplit("/", 2)[-1]`; java _main_package:
#   `rsplit(":", )[-1]`, `rsplit(":", 2)[-1]`: any number of splits leaves the same last part.
# - java archive_filename: `range(1, len(stem) + 2)`: the loop always breaks at end == len(stem).
# - java archive_filename: `end > 2`, `end >= 3`: at end == 2 stem[0] is an ASCII letter (checked
#   before the loop), never "-".
# - java archive_filename: `char in "XX_.XX"`: the extra "X" is a letter, accepted already.
# - java archive_filename: `any_case=None`: _release_number only tests it for truth, like False.
# - java parse_pom_properties: `line.lstrip("XX XX")`: differs only for a line of X's and spaces
#   before a "#", which no pom.properties writer emits.
# - java parse_pom_properties: `default=-2`: still below 0, the same "not a properties line".
# - java _PomReader.__init__: `self.text = None`: expat reports no character data or end tag before
#   the first start tag, which sets it to [].
# - java _PomReader.end: `len(self.path) <= 5`: no wanted element is 5 deep (_record matches paths
#   of at most 4), so the extra records match nothing.
# - java _read_pom: `EntityDeclHandler = None`: entities are declared only in a DOCTYPE, whose
#   start handler refuses it first (expat reads no external DTD).
# - java parse_pom_xml lookup: `fields.get(..., None)`, `fields.get(..., )`: `None or fallback` is
#   `"" or fallback`; and the parent fallback's `None` default: re.sub takes a None replacement as "".
# - java _same_artifact: the equal-virtual-path case `return False`: equal paths mean equal
#   coordinates, so the artifactId check after it (artifactIds are never empty there) returns True.
# - java _from_maven_data: `parent_key = None`: coordinates equal to the archive's mean the same
#   artifactId, so the draft is folded and the virtual path it would have kept is never used.
# - java _joined: `if (licenses) or True`: "" for no licenses, which every caller turns into None.
# - java _main_package: `chosen = ""`: as falsy as None. `version = None`, `chosen.version if (chosen)
#   and False`, `version = None` and `version and project.resolved_version` in the pom.xml branch:
#   a chosen pom.properties names the archive, so it is then folded into it (same artifactId) and
#   its version replaces whatever the archive's was.
# - java _pom_only_packages: `not coordinates[2] or not coordinates[2]`: a pom.xml with no
#   artifactId gives a nameless draft, which is never emitted and folds into nothing named.
# - java _catalog: `walk.members_left += index.examined`: the 2,000,000-entry bound per top-level
#   archive is read into _Walk when the class is made, so a test cannot lower it, and walking that
#   many directory entries takes ~3 s; the per-archive bound it combines with is tested.
