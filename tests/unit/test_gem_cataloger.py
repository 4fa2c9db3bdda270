"""Golden tests of the gem catalogers on real gemspecs and Gemfile.lock files (tests/data/gem,
see its SOURCES.md); expected values come from RubyGems and Bundler themselves."""

import json
import pathlib

import pytest

from analyzerd.analysis.dispatch import Dispatch
from analyzerd.catalogers import gem
from analyzerd.catalogers.base import ParseResult, result_from_json, result_to_json
from analyzerd.catalogers.gem import GEMFILE_LOCK, GEMSPEC, parse_gemfile_lock, parse_gemspec

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "gem"
GEMSPECS = json.loads((DATA / "expected" / "gemspecs.json").read_bytes())
LOCKS = json.loads((DATA / "expected" / "gemfile-locks.json").read_bytes())


def read(relative: str) -> bytes:
    return (DATA / relative).read_bytes()


@pytest.mark.parametrize("relative", sorted(GEMSPECS))
def test_gemspecs_match_rubygems(relative):
    want = GEMSPECS[relative]
    result = parse_gemspec("/" + relative, read(relative))
    assert result.warnings == []
    (package,) = result.packages
    assert (package.type, package.name, package.version, package.declared) == (
        "gem", want["name"], want["version"], False)
    assert package.license == (" AND ".join(want["licenses"]) or None)
    assert package.metadata.get("authors", []) == want["authors"]
    assert package.metadata.get("homepage") == want["homepage"]
    assert package.metadata.get("platform", "ruby") == want["platform"]
    assert package.metadata.get("default_gem", False) is ("/specifications/default/" in relative)


def test_gemspec_details():
    bundler = parse_gemspec("/usr/lib/ruby/gems/3.1.0/specifications/default/bundler-2.3.7.gemspec",
                            read("usr/lib/ruby/gems/3.1.0/specifications/default/bundler-2.3.7.gemspec")).packages[0]
    assert bundler.metadata["authors"][0] == "Andr\u00e9 Arko"  # written as "Andr\\u00E9 Arko"
    assert bundler.metadata["default_gem"] is True
    json_gem = "usr/lib/x86_64-linux-gnu/rubygems-integration/3.1.0/specifications/json-2.6.3.gemspec"
    assert b"\x00" in read(json_gem)  # its "# stub:" line: a NUL byte is not a sign of garbage
    assert parse_gemspec("/" + json_gem, read(json_gem)).packages[0].license == "Ruby"


@pytest.mark.parametrize("text, expected", [
    # RubyGems 1.x wrote %q{} literals and no .freeze
    (b"Gem::Specification.new do |s|\n  s.name = %q{rake}\n  s.version = \"0.8.7\"\n"
     b"  s.authors = [\"Jim Weirich\"]\n  s.homepage = %q{http://rake.rubyforge.org}\nend\n",
     ("rake", "0.8.7", None, ["Jim Weirich"], "http://rake.rubyforge.org")),
    # single quotes, a singular license, an array over several lines, another block variable
    (b"Gem::Specification.new do |spec|\n  spec.name    = 'x-y'\n  spec.version = '1.0.0.pre'\n"
     b"  spec.license = 'Apache-2.0'\n  spec.authors = [\"A \\\"quoted\\\" name\".freeze,\n    \"B\".freeze]\nend\n",
     ("x-y", "1.0.0.pre", "Apache-2.0", ["A \"quoted\" name", "B"], None)),
])
def test_gemspec_literal_forms(text, expected):
    (package,) = parse_gemspec("/g/specifications/x.gemspec", text).packages
    assert (package.name, package.version, package.license, package.metadata.get("authors"),
            package.metadata.get("homepage")) == expected


def test_gemspec_platform_is_metadata():
    text = (b'Gem::Specification.new do |s|\n  s.name = "nokogiri".freeze\n  s.version = "1.15.0"\n'
            b'  s.platform = "x86_64-linux".freeze\nend\n')
    (package,) = parse_gemspec("/g/specifications/nokogiri-1.15.0-x86_64-linux.gemspec", text).packages
    assert (package.version, package.metadata) == ("1.15.0", {"platform": "x86_64-linux"})


