"""Java archives: jar, war, ear, Jenkins plugins (jpi/hpi) and the other zip-based Java
packagings, with the archives nested in them (WEB-INF/lib, BOOT-INF/lib, an ear's lib/).

An archive yields, as Syft 1.18's java archive cataloger (syft/pkg/cataloger/java/
archive_parser.go) does:

- its own package, when it has a META-INF/MANIFEST.MF (JAR File Specification, "JAR
  Manifest") — named and versioned by the pom.properties whose artifactId matches the file
  name, else by the manifest and the file name (``_select_name``, ``_select_version``);
- one package per other pom.properties (Maven Archiver's META-INF/maven/<groupId>/
  <artifactId>/pom.properties: shaded and bundled artifacts), folded into the archive's own
  package when it describes the same artifact; and, beyond Syft, one per META-INF/maven
  pom.xml (Maven POM 4.0.0) with no pom.properties beside it;
- the packages of every nested archive, recursively, with Syft's virtual paths
  ("outer.war:WEB-INF/lib/x.jar").

Every read is bounded: the nesting depth, the bytes of one nested archive, the bytes inflated
and the members examined per top-level archive, and the bytes of each manifest or POM; and so
is what is kept: the warnings per top-level archive, in number and in length.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Final
from xml.parsers import expat

from .base import Cataloger, Package, ParseResult, shorten
from .ziparchive import STORED, ZipError, ZipMember, list_members, read_member

__all__ = ["ARCHIVE_EXTENSIONS", "JAVA_ARCHIVE", "MANIFEST_KEYS", "MANIFEST_PATH", "MAX_ARCHIVE_BYTES",
           "MAX_INFLATED_BYTES", "MAX_MANIFEST_VALUE", "MAX_MAVEN_FILES", "MAX_MEMBERS", "MAX_METADATA_BYTES",
           "MAX_NESTED_ARCHIVES", "MAX_NESTED_ARCHIVE_BYTES", "MAX_NESTING_DEPTH", "MAX_PACKAGE_FIELD",
           "MAX_POM_PROPERTIES",
           "MAX_POM_VALUE", "MAX_PROPERTY_ROUNDS", "MAX_SLICED_BYTES", "MAX_TOTAL_MEMBERS", "MAX_VIRTUAL_PATH",
           "MAX_WARNINGS", "Manifest",
           "PomProject", "PomProperties", "archive_filename", "parse_java_archive", "parse_manifest",
           "parse_pom_properties", "parse_pom_xml"]

#: Syft's archiveFormatGlobs, plus the upper-case spellings seen on images built on Windows.
ARCHIVE_EXTENSIONS: Final = ("jar", "war", "ear", "par", "sar", "nar", "jpi", "hpi", "lpkg",
                             "JAR", "WAR", "EAR", "JPI", "HPI")

#: Real nesting is 2-3 deep (ear > war > jar; Jenkins war > hpi > jar); deeper is a trap.
MAX_NESTING_DEPTH: Final = 8
#: A deflated nested archive is inflated into memory whole; the largest real nested jars
#: are a few tens of MB. Stored ones (Spring Boot's BOOT-INF/lib) are views, not copies.
MAX_NESTED_ARCHIVE_BYTES: Final = 64 * 1024 * 1024
#: Bytes inflated per top-level archive, nested ones included: stops zip bombs (~0.5 s of work).
MAX_INFLATED_BYTES: Final = 512 * 1024 * 1024
#: Bytes of stored members handed on without copying (checksummed and hashed, ~1.5 s): only
#: overlapping members could make it exceed the archive's own size several times.
MAX_SLICED_BYTES: Final = 2 * 1024 * 1024 * 1024
#: Central directory entries walked in one archive; the largest real jars hold ~60,000.
MAX_MEMBERS: Final = 100_000
#: Entries walked per top-level archive, nested ones included (~1.5 s of directory walking).
MAX_TOTAL_MEMBERS: Final = 2_000_000
#: Nested archives opened per top-level archive; a Jenkins war with its plugins holds ~1,000.
MAX_NESTED_ARCHIVES: Final = 10_000
#: Bytes read of a manifest, pom.properties or pom.xml. A manifest's main section comes first,
#: so a longer one (a signed jar's lists every class) is parsed up to this point.
MAX_METADATA_BYTES: Final = 1024 * 1024
#: pom.properties and pom.xml files read per archive; shaded jars carry a few hundred.
MAX_MAVEN_FILES: Final = 10_000
#: Top-level archives up to this size are cataloged (they are spooled, then mapped).
MAX_ARCHIVE_BYTES: Final = 1024 * 1024 * 1024
#: Characters kept of a manifest value in a package's metadata.
MAX_MANIFEST_VALUE: Final = 256
#: Entries kept from a POM's <properties> for ${...} references, rounds of expansion, and
#: characters of an expanded value (references that double up grow it exponentially).
MAX_POM_PROPERTIES: Final = 1000
MAX_PROPERTY_ROUNDS: Final = 8
MAX_POM_VALUE: Final = 1024
#: Characters of a virtual path ("outer.war:WEB-INF/lib/x.jar"), in package metadata and in
#: warnings; a longer one keeps its head and tail around "…". Real ones are under 300; a
#: member name may be 64 KiB, and nesting chains them (each warning copied the whole chain:
#: 300 MB of warnings came from a 4 KB layer).
MAX_VIRTUAL_PATH: Final = 1024
#: Characters kept of a package's name, version, group id and license. Maven coordinates are
#: under 100; a manifest or pom.properties value can be as long as the file (1 MiB), and
#: overlapping members let one file be read thousands of times.
MAX_PACKAGE_FIELD: Final = 1024
#: Warnings kept per top-level archive (a damaged war names a few); the rest are counted in
#: one closing line. With MAX_VIRTUAL_PATH this bounds an archive's warnings to ~130 KB.
MAX_WARNINGS: Final = 100

MANIFEST_PATH: Final = "META-INF/MANIFEST.MF"
_ARCHIVE_SUFFIXES: Final = tuple("." + extension for extension in ARCHIVE_EXTENSIONS)
_POM_PROPERTIES: Final = "pom.properties"  # Syft's glob "*pom.properties": any directory
_POM_XML: Final = "pom.xml"
_WANTED: Final = (MANIFEST_PATH.encode(), _POM_PROPERTIES.encode(), _POM_XML.encode(),
                  *(suffix.encode() for suffix in _ARCHIVE_SUFFIXES))

#: Main-section keys kept in metadata["manifest"].
MANIFEST_KEYS: Final = ("Implementation-Title", "Implementation-Version", "Implementation-Vendor",
                        "Implementation-Vendor-Id", "Specification-Title", "Specification-Version",
                        "Specification-Vendor", "Bundle-Name", "Bundle-SymbolicName", "Bundle-Version",
                        "Bundle-License", "Automatic-Module-Name", "Main-Class", "Created-By")
_VERSION_KEYS: Final = ("Implementation-Version", "Specification-Version", "Plugin-Version", "Bundle-Version")
_LICENSE_KEYS: Final = ("Bundle-License", "Plugin-License-Name")
# Syft's cpegenerate.PrimaryJavaManifestGroupIDFields / SecondaryJavaManifestGroupIDFields
_GROUP_KEYS: Final = ("Group-Id", "Bundle-SymbolicName", "Extension-Name", "Specification-Vendor",
                      "Implementation-Vendor", "Implementation-Vendor-Id", "Implementation-Title", "Bundle-Activator")
_FALLBACK_GROUP_KEYS: Final = ("Automatic-Module-Name", "Main-Class", "Package")
_SECTION_KEYS: Final = frozenset((*_VERSION_KEYS, *_LICENSE_KEYS, *_GROUP_KEYS, *_FALLBACK_GROUP_KEYS))
_GROUP_PREFIXES: Final = ("com", "org", "net", "io", "be")  # Syft's "top level domains" (a string prefix)
_JAVA_IDENTIFIER_START: Final = frozenset(("Lu", "Ll", "Lt", "Lm", "Lo", "Nl", "Sc", "Pc"))
_PROPERTY_REFERENCE: Final = re.compile(r"\$\{([^}]{1,200})\}")


# -- META-INF/MANIFEST.MF -----------------------------------------------------------------------

@dataclass(slots=True)
class Manifest:
    main: dict[str, str]  #: first value of each key in the main section
    sections: list[dict[str, str]]  #: per-entry sections, only the keys read from them

    def get(self, key: str) -> str:
        return self.main.get(key, "")

    def field(self, key: str) -> str:
        """The main section's value, else the first per-entry section's (Syft's fieldValueFromManifest)."""
        if value := self.main.get(key):
            return value
        return next((value for section in self.sections if (value := section.get(key, ""))), "")


def parse_manifest(raw: bytes, *, complete: bool = True) -> Manifest:
    """Sections of "Name: value" lines separated by blank lines; a line starting with a
    space continues the previous value (lines are wrapped at 72 bytes, which may split a
    UTF-8 character, so values are joined as bytes and decoded after). ``complete=False``:
    ``raw`` was cut short, so its last line is dropped."""
    lines = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    if not complete:
        lines.pop()
    sections: list[list[tuple[bytes, bytearray]]] = []
    in_section = False
    for line in lines:
        if not line:
            in_section = False
            continue
        if line[:1] == b" ":
            if in_section:
                sections[-1][-1][1].extend(line[1:])
            continue
        key, colon, value = line.partition(b":")
        key = key.strip()
        if not colon or not key:
            continue  # not a header line; Syft skips it too
        if not in_section:
            sections.append([])
            in_section = True
        sections[-1].append((key, bytearray(value[1:] if value[:1] == b" " else value)))
    decoded = [[(name.decode("utf-8", "replace"), text.decode("utf-8", "replace").strip()) for name, text in section]
               for section in sections]
    main: dict[str, str] = {}
    for name, text in decoded[0] if decoded else ():
        main.setdefault(name, text)
    others = []
    for section in decoded[1:]:
        kept: dict[str, str] = {}
        for name, text in section:
            if name in _SECTION_KEYS:
                kept.setdefault(name, text)
        if kept:
            others.append(kept)
    return Manifest(main=main, sections=others)


# -- names and versions from a file name (Syft's archive_filename.go) --------------------------

def _ascii_letter(char: str) -> bool:
    return "a" <= char <= "z" or "A" <= char <= "Z"


def _ascii_digit(char: str) -> bool:
    return "0" <= char <= "9"


def _digits_start(text: str) -> int:
    """Where the run of ASCII digits that ends ``text`` begins."""
    at = len(text)
    while at and _ascii_digit(text[at - 1]):
        at -= 1
    return at


def _release_number(text: str, at: int, digits_start: int, *, any_case: bool) -> bool:
    """Whether ``text[at:]`` matches one of Syft's version-indicating patterns: a digit
    first; "build" and a digit; or r/rc and nothing but digits. Indexes, not slices: this
    is asked at every separator of a name."""
    if at >= len(text):
        return False
    if _ascii_digit(text[at]):
        return True
    head = text[at:at + 5]
    if (head.lower() if any_case else head) == "build" and at + 5 < len(text) and _ascii_digit(text[at + 5]):
        return True
    if text[at] != "r" and not (any_case and text[at] == "R"):
        return False
    at += 1
    if at < len(text) and (text[at] == "c" or (any_case and text[at] == "C")):
        at += 1
    return digits_start <= at < len(text)


def archive_filename(path: str) -> tuple[str, str]:
    """(name, version) guessed from an archive's file name, as Syft's newJavaArchiveFilename
    does with its regular expression: the shortest leading run of dash-separated words
    (a letter, then letters, digits, "_" and ".") followed by "-" and a version-like rest;
    failing that, a version after the first "_", "." or "-" that is followed by one. Written
    as a scan: that expression backtracks exponentially in Python's regex engine."""
    base = path.rsplit("/", 1)[-1]
    stem = base[:base.rfind(".")] if "." in base else base
    name = version = ""
    if stem and _ascii_letter(stem[0]) and "\n" not in stem:
        digits_start = _digits_start(stem)
        for end in range(1, len(stem) + 1):
            char = stem[end - 1]
            if end >= 2 and stem[end - 2] == "-" and not _ascii_letter(char):
                break  # a dash inside a name starts a new word: no longer prefix is a name
            if char != "-" and not (_ascii_letter(char) or _ascii_digit(char) or char in "_."):
                break  # not a name character
            if end == len(stem):
                name = stem
            elif stem[end] == "-" and _release_number(stem, end + 1, digits_start, any_case=True):
                name, version = stem[:end], stem[end + 1:]
            else:
                continue
            break
    if name and not version:
        digits_start = _digits_start(name)
        for at, char in enumerate(name):
            if char in "._-" and _release_number(name, at + 1, digits_start, any_case=False):
                name, version = name[:at], name[at + 1:]
                break
    return name, version


def _name_from_filename(name: str) -> str:
    """A file name like "org.foo.bar" is taken for groupId.artifactId (Syft's
    extractNameFromArchiveFilename)."""
    if "." in name and not name.startswith("org.eclipse."):
        fields = name.split(".")
        if all(part and unicodedata.category(part[0]) in _JAVA_IDENTIFIER_START for part in fields):
            return fields[-1]
    return name


def _select_name(manifest: Manifest, file_name: str) -> str:
    """Syft's selectName: maven-bundle-plugin's Bundle-SymbolicName, the file name, then the
    manifest's own naming fields."""
    if "Apache Maven Bundle Plugin" in manifest.get("Created-By") and (symbolic := manifest.get("Bundle-SymbolicName")):
        vendor = manifest.get("Implementation-Vendor-Id")
        if not vendor or vendor != symbolic:
            return symbolic.split(".")[-1]
    if name := _name_from_filename(file_name):
        return name
    for key in ("Name", "Bundle-Name", "Short-Name", "Extension-Name", "Implementation-Title"):
        if value := manifest.get(key):
            return value
    return ""


def _select_version(manifest: Manifest, file_version: str) -> str:
    return file_version or next((value for key in _VERSION_KEYS if (value := manifest.field(key))), "")


# -- Maven metadata -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PomProperties:
    path: str  #: inside the archive
    group_id: str
    artifact_id: str
    version: str


@dataclass(frozen=True, slots=True)
class PomProject:
    path: str
    group_id: str = ""  #: as written, ${...} expanded; see ``resolved_group_id``
    artifact_id: str = ""
    version: str = ""
    parent_group_id: str = ""
    parent_artifact_id: str = ""
    parent_version: str = ""
    licenses: tuple[str, ...] = ()

    @property
    def resolved_group_id(self) -> str:
        return self.group_id or self.parent_group_id  # Maven inherits both from the parent

    @property
    def resolved_version(self) -> str:
        return self.version or self.parent_version


def parse_pom_properties(path: str, raw: bytes) -> PomProperties:
    """"key=value" or "key: value" lines, "#" comments (Syft's parsePomProperties; keys
    matched case-insensitively as its mapstructure decoding does).

    Raises:
        ValueError: a line that is neither blank, a comment nor a key and value.
    """
    values: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\n"):
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip(" ").startswith("#"):
            continue
        at = min((i for i in (line.find("="), line.find(":")) if i >= 0), default=-1)
        if at < 0:
            raise ValueError(f"not a properties line: {line[:80]!r}")
        values[line[:at].strip().lower()] = line[at + 1:].strip()
    return PomProperties(path=path, group_id=values.get("groupid", ""), artifact_id=values.get("artifactid", ""),
                         version=values.get("version", ""))


_POM_FIELDS: Final = {("project", "groupId"): "group_id", ("project", "artifactId"): "artifact_id",
                      ("project", "version"): "version", ("project", "parent", "groupId"): "parent_group_id",
                      ("project", "parent", "artifactId"): "parent_artifact_id",
                      ("project", "parent", "version"): "parent_version"}


class _PomReader:
    """Collects the few POM elements wanted from expat events (no tree is built)."""

    def __init__(self) -> None:
        self.path: list[str] = []
        self.text: list[str] = []
        self.fields: dict[str, str] = {}
        self.properties: dict[str, str] = {}
        self.licenses: list[str] = []
        self.license: dict[str, str] = {}

    def start(self, name: str, _attributes: object) -> None:
        self.path.append(name.rpartition(" ")[2])  # "namespace-uri local-name"
        self.text = []

    def characters(self, data: str) -> None:
        self.text.append(data)

    def end(self, _name: str) -> None:
        if len(self.path) <= 4:  # everything wanted is this shallow; deeper nesting costs nothing
            self._record(tuple(self.path), "".join(self.text).strip())
        self.text = []
        self.path.pop()

    def _record(self, where: tuple[str, ...], value: str) -> None:
        if where in _POM_FIELDS:
            self.fields[_POM_FIELDS[where]] = value
        elif len(where) == 3 and where[:2] == ("project", "properties") and len(self.properties) < MAX_POM_PROPERTIES:
            self.properties[where[2]] = value
        elif len(where) == 4 and where[:3] == ("project", "licenses", "license") and where[3] in ("name", "url"):
            self.license[where[3]] = value
        elif where == ("project", "licenses", "license"):
            if chosen := self.license.get("name") or self.license.get("url"):
                self.licenses.append(chosen)
            self.license = {}


#: What ${project.X} (also ${pom.X} and the bare ${X} of old POMs) refers to.
_PROJECT_PROPERTIES: Final = {"groupId": "group_id", "artifactId": "artifact_id", "version": "version",
                              "parent.groupId": "parent_group_id", "parent.artifactId": "parent_artifact_id",
                              "parent.version": "parent_version"}


def _refuse_declarations(*_args: object) -> None:
    raise ValueError("declares a DTD or entities (not read: entity expansion is a memory bomb)")


def _read_pom(raw: bytes, encoding: str | None) -> _PomReader:
    reader = _PomReader()
    parser = expat.ParserCreate(encoding, namespace_separator=" ")
    parser.StartElementHandler = reader.start
    parser.EndElementHandler = reader.end
    parser.CharacterDataHandler = reader.characters
    parser.StartDoctypeDeclHandler = _refuse_declarations
    parser.EntityDeclHandler = _refuse_declarations
    parser.Parse(raw, True)
    return reader


def _read_pom_any_encoding(raw: bytes) -> _PomReader:
    try:
        return _read_pom(raw, None)
    except expat.ExpatError as exc:
        error = exc
    try:  # POMs written in ISO-8859-1 without saying so are common: read those as such
        raw.decode("utf-8")
    except UnicodeDecodeError:
        try:
            return _read_pom(raw, "ISO-8859-1")
        except expat.ExpatError:
            pass
    raise ValueError(f"not well-formed XML: {error}")


def parse_pom_xml(path: str, raw: bytes) -> PomProject:
    """The coordinates, parent coordinates and license names of a POM, with ${...}
    references to its properties and to project.* expanded.

    Raises:
        ValueError: not well-formed XML, or it declares a DTD.
    """
    reader = _read_pom_any_encoding(raw)
    fields = reader.fields

    def lookup(match: re.Match[str]) -> str:
        key = match.group(1)
        for prefix in ("project.", "pom.", ""):
            if key.startswith(prefix) and (name := key[len(prefix):]) in _PROJECT_PROPERTIES:
                return fields.get(_PROJECT_PROPERTIES[name], "") or (
                    fields.get("parent_" + _PROJECT_PROPERTIES[name], "") if name in ("groupId", "version") else "")
        return reader.properties.get(key, match.group(0))

    def expand(value: str) -> str:
        for _ in range(MAX_PROPERTY_ROUNDS):
            if "${" not in value:
                break
            value = _PROPERTY_REFERENCE.sub(lookup, value)[:MAX_POM_VALUE]
        return value

    return PomProject(path=path, **{key: expand(value) for key, value in fields.items()},
                      licenses=tuple(expand(license) for license in reader.licenses))


def _directory(path: str) -> str:
    """Go's path.Dir: what pairs a pom.properties with the pom.xml beside it."""
    return path.rpartition("/")[0] or "."


# -- group ids (Syft's package_url.go and cpegenerate/java.go) --------------------------------

@dataclass(slots=True, kw_only=True)
class _Draft:
    """A package under construction: names and evidence change as the archive is read."""

    name: str
    version: str
    virtual_path: str
    license: str | None = None
    manifest: Manifest | None = None
    pom_properties: PomProperties | None = None
    pom_project: PomProject | None = None
    sha1: str | None = None


def _clean_group(value: str) -> str:
    return value.split(";")[0].strip()  # drops OSGi directives: "org.bar;uses:=..."


def _manifest_groups(manifest: Manifest, keys: tuple[str, ...]) -> list[str]:
    found = []
    for key in keys:
        for section in (manifest.main, *manifest.sections):
            if key in section and section[key].startswith(_GROUP_PREFIXES):
                found.append(_clean_group(section[key]).split("#")[0].strip())
    return sorted(found)


def _group_id(draft: _Draft) -> str:
    """Syft's groupIDFromJavaMetadata: pom.properties, then pom.xml (its parent's too), then
    the manifest's group-like fields. (Syft consults a built-in table of artifactId to groupId
    before the manifest; it is not reproduced here.)"""
    if (properties := draft.pom_properties) is not None:
        if properties.group_id:
            return _clean_group(properties.group_id)
        if "." in properties.artifact_id:  # a group id put in the artifactId field
            return _clean_group(properties.artifact_id)
    if (project := draft.pom_project) is not None:
        for group, artifact in ((project.group_id, project.artifact_id),
                                (project.parent_group_id, project.parent_artifact_id)):
            if group:
                return _clean_group(group)
            if "." in artifact:
                return _clean_group(artifact)
    if draft.manifest is not None:
        for keys in (_GROUP_KEYS, _FALLBACK_GROUP_KEYS):
            if found := _manifest_groups(draft.manifest, keys):
                return found[0]
    return ""


def _same_artifact(candidate: _Draft, parent: _Draft) -> bool:
    """Syft's packageIdentitiesMatch: whether a pom.properties describes the archive itself."""
    if (_group_id(candidate), candidate.name, candidate.version) == (_group_id(parent), parent.name, parent.version):
        return True
    if candidate.virtual_path == parent.virtual_path:
        return True
    properties = candidate.pom_properties
    return properties is not None and bool(properties.artifact_id) and properties.artifact_id == parent.name


def _from_maven_data(properties: PomProperties, project: PomProject | None, parent: _Draft,
                     virtual_path: str) -> _Draft | None:
    """Syft's newPackageFromMavenData: a package for one pom.properties, or None when it
    describes the archive itself (then the archive's package takes its name and version)."""
    parent_key = (_group_id(parent), parent.name, parent.version)
    if parent_key != (properties.group_id, properties.artifact_id, properties.version):
        virtual_path = shorten(f"{virtual_path}:{properties.group_id}:{properties.artifact_id}", MAX_VIRTUAL_PATH)
    draft = _Draft(name=properties.artifact_id, version=properties.version, virtual_path=virtual_path,
                   license=_joined(project.licenses) if project else None,
                   pom_properties=properties, pom_project=project)
    if _same_artifact(draft, parent):
        parent.name, parent.version = draft.name, draft.version
        if parent.pom_properties is None:
            parent.pom_properties = properties
        return None
    return draft


def _joined(licenses: tuple[str, ...] | list[str]) -> str | None:
    return " AND ".join(licenses) if licenses else None


def _artifact_matches_file(artifact_id: str, file_name: str, artifact_ids: set[str]) -> bool:
    if not artifact_id or not file_name:
        return False
    if file_name in artifact_ids:
        return artifact_id == file_name
    return artifact_id.startswith(file_name) or file_name.endswith(artifact_id)


# -- reading an archive -------------------------------------------------------------------------

@dataclass(slots=True)
class _Walk:
    """One top-level archive and everything nested in it: what is left of each bound."""

    top: str
    result: ParseResult
    inflated_left: int = MAX_INFLATED_BYTES
    sliced_left: int = MAX_SLICED_BYTES
    members_left: int = MAX_TOTAL_MEMBERS
    archives_left: int = MAX_NESTED_ARCHIVES
    stopped: bool = False  #: a bound was reached: nothing more is read
    warnings_dropped: int = 0  #: past MAX_WARNINGS

    def warn(self, message: str) -> None:
        if len(self.result.warnings) < MAX_WARNINGS:
            self.result.warnings.append(message)
        else:
            self.warnings_dropped += 1

    def stop(self, message: str) -> None:
        self.stopped = True
        self.result.warnings.append(message)  # always kept: it says why the rest is missing

    def finish(self) -> None:
        if self.warnings_dropped:
            self.result.warnings.append(f"{self.top}: {self.warnings_dropped} more warnings not shown")

    def read(self, view: memoryview, member: ZipMember, where: str, limit: int, *,
             truncate: bool = False) -> memoryview | None:
        if self.stopped:
            return None
        stored = member.method == STORED
        if member.size > limit and not truncate:
            self.warn(f"{where}: declares {member.size} bytes, more than the {limit} read; skipped")
            return None
        wanted = min(member.size, limit)
        if wanted > (self.sliced_left if stored else self.inflated_left):
            total = MAX_SLICED_BYTES if stored else MAX_INFLATED_BYTES
            self.stop(f"{self.top}: more than {total} bytes {'read' if stored else 'inflated'} from this archive "
                      f"and the archives in it (a zip bomb?); stopped before {where}")
            return None
        try:
            data = read_member(view, member, limit=limit, truncate=truncate)
        except ZipError as exc:
            self.warn(f"{where}: {exc}; skipped")
            return None
        if stored:
            self.sliced_left -= len(data)
        else:
            self.inflated_left -= len(data)
        return data

    def read_text(self, view: memoryview, member: ZipMember, where: str) -> bytes | None:
        data = self.read(view, member, where, MAX_METADATA_BYTES, truncate=True)
        if data is None:
            return None
        with data:
            return bytes(data)


def _maven_files(walk: _Walk, view: memoryview, virtual_path: str, named: dict[str, ZipMember],
                 ) -> tuple[dict[str, PomProperties], dict[str, PomProject]]:
    """pom.properties (with an artifactId and a version) and pom.xml files, by directory."""
    properties: dict[str, PomProperties] = {}
    projects: dict[str, PomProject] = {}
    paths = sorted(name for name in named if name.endswith((_POM_PROPERTIES, _POM_XML)))
    if len(paths) > MAX_MAVEN_FILES:
        walk.warn(f"{virtual_path}: {len(paths)} pom.properties and pom.xml files; only the first "
                  f"{MAX_MAVEN_FILES} read")
        paths = paths[:MAX_MAVEN_FILES]
    for path in paths:
        where = _virtual_path(virtual_path, path)
        raw = walk.read_text(view, named[path], where)
        if raw is None:
            continue
        try:
            if path.endswith(_POM_PROPERTIES):
                parsed = parse_pom_properties(path, raw)
                if parsed.artifact_id and parsed.version:
                    properties[_directory(path)] = parsed
            else:
                projects[_directory(path)] = parse_pom_xml(path, raw)
        except ValueError as exc:
            walk.warn(f"{where}: {exc}; skipped")
    return properties, projects


def _main_package(virtual_path: str, manifest: Manifest, properties: dict[str, PomProperties],
                  projects: dict[str, PomProject]) -> _Draft:
    """The archive's own package (Syft's discoverMainPackage and discoverMainPackageFromPomInfo)."""
    file_name, file_version = archive_filename(virtual_path.rsplit(":", 1)[-1])
    artifact_ids = {p.artifact_id for p in properties.values()}
    chosen: PomProperties | None = None
    project: PomProject | None = None
    for directory in sorted(properties):
        if _artifact_matches_file(properties[directory].artifact_id, file_name, artifact_ids):
            chosen = properties[directory]
            if directory in projects:
                project = projects[directory]
                break
    name = chosen.artifact_id if chosen else ""
    version = chosen.version if chosen else ""
    if project is not None:
        name = name or project.artifact_id
        version = version or project.resolved_version
    licenses = [value for key in _LICENSE_KEYS if (value := manifest.field(key))]
    return _Draft(name=name or _select_name(manifest, file_name),
                  version=version or _select_version(manifest, file_version), virtual_path=virtual_path,
                  manifest=manifest, license=_joined(licenses) or (_joined(project.licenses) if project else None))


def _pom_only_packages(properties: dict[str, PomProperties], projects: dict[str, PomProject],
                       main: _Draft, virtual_path: str) -> list[_Draft]:
    """META-INF/maven pom.xml files with no pom.properties beside them (Syft reports none)."""
    found = []
    for directory in sorted(projects):
        project = projects[directory]
        if directory in properties or not directory.startswith("META-INF/maven/"):
            continue
        coordinates = (project.resolved_group_id, project.artifact_id, project.resolved_version)
        if not coordinates[1] or not coordinates[2] or any("${" in value for value in coordinates):
            continue
        stand_in = PomProperties(path=project.path, group_id=coordinates[0], artifact_id=coordinates[1],
                                 version=coordinates[2])
        if (draft := _from_maven_data(stand_in, project, main, virtual_path)) is not None:
            found.append(draft)
    return found


def _package(draft: _Draft) -> Package:
    metadata: dict[str, object] = {"virtual_path": draft.virtual_path}
    if draft.manifest is not None:
        metadata["manifest"] = {key: value[:MAX_MANIFEST_VALUE] for key in MANIFEST_KEYS
                                if (value := draft.manifest.get(key))}
    if draft.pom_properties is not None:
        metadata["pom_path"] = shorten(draft.pom_properties.path, MAX_VIRTUAL_PATH)
    if draft.sha1 is not None:
        metadata["sha1"] = draft.sha1
    namespace = _group_id(draft)
    return Package(type="maven", name=shorten(draft.name, MAX_PACKAGE_FIELD),
                   version=shorten(draft.version, MAX_PACKAGE_FIELD),
                   namespace=shorten(namespace, MAX_PACKAGE_FIELD) if namespace else None,
                   license=shorten(draft.license, MAX_PACKAGE_FIELD) if draft.license else None, metadata=metadata)


def _catalog(walk: _Walk, view: memoryview, virtual_path: str, depth: int) -> None:
    try:
        index = list_members(view, suffixes=_WANTED, max_members=min(MAX_MEMBERS, walk.members_left))
    except ZipError as exc:
        walk.warn(f"{virtual_path}: not a readable zip archive: {exc}")
        return
    walk.members_left -= index.examined
    if not index.complete:
        walk.warn(f"{virtual_path}: {index.declared} members; only the first {index.examined} examined")
    named = {member.name: member for member in index.members}  # a repeated name: the last one counts
    _own_packages(walk, view, virtual_path, named, nested=depth > 0)
    for name in sorted(name for name in named if name.endswith(_ARCHIVE_SUFFIXES)):
        if walk.stopped:
            return
        where = _virtual_path(virtual_path, name)
        if depth + 1 > MAX_NESTING_DEPTH:
            walk.warn(f"{where}: nested more than {MAX_NESTING_DEPTH} archives deep; not cataloged")
            continue
        if walk.archives_left <= 0:
            walk.stop(f"{walk.top}: more than {MAX_NESTED_ARCHIVES} nested archives; the rest not cataloged")
            return
        walk.archives_left -= 1
        member = named[name]
        limit = MAX_SLICED_BYTES if member.method == STORED else MAX_NESTED_ARCHIVE_BYTES
        inner = walk.read(view, member, where, limit)
        if inner is not None:
            with inner:
                _catalog(walk, inner, where, depth + 1)


def _own_packages(walk: _Walk, view: memoryview, virtual_path: str, named: dict[str, ZipMember], *,
                  nested: bool) -> None:
    """The archive's package and its pom.properties packages; none without a manifest (Syft)."""
    member = named.get(MANIFEST_PATH)
    if member is None:
        return
    raw = walk.read_text(view, member, _virtual_path(virtual_path, MANIFEST_PATH))
    if raw is None:
        return
    manifest = parse_manifest(raw, complete=len(raw) < MAX_METADATA_BYTES)
    if "Weave-Classes" in manifest.main:
        return  # New Relic instrumentation jars name the library they instrument, not themselves
    properties, projects = _maven_files(walk, view, virtual_path, named)
    main = _main_package(virtual_path, manifest, properties, projects)
    others = [draft for directory in sorted(properties)
              if (draft := _from_maven_data(properties[directory], projects.get(directory), main, virtual_path))]
    others += _pom_only_packages(properties, projects, main, virtual_path)
    if nested:
        main.sha1 = hashlib.sha1(view).hexdigest()  # the top-level archive's comes from the layer stream
    walk.result.packages.extend(_package(draft) for draft in (main, *others) if draft.name)


def parse_java_archive(path: str, data: bytes | bytearray | memoryview) -> ParseResult:
    """Packages of a Java archive and of the archives nested in it. Damage and bounds
    reached are warnings naming the archive (and the path inside it); what could be read
    is kept."""
    result = ParseResult()
    top = shorten(path, MAX_VIRTUAL_PATH)
    walk = _Walk(top=top, result=result)
    with memoryview(data) as view:
        _catalog(walk, view, top, depth=0)
    walk.finish()
    return result


def _virtual_path(outer: str, name: str) -> str:
    """Syft's "outer:inner", at most MAX_VIRTUAL_PATH characters."""
    return shorten(f"{outer}:{name}", MAX_VIRTUAL_PATH)


JAVA_ARCHIVE = Cataloger(name="java-archive", globs=tuple(f"**/*{suffix}" for suffix in _ARCHIVE_SUFFIXES),
                         parse=parse_java_archive, max_bytes=MAX_ARCHIVE_BYTES)
