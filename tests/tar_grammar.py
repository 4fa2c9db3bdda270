"""A grammar of hostile tar streams, for the differential tests against the runtime's reader.

A stream is a list of members; each member is one header block (in one of the formats Go
tells apart: v7, ustar, GNU, star), its data and padding. Every field can be written the
way a tar writer should write it, or in one of the ways Go's parser is strict or lenient
about: spaces and NULs around octal digits, garbage after a NUL, digits 8 and 9, signs,
base-256 (positive, negative, overflowing). Meta members (GNU long names and links, PAX
extended and global headers) carry records that are valid, empty, malformed or hostile.
GNU sparse files come in the PAX forms 0.0, 0.1 and 1.0, with maps that are right or wrong.
After the members: an end-of-archive marker or not, data after it, zero blocks in the
middle, and a cut at any byte.

``streams()`` is the hypothesis strategy; ``shape(stream)`` names the header kinds a stream
uses, for counting distinct shapes in a fuzz run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import strategies as st

BLOCK = 512

# -- numeric fields -------------------------------------------------------------------------

NUMBER_STYLES = ("octal", "octal", "octal", "spaces", "nul-garbage", "no-terminator", "empty",
                 "bad-digit", "plus", "underscore", "base256", "base256-negative", "base256-overflow")


def encode_number(value: int, width: int, style: str) -> bytes:
    """A numeric header field of ``width`` bytes in a given style."""
    digits = b"%o" % abs(value)
    if style == "octal":
        raw = digits.rjust(width - 1, b"0")[-(width - 1):] + b"\0"
    elif style == "spaces":
        raw = (b" " + digits + b" ").rjust(width, b" ")[-width:]
    elif style == "nul-garbage":
        raw = (digits + b"\0zz").ljust(width, b"\0")[:width]
    elif style == "no-terminator":
        raw = digits.rjust(width, b"0")[-width:]
    elif style == "empty":
        raw = bytes(width)
    elif style == "bad-digit":
        raw = (digits[:-1] + b"9\0").rjust(width, b"0")[-width:]
    elif style == "plus":
        raw = (b"+" + digits + b"\0").rjust(width, b" ")[-width:]
    elif style == "underscore":
        raw = (digits[:1] + b"_" + digits[1:] + b"\0").rjust(width, b"0")[-width:]
    elif style == "base256":
        raw = b"\x80" + value.to_bytes(width - 1, "big", signed=False) if value >= 0 else bytes(width)
    elif style == "base256-negative":
        raw = (-abs(value) - 1).to_bytes(width, "big", signed=True)
        raw = bytes([raw[0] | 0xC0]) + raw[1:]
    elif style == "base256-overflow":  # more than 63 bits in 12 bytes; the largest 8-byte value
        raw = b"\x80\x7f" + b"\xff" * (width - 2) if width > 8 else b"\x80" + b"\xff" * (width - 1)
    else:
        raise ValueError(style)
    assert len(raw) == width, (style, raw)
    return raw


# -- members ----------------------------------------------------------------------------------

FORMATS = ("ustar", "ustar", "gnu", "gnu", "v7", "star", "ustar-bad-version")
_MAGIC = {"ustar": b"ustar\x0000", "gnu": b"ustar  \0", "v7": b"", "star": b"ustar\x0000",
          "ustar-bad-version": b"ustar\x00zz"}


@dataclass
class Member:
    name: bytes = b"f"
    typeflag: bytes = b"0"
    data: bytes = b""
    size: int | None = None  #: the size field; None: len(data)
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 1_700_000_000
    linkname: bytes = b""
    fmt: str = "ustar"
    prefix: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    styles: dict[str, str] = field(default_factory=dict)  #: field -> number style
    checksum: str = "unsigned"  #: unsigned signed plus-65521 minus-65521 bad-octal off-by-one
    gnu_times: bytes = b""  #: GNU atime/ctime area (a pre-Go-1.8 prefix, or garbage)
    padding: bool = True  #: write the data's padding

    def header(self) -> bytes:
        hdr = bytearray(BLOCK)
        hdr[0:100] = self.name[:100].ljust(100, b"\0")
        size = len(self.data) if self.size is None else self.size
        for name, value, start, width in (("mode", self.mode, 100, 8), ("uid", self.uid, 108, 8),
                                          ("gid", self.gid, 116, 8), ("size", size, 124, 12),
                                          ("mtime", self.mtime, 136, 12)):
            hdr[start:start + width] = encode_number(value, width, self.styles.get(name, "octal"))
        hdr[156:157] = self.typeflag
        hdr[157:257] = self.linkname[:100].ljust(100, b"\0")
        magic = _MAGIC[self.fmt]
        hdr[257:257 + len(magic)] = magic
        if self.fmt != "v7":
            hdr[265:270] = b"root\0"
            hdr[297:302] = b"root\0"
            hdr[329:337] = encode_number(self.devmajor, 8, self.styles.get("devmajor", "octal"))
            hdr[337:345] = encode_number(self.devminor, 8, self.styles.get("devminor", "octal"))
        if self.fmt in ("ustar", "ustar-bad-version"):
            hdr[345:345 + len(self.prefix[:155])] = self.prefix[:155]
        elif self.fmt == "star":
            hdr[345:345 + len(self.prefix[:131])] = self.prefix[:131]
            hdr[508:512] = b"tar\0"
        elif self.fmt == "gnu" and self.gnu_times:
            hdr[345:345 + len(self.gnu_times[:155])] = self.gnu_times[:155]
        hdr[148:156] = b" " * 8
        unsigned = sum(hdr)
        signed = sum(b - 256 if b > 127 else b for b in hdr)
        chk = {"unsigned": unsigned, "signed": signed, "plus-65521": unsigned + 65521,
               "minus-65521": unsigned - 65521, "off-by-one": unsigned + 1}.get(self.checksum, unsigned)
        if self.checksum == "bad-octal":
            hdr[148:156] = b"12x45\0  "
        elif chk < 0:
            hdr[148:156] = b"-%06o\0" % -chk
        else:
            hdr[148:156] = (b"%06o\0 " % chk)[-8:] if chk < 8**7 else b"%07o\0" % (chk % 8**7)
        return bytes(hdr)

    def encode(self) -> bytes:
        pad = -len(self.data) % BLOCK if self.padding else 0
        return self.header() + self.data + bytes(pad)


def pax_record(key: bytes, value: bytes) -> bytes:
    """A correct PAX record "LEN key=value\\n"."""
    body = b" " + key + b"=" + value + b"\n"
    length = len(body) + 1
    while len(b"%d" % length) + len(body) != length:
        length += 1
    return b"%d" % length + body


# -- strategies -----------------------------------------------------------------------------

_SEGMENTS = st.sampled_from([b"a", b"b", b"etc", b"usr", b"bin", b"dir", b"x" * 60, b".", b"..",
                             b"", b".wh.a", b".wh..wh..opq", b"caf\xc3\xa9", b"\xff\xfe", b"sp ace"])


@st.composite
def names(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(_SEGMENTS, min_size=1, max_size=4))
    name = b"/".join(parts)
    if draw(st.booleans()):
        name = draw(st.sampled_from([b"./", b"/", b"../"])) + name
    if draw(st.integers(0, 5)) == 0:
        name += b"/"
    if draw(st.integers(0, 12)) == 0:
        name = name[:3] + b"\0" + name[3:]  # a NUL inside the name field
    return name


_PAX_KEYS = (b"path", b"linkpath", b"size", b"uid", b"gid", b"mtime", b"atime", b"ctime", b"uname",
             b"gname", b"SCHILY.xattr.user.x", b"hdrcharset", b"comment", b"GNU.sparse.name",
             b"LIBARCHIVE.creationtime")


@st.composite
def pax_value(draw: st.DrawFn, key: bytes) -> bytes:
    if key in (b"path", b"linkpath", b"GNU.sparse.name"):
        return draw(st.one_of(names(), names(), names(), st.just(b""), st.just(b"a\0b")))
    if key in (b"size", b"uid", b"gid"):
        return draw(st.sampled_from([b"0", b"5", b"100", b"3000000", b"+7", b"-1", b"007", b"1_0", b" 5",
                                     b"9223372036854775807", b"9223372036854775808", b"", b"x"]))
    if key in (b"mtime", b"atime", b"ctime"):
        return draw(st.sampled_from([b"1700000000", b"1700000000.5", b"-1.5", b"-0.000000001", b"1.",
                                     b".5", b"1e9", b"1.2.3", b"-3", b"99999999999", b"", b"1.1234567891"]))
    return draw(st.sampled_from([b"", b"v", b"UTF-8", b"BINARY", b"\xff\x00", b"x" * 200]))


@st.composite
def pax_body(draw: st.DrawFn) -> bytes:
    records = []
    for _ in range(draw(st.integers(0, 4))):
        key = draw(st.sampled_from(_PAX_KEYS))
        records.append(pax_record(key, draw(pax_value(key))))
    malformation = draw(st.sampled_from(["none"] * 30 + ["length+1", "length-1", "no-newline", "no-equals",
                                                        "empty-key", "nul-pad", "leading-zeros", "plus-length",
                                                        "nul-key"]))
    body = b"".join(records)
    if malformation == "length+1":
        body += b"9 a=bc\n"
    elif malformation == "length-1":
        body += b"7 a=bc\n"
    elif malformation == "no-newline":
        body += b"7 a=bcX"
    elif malformation == "no-equals":
        body += b"7 abcd\n"
    elif malformation == "empty-key":
        body += b"7 =bcd\n"
    elif malformation == "nul-pad":
        body += b"\0" * 20
    elif malformation == "leading-zeros":
        body += b"0009 a=bc\n"
    elif malformation == "plus-length":
        body += b"+8 a=bc\n"
    elif malformation == "nul-key":
        body += b"8 a\0b=cd\n"
    return body


@st.composite
def sparse_member(draw: st.DrawFn, base: Member) -> list[Member]:
    """A GNU sparse file in one of the PAX forms, with a map that may be wrong."""
    version = draw(st.sampled_from(["0.0", "0.1", "1.0"]))
    fragments = draw(st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 700)), max_size=4))
    fragments.sort()
    logical = draw(st.integers(0, 6000))
    data = b"".join(bytes([65 + i % 26]) * length for i, (_, length) in enumerate(fragments))
    if draw(st.integers(0, 4)) == 0:
        data = data[:-1] if data else b"x"  # missing or unreferenced data
    records = [pax_record(b"GNU.sparse.realsize" if version != "1.0" else b"GNU.sparse.realsize", b"%d" % logical),
               pax_record(b"GNU.sparse.name", base.name)]
    if version == "0.0":
        records.append(pax_record(b"GNU.sparse.numblocks", b"%d" % len(fragments)))
        for offset, length in fragments:
            records += [pax_record(b"GNU.sparse.offset", b"%d" % offset),
                        pax_record(b"GNU.sparse.numbytes", b"%d" % length)]
    elif version == "0.1":
        records.append(pax_record(b"GNU.sparse.numblocks", b"%d" % len(fragments)))
        records.append(pax_record(b"GNU.sparse.map", b",".join(b"%d,%d" % f for f in fragments)))
        records += [pax_record(b"GNU.sparse.major", b"0"), pax_record(b"GNU.sparse.minor", b"1")]
    else:
        records += [pax_record(b"GNU.sparse.major", b"1"), pax_record(b"GNU.sparse.minor", b"0")]
        text = b"%d\n" % len(fragments) + b"".join(b"%d\n%d\n" % f for f in fragments)
        data = text + bytes(-len(text) % BLOCK) + data
    body = b"".join(records)
    pax = Member(name=b"PaxHeaders/" + base.name[:80], typeflag=b"x", data=body, fmt="ustar")
    base.data = data
    base.typeflag = b"0"
    return [pax, base]


@st.composite
def members(draw: st.DrawFn) -> list[Member]:
    """One logical entry: a plain member, or meta members followed by one."""
    typeflag = draw(st.sampled_from([b"0"] * 12 + [b"\0"] * 3 + [b"1", b"2", b"3", b"4", b"6"] * 2 + [b"5"] * 5
                                    + [b"7", b"V", b"M", b"N", b"D", b"A", b"Z", b"\x01", b"S", b"g", b"x",
                                       b"L", b"K"]))
    data = draw(st.sampled_from([b"", b"hello\n", b"z" * 511, b"q" * 512, b"w" * 1500]))
    size = draw(st.sampled_from([None] * 30 + [0, 3, 600, -1]))
    if typeflag in b"123456" and draw(st.integers(0, 9)):
        # types without data: usually none written, the size field sometimes claiming some
        data, size = b"", draw(st.sampled_from([None] * 6 + [100]))
    styles = {}
    for name in ("mode", "uid", "gid", "size", "mtime", "devmajor", "devminor"):
        if draw(st.integers(0, 40)) == 0:  # most headers well formed, so streams get deep
            styles[name] = draw(st.sampled_from(NUMBER_STYLES))
    base = Member(
        name=draw(names()), typeflag=typeflag, data=data,
        size=size,
        mode=draw(st.sampled_from([0o644, 0o755, 0o4755, 0o1777, 0o7777, 0o100644, 0])),
        uid=draw(st.sampled_from([0, 1000, 65534, 2097151])), gid=draw(st.sampled_from([0, 50])),
        mtime=draw(st.sampled_from([0, 1_700_000_000, 8**11 - 1])),
        linkname=draw(st.one_of(st.just(b""), names())),
        fmt=draw(st.sampled_from(FORMATS)),
        prefix=draw(st.sampled_from([b""] * 5 + [b"pre/fix", b"\xc3\xa9t\xc3\xa9", b"p" * 155])),
        devmajor=draw(st.sampled_from([0, 1, 8])), devminor=draw(st.sampled_from([0, 3])),
        styles=styles,
        checksum=draw(st.sampled_from(["unsigned"] * 60 + ["signed", "plus-65521", "minus-65521", "bad-octal",
                                                            "off-by-one"])),
        gnu_times=draw(st.sampled_from([b""] * 6 + [b"old/go/prefix", b"12345670123\0", b"\x80garbage"])),
    )
    if typeflag in (b"x", b"g"):
        base.data = draw(pax_body())
    elif typeflag in (b"L", b"K"):
        base.data = draw(names()) + draw(st.sampled_from([b"\0", b"", b"\0junk"]))
    out: list[Member] = []
    if draw(st.integers(0, 1)) == 0:  # meta members before the entry
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from([b"x", b"x", b"g", b"L", b"K"]))
            body = draw(pax_body()) if kind in (b"x", b"g") else draw(names()) + b"\0"
            out.append(Member(name=b"././@meta", typeflag=kind, data=body, fmt=draw(st.sampled_from(FORMATS))))
    if typeflag == b"0" and draw(st.integers(0, 6)) == 0:
        return out + draw(sparse_member(base))
    return out + [base]


@dataclass
class Stream:
    members: list[Member]
    ending: str  #: marker, one-zero-block, none, zero-block-mid, marker-then-garbage
    cut: int | None  #: truncate the encoded stream to this many bytes

    def encode(self) -> bytes:
        parts = [m.encode() for m in self.members]
        if self.ending == "zero-block-mid" and len(parts) > 1:
            parts.insert(len(parts) // 2, bytes(BLOCK))
        data = b"".join(parts)
        if self.ending in ("marker", "marker-then-garbage"):
            data += bytes(2 * BLOCK)
        elif self.ending == "one-zero-block":
            data += bytes(BLOCK)
        if self.ending == "marker-then-garbage":
            data += b"garbage after the end " + bytes(600) + Member(name=b"hidden").encode()
        if self.cut is not None:
            data = data[:self.cut % (len(data) + 1)]
        return data


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    entries: list[Member] = []
    for _ in range(draw(st.integers(1, 5))):
        entries += draw(members())
    ending = draw(st.sampled_from(["marker", "marker", "none", "one-zero-block", "zero-block-mid",
                                   "marker-then-garbage"]))
    cut = draw(st.one_of(*[st.none()] * 6, st.integers(0, 20_000)))
    return Stream(entries, ending, cut)


def shape(stream: Stream) -> tuple[str, ...]:
    """The kinds of headers a stream is made of (format, typeflag, odd number styles,
    checksum style), for counting how many distinct shapes a fuzz run reached."""
    kinds = []
    for m in stream.members:
        odd = ",".join(f"{k}={v}" for k, v in sorted(m.styles.items()))
        kinds.append(f"{m.fmt}/{m.typeflag!r}/{odd}/{m.checksum}")
    return tuple(kinds) + (stream.ending, "cut" if stream.cut is not None else "whole")


# -- images: layers of plain, well-formed entries over a small set of paths ---------------------

_POOL = ["a", "b", "a/b", "a/c", "b/c", "a/b/c", "d", "d/e", "l", "l/x", "a/l", "b/c/d"]


@st.composite
def layer_members(draw: st.DrawFn) -> list[Member]:
    """One layer's entries: files, directories, symlinks (relative, absolute, to directories,
    dangling, looping), hardlinks, whiteouts, opaque markers and global headers, over paths
    that overlap within the layer and across layers."""
    out = []
    for _ in range(draw(st.integers(1, 7))):
        path = draw(st.sampled_from(_POOL)).encode()
        op = draw(st.sampled_from(["file"] * 4 + ["dir"] * 3 + ["symlink"] * 2 +
                                  ["hardlink", "whiteout", "whiteout", "opaque", "global"]))
        mode = draw(st.sampled_from([0o644, 0o755, 0o4755, 0o700]))
        uid = draw(st.sampled_from([0, 1000]))
        if op == "file":
            out.append(Member(name=path, data=draw(st.sampled_from([b"", b"one", b"two" * 300])), mode=mode, uid=uid))
        elif op == "dir":
            out.append(Member(name=path + b"/", typeflag=b"5", mode=mode | 0o700, uid=uid))
        elif op == "symlink":
            target = draw(st.sampled_from([b"a", b"/a", b"b/c", b"../a", b"/d", b"missing", b"l", b".", b"/",
                                           b"../../b"]))
            out.append(Member(name=path, typeflag=b"2", linkname=target, mode=0o777, uid=uid))
        elif op == "hardlink":
            out.append(Member(name=path, typeflag=b"1", linkname=draw(st.sampled_from(_POOL)).encode(),
                              mode=mode, uid=uid))
        elif op == "whiteout":
            parent, _, base = path.rpartition(b"/")
            out.append(Member(name=(parent + b"/" if parent else b"") + b".wh." + base, mode=0o644))
        elif op == "opaque":
            out.append(Member(name=path + b"/.wh..wh..opq", mode=0o644))
        else:
            body = pax_record(b"path", path)
            out.append(Member(name=b"pax_global_header", typeflag=b"g", data=body))
    return out


@st.composite
def images(draw: st.DrawFn) -> list[bytes]:
    """Uncompressed layer tars, bottom first."""
    layers = []
    for _ in range(draw(st.integers(1, 3))):
        members = draw(layer_members())
        layers.append(b"".join(m.encode() for m in members) + bytes(2 * BLOCK))
    return layers