@pytest.mark.parametrize("relative", ["srv/app/Gemfile.lock"])
def test_gemfile_lock_matches_bundler(relative):
    result = parse_gemfile_lock("/" + relative, read(relative))
    assert result.warnings == []
    got = sorted((p.name, p.version) for p in result.packages)
    assert got == sorted((s["name"], s["version"]) for s in LOCKS[relative])
    assert all(p.type == "gem" and p.declared for p in result.packages)
    (git,) = [p for p in result.packages if p.metadata]
    assert git.name == "localgem" and git.metadata["source"] == "git"
    assert git.metadata["revision"] == "d8e5e0afae53d374f90c6d6763d98f07fc126b63"


@pytest.mark.parametrize("relative", ["usr/lib/ruby/gems/3.1.0/gems/typeprof-0.21.2/Gemfile.lock",
                                      "usr/lib/ruby/gems/3.1.0/gems/rbs-2.1.0/steep/Gemfile.lock"])
def test_lockfiles_shipped_inside_installed_gems(relative):
    # where they are, they are a gem's own development lock: not the image's application
    assert parse_gemfile_lock("/" + relative, read(relative)) == ParseResult()
    # the same bytes as an application's lockfile give what Bundler reads
    result = parse_gemfile_lock("/srv/app/Gemfile.lock", read(relative))
    assert sorted((p.name, p.version) for p in result.packages) == sorted(
        (s["name"], s["version"]) for s in LOCKS[relative])
    path_gems = {p.name: p.metadata for p in result.packages if p.metadata}
    assert path_gems == ({"typeprof": {"source": "path", "remote": "."}} if "typeprof" in relative else {})


def test_gemfile_lock_platforms_are_not_versions():
    text = (b"GEM\n  remote: https://rubygems.org/\n  specs:\n    nokogiri (1.15.0-x86_64-linux)\n"
            b"      racc (~> 1.4)\n    nokogiri (1.15.0-arm64-darwin)\n    racc (1.7.1)\n    rack (3.0.8)\n\n"
            b"PLATFORMS\n  arm64-darwin\n  x86_64-linux\n\nDEPENDENCIES\n  nokogiri\n\n"
            b"CHECKSUMS\n    rack (3.0.8) sha256=abc\n\nBUNDLED WITH\n   2.5.3\n")
    result = parse_gemfile_lock("/srv/app/Gemfile.lock", text)
    assert [(p.name, p.version, p.metadata) for p in result.packages] == [
        ("nokogiri", "1.15.0", {"platforms": ["x86_64-linux", "arm64-darwin"]}), ("racc", "1.7.1", {}),
        ("rack", "3.0.8", {})]


def test_dispatch():
    dispatch = Dispatch([GEMSPEC, GEMFILE_LOCK])
    for path in ("/usr/share/rubygems-integration/all/specifications/rack-2.2.22.gemspec",
                 "/usr/lib/ruby/gems/3.1.0/specifications/default/json-2.6.1.gemspec",
                 "/usr/local/bundle/specifications/rails-7.1.0.gemspec"):
        assert dispatch.match(path) is GEMSPEC, path
    assert dispatch.match("/usr/lib/ruby/gems/3.1.0/gems/rack-2.2.22/rack.gemspec") is None  # a source gemspec
    assert dispatch.match("/srv/app/Gemfile.lock") is GEMFILE_LOCK
    assert dispatch.match("/srv/app/gems.locked") is GEMFILE_LOCK


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary\xff" * 100, b"", b"just some text\n",
                                  b'Gem::Specification.new do |s|\n  s.name = "x"\n  s.version = X::VERSION\nend\n',
                                  b'Gem::Specification.new do |s|\n  s.name = "unterminated\n',
                                  b's.name = " "\ns.version = "1"\n', b's.name = "x"\ns.version = ""\n',
                                  b'Gem::Specification.new do |spec|\n  spec.name = "mygem"\n'
                                  b'  spec.version = MyGem::VERSION\n  spec.authors = ["Gary"]\nend\n'])
def test_gemspec_garbage_warns_naming_the_file(data):
    result = parse_gemspec("/g/specifications/x-1.gemspec", data)
    assert result.packages == [] and result.warnings
    assert all(w.startswith("/g/specifications/x-1.gemspec: ") for w in result.warnings)


@pytest.mark.parametrize("data", [b"\x00\x01\x02binary\xff" * 100, b"just some text\n", b"{\"json\": true}"])
def test_gemfile_lock_garbage_warns_naming_the_file(data):
    result = parse_gemfile_lock("/srv/app/Gemfile.lock", data)
    assert result.packages == [] and result.warnings
    assert all(w.startswith("/srv/app/Gemfile.lock: ") for w in result.warnings)


def test_counts_are_bounded(monkeypatch):
    monkeypatch.setattr(gem, "MAX_LOCK_GEMS", 10)
    text = b"GEM\n  specs:\n" + b"".join(b"    g%d (1.0)\n" % i for i in range(50))
    result = parse_gemfile_lock("/srv/app/Gemfile.lock", text)
    assert len(result.packages) == 10
    assert result.warnings == ["/srv/app/Gemfile.lock: more than 10 gems; the rest skipped"]
    authors = b", ".join(b'"a%d"' % i for i in range(1000))
    spec = b'Gem::Specification.new do |s|\n  s.name = "x"\n  s.version = "1"\n  s.authors = [' + authors + b"]\nend\n"
    (package,) = parse_gemspec("/g/specifications/x-1.gemspec", spec).packages
    assert len(package.metadata["authors"]) == gem.MAX_LIST_ITEMS


def test_memoryview_input_and_database_round_trip():
    data = read("srv/app/Gemfile.lock")
    result = parse_gemfile_lock("/srv/app/Gemfile.lock", memoryview(data))
    assert result.packages == parse_gemfile_lock("/srv/app/Gemfile.lock", data).packages
    again = result_from_json(json.loads(json.dumps(result_to_json(result))))
    assert again.packages == result.packages


#: Ruby string literals as gemspecs hold them (String#dump's escapes in "...", and the
#: single-quoted and %q/%Q forms hand-written specs use), each read by Ruby itself below.
RUBY_LITERALS = (
    r'''"caf\u00E9 \"q\" \#{x} \\ |\t|\e|\s|\0|\a|\r|\n|\b|\f|\v|"''',
    r'"\u{1F600 41}\u{10FFFF}\u00e9"',
    r'"\x41\x7|\x4g|\101\12|\z unknown"',
    r"""'it\'s \\ and \n stays'""",
    r"'ends \\'",
    r"%q(nested (x) \) and \( parens \\)",
    r"%q{b\}r \{ {deep {er}}}",
    r"%q<a\>b <c>>",
    r"%q[x [y] z]",
    r"%q|bar \| baz \n|",
    r"%Q|bar \| baz \t|",
    r"%Q(a\tb (c) \u00e9)",
    '"plain".freeze',
    "'x'.freeze",
)


def test_string_literals_read_as_ruby_reads_them(tmp_path):
    """Every literal form's value is the one Ruby itself gives (Gem::Specification.load, Debian's
    ruby): escapes, nested paired delimiters (%q(a (b) c) is "a (b) c"), escaped delimiters,
    .freeze; one literal read wrongly loses the whole authors list."""
    import shutil
    import subprocess
    assert shutil.which("ruby"), "ruby (Debian's ruby package) is needed: it is the expected result"
    spec = tmp_path / "oracle-1.0.gemspec"
    spec.write_text("# -*- encoding: utf-8 -*-\nGem::Specification.new do |s|\n  s.name = \"oracle\"\n"
                    "  s.version = \"1.0\"\n  s.authors = [" + ", ".join(RUBY_LITERALS) + "]\nend\n")
    read_by_ruby = subprocess.run(
        ["ruby", "-rjson", "-e", "puts JSON.generate(Gem::Specification.load(ARGV[0]).authors)", str(spec)],
        capture_output=True, text=True, check=True).stdout
    expected = [author.strip() for author in json.loads(read_by_ruby)]
    (package,) = parse_gemspec("/usr/share/rubygems-integration/all/specifications/oracle-1.0.gemspec",
                               spec.read_bytes()).packages
    assert package.metadata["authors"] == expected and len(expected) == len(RUBY_LITERALS)


@pytest.mark.parametrize("literal", [r'"\u{110000}"', r'"\u{FFFFFFFF}"', r'"\777"'])
def test_code_points_past_unicode_become_the_replacement_character(literal):
    """Ruby refuses to load such a spec; the cataloger keeps the gem and puts U+FFFD where
    the impossible character was (\\777 is 511: a valid code point, as in Ruby)."""
    text = f's.name = "x"\ns.version = "1"\ns.authors = {literal}\n'.encode()
    (package,) = parse_gemspec("/x/specifications/x-1.gemspec", text).packages
    assert package.metadata["authors"] == [("\u01ff" if literal.endswith('777"') else "\ufffd")]


@pytest.mark.parametrize("text", [b's.name = "x', b"s.name = 'x\\", b"s.name = %q(x (y)", b's.name = "x\\',
                                  b"s.name = %q"])
def test_an_unterminated_literal_is_no_value(text):
    """The text ends inside the name's literal (a string may span lines, so it must be last)."""
    result = parse_gemspec("/x/specifications/x-1.gemspec", b's.version = "1"\n' + text)
    assert result.packages == [] and "no literal name and version" in result.warnings[0]


def test_gemspec_fields_come_from_the_block_variable_inside_the_block(tmp_path):
    """Only assignments on the block's variable, after `Gem::Specification.new do |spec|`,
    count (what Ruby would set on the spec); `author` stands in for `authors`; a platform other
    than plain "ruby" is kept. Ruby's own reading of the same file is the expectation."""
    import shutil
    import subprocess
    assert shutil.which("ruby"), "ruby (Debian's ruby package) is needed: it is the expected result"
    text = """# -*- encoding: utf-8 -*-
helper = Struct.new(:name, :version).new
helper.name = "not-the-gem"
Gem::Specification.new do |spec|
  helper.version = "9.9.9"
  spec.name = "native"
  spec.version = "1.2.3"
  spec.author = "Solo Author"
  spec.platform = "x86_64-linux"
  spec.license = "MIT"
end
"""
    spec = tmp_path / "native-1.2.3-x86_64-linux.gemspec"
    spec.write_text(text)
    script = ("s = Gem::Specification.load(ARGV[0]); "
              "puts [s.name, s.version.to_s, s.authors.join(','), s.platform.to_s, s.licenses.join(',')].join('|')")
    name, version, authors, platform, licenses = subprocess.run(
        ["ruby", "-e", script, str(spec)], capture_output=True, text=True, check=True).stdout.strip().split("|")
    (package,) = parse_gemspec("/var/lib/gems/3.1.0/specifications/native-1.2.3-x86_64-linux.gemspec",
                               text.encode()).packages
    assert (package.name, package.version, package.license) == (name, version, licenses) == ("native", "1.2.3", "MIT")
    assert package.metadata == {"authors": authors.split(","), "platform": platform}
    plain = parse_gemspec("/x/specifications/p-1.gemspec", b's.name = "p"\ns.version = "1"\ns.platform = "ruby"\n')
    assert "platform" not in plain.packages[0].metadata


def test_gemfile_lock_sections_versionless_specs_platforms_and_the_gem_limit(monkeypatch):
    """A spec without a version (Bundler writes none for some path gems) is passed over and the
    rest read; one gem locked for several platforms is one package listing them; a file with no
    Bundler section says it is not a Gemfile.lock; the first MAX_LOCK_GEMS gems are kept, one
    more is refused with a warning."""
    text = b"""PATH
  remote: .
  specs:
    myapp ()

GEM
  remote: https://rubygems.org/
  specs:
    nokogiri (1.15.4-x86_64-linux)
    nokogiri (1.15.4-aarch64-linux)
    nokogiri (1.15.4-x86_64-linux)
    rack (3.0.8)

PLATFORMS
  x86_64-linux

DEPENDENCIES
  nokogiri
"""
    result = parse_gemfile_lock("/app/Gemfile.lock", text)
    names = [(p.name, p.version) for p in result.packages]
    assert names == [("nokogiri", "1.15.4"), ("rack", "3.0.8")] and result.warnings == []
    assert result.packages[0].metadata["platforms"] == ["x86_64-linux", "aarch64-linux"]
    nothing = parse_gemfile_lock("/app/Gemfile.lock", b"just some text\n")
    assert nothing.packages == [] and nothing.warnings == [
        "/app/Gemfile.lock: no GEM, GIT, PATH or DEPENDENCIES section; not a Gemfile.lock"]
    monkeypatch.setattr(gem, "MAX_LOCK_GEMS", 3)
    many = "GEM\n  remote: https://rubygems.org/\n  specs:\n" + "".join(f"    g{i} (1.{i})\n" for i in range(4))
    result = parse_gemfile_lock("/app/Gemfile.lock", many.encode())
    assert [p.name for p in result.packages] == ["g0", "g1", "g2"]
    assert result.warnings == ["/app/Gemfile.lock: more than 3 gems; the rest skipped"]
    exact = "GEM\n  remote: https://rubygems.org/\n  specs:\n" + "".join(f"    g{i} (1.{i})\n" for i in range(3))
    result = parse_gemfile_lock("/app/Gemfile.lock", exact.encode())
    assert [p.name for p in result.packages] == ["g0", "g1", "g2"] and result.warnings == []


def test_unterminated_arrays_are_no_value():
    """An array the text ends inside (after "[" or after an item) gives no list: the gem is
    kept without authors."""
    for tail in (b"[\n", b'["a", "b"', b'["a", "b",  '):
        text = b's.name = "x"\ns.version = "1"\ns.authors = ' + tail
        (package,) = parse_gemspec("/x/specifications/x-1.gemspec", text).packages
        assert (package.name, package.version, package.metadata) == ("x", "1", {})


def test_only_the_block_variable_inside_the_block_sets_fields_as_ruby_reads_it(tmp_path):
    """An assignment before the block on a variable of the block variable's name, one inside
    the block on another object (the only homepage assignment), and an array written without
    blanks after its commas: Ruby's own reading of the same file is the expectation."""
    import shutil
    import subprocess
    assert shutil.which("ruby"), "ruby (Debian's ruby package) is needed: it is the expected result"
    text = """# -*- encoding: utf-8 -*-
s = Struct.new(:name).new
s.name = "not-the-gem"
helper = Struct.new(:homepage).new
Gem::Specification.new do |s|
  helper.homepage = "https://not-the-gem.example.invalid"
  s.name = "compact"
  s.version = "0.1.0"
  s.authors = ["Ann","Bob"]
end
"""
    spec = tmp_path / "compact-0.1.0.gemspec"
    spec.write_text(text)
    script = ("s = Gem::Specification.load(ARGV[0]); "
              "puts [s.name, s.version.to_s, s.authors.join(','), s.homepage.inspect].join('|')")
    name, version, authors, homepage = subprocess.run(
        ["ruby", "-e", script, str(spec)], capture_output=True, text=True, check=True).stdout.strip().split("|")
    assert homepage == "nil"
    (package,) = parse_gemspec("/var/lib/gems/3.1.0/specifications/compact-0.1.0.gemspec", text.encode()).packages
    assert (package.name, package.version) == (name, version) == ("compact", "0.1.0")
    assert package.metadata == {"authors": authors.split(",")} == {"authors": ["Ann", "Bob"]}


@pytest.mark.timeout(20)
def test_many_assignments_of_an_unterminated_literal_are_read_in_linear_time():
    """Each field is read once: a name assigned 50,000 times, each an unclosed %q{ running to
    the end of the file, costs one pass over it, not one per line."""
    text = b's.version = "1"\n' + b"s.name = %q{\n" * 50_000
    result = parse_gemspec("/x/specifications/x-1.gemspec", text)
    assert result.packages == [] and "no literal name and version" in result.warnings[0]


def _bundler_specs(tmp_path, lockfile: bytes) -> list[tuple[str, str]]:
    """(name, version) of every spec Bundler's own LockfileParser reads from ``lockfile``."""
    import shutil
    import subprocess
    assert shutil.which("ruby"), "ruby (Debian's ruby package, with its bundler) is needed: it is the expected result"
    (tmp_path / "Gemfile").write_text("")
    (tmp_path / "Gemfile.lock").write_bytes(lockfile)
    script = ("require 'bundler'; require 'json'; "
              "specs = Bundler::LockfileParser.new(File.read(ARGV[0])).specs; "
              "puts JSON.generate(specs.map { |s| [s.name, s.version.to_s] })")
    env = {"BUNDLE_GEMFILE": str(tmp_path / "Gemfile"), "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(["ruby", "-e", script, str(tmp_path / "Gemfile.lock")], capture_output=True, text=True,
                         check=True, cwd=tmp_path, env=env).stdout
    return sorted(tuple(spec) for spec in json.loads(out))


@pytest.mark.parametrize("lockfile", [
    # a non-source section first, and a stray line indented by one space inside GEM
    b"PLATFORMS\n  ruby\n\nGEM\n  remote: https://rubygems.org/\n  specs:\n    rack (3.0.8)\n junk\n"
    b"    rake (13.0.6)\n\nDEPENDENCIES\n  rack\n  rake\n",
    # written with CRLF line ends (a Windows checkout)
    b"GEM\r\n  remote: https://rubygems.org/\r\n  specs:\r\n    rack (3.0.8)\r\n\r\nDEPENDENCIES\r\n  rack\r\n",
], ids=["section-order-and-stray-line", "crlf"])
def test_gemfile_lock_read_as_bundler_reads_it(tmp_path, lockfile):
    result = parse_gemfile_lock("/srv/app/Gemfile.lock", lockfile)
    assert sorted((p.name, p.version) for p in result.packages) == _bundler_specs(tmp_path, lockfile)
    assert result.packages and result.warnings == []


def test_gemfile_lock_platforms_are_bounded(monkeypatch):
    monkeypatch.setattr(gem, "MAX_LIST_ITEMS", 2)
    text = (b"GEM\n  remote: https://rubygems.org/\n  specs:\n    nokogiri (1.15.4-x86_64-linux)\n"
            b"    nokogiri (1.15.4-aarch64-linux)\n    nokogiri (1.15.4-arm64-darwin)\n\nDEPENDENCIES\n  nokogiri\n")
    (package,) = parse_gemfile_lock("/app/Gemfile.lock", text).packages
    assert package.metadata == {"platforms": ["x86_64-linux", "aarch64-linux"]}


# Mutation survivors that cannot matter (tools/mutation.sh catalogers):
# - gem parse_gemspec, parse_gemfile_lock: `str(data, "UTF-8", ...)` for "utf-8": codec names are
#   case-insensitive.
# - gem _literal_body: `i + 2 >= len(text)` for a backslash: with one character after the backslash
#   at the end of the text, the escape takes that character, so the literal is unterminated either way.
# - gem _string_literal: `i + 3 < len(text)`: differs only when "%q" and its opener end the text, a
#   literal with no body and no closer: no value either way.
# - gem _skip_blank: `in "XX \t\r\nXX"`: "X" then counts as a blank only where an array item, "," or
#   "]" is expected, so it differs only for an item that is a bare constant named X (or XX...), never
#   in a RubyGems-generated gemspec, whose arrays hold string literals only.
# - gem _gem_entries: `section = ""` and `source = None` before the first section: "" is no source
#   section either, so indented lines before the first header are passed over as before, and source
#   is only read on a source section's lines, after its header has set it.
