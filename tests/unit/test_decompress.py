"""Decoders: chosen by magic bytes, multi-member/multi-frame, bounded output, clear errors."""

import bz2
import gzip
import lzma
import os
import zlib

import pytest
from backports import zstd

from analyzerd.archive import decompress
from analyzerd.archive.decompress import MAX_OUTPUT_CHUNK, StreamDecoder
from analyzerd.errors import ArchiveError
from tests.peak_memory import peak_growth

PAYLOAD = os.urandom(300_000) + b"\0" * 3_000_000 + b"tail"


def decode(blob: bytes, step: int) -> tuple[bytes, str, int]:
    decoder = StreamDecoder()
    out, largest = [], 0
    for i in range(0, len(blob), step):
        for piece in decoder.decode(blob[i:i + step]):
            largest = max(largest, len(piece))
            out.append(piece)
    for piece in decoder.finish():
        out.append(piece)
    return b"".join(out), decoder.compression, largest


COMPRESSORS = {
    "gzip": lambda d: gzip.compress(d),
    "gzip-multi-member": lambda d: gzip.compress(d[:1000]) + gzip.compress(d[1000:]),
    "zstd": zstd.compress,
    "zstd-multi-frame": lambda d: zstd.compress(d[:1000]) + zstd.compress(d[1000:200_000]) + zstd.compress(d[200_000:]),
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "tar": lambda d: d,
}


@pytest.mark.parametrize("name", COMPRESSORS)
@pytest.mark.parametrize("step", [1 << 18, 4099, 7])
def test_round_trip(name, step):
    payload = PAYLOAD if step > 7 else PAYLOAD[:20_000]
    blob = COMPRESSORS[name](payload)
    out, compression, largest = decode(blob, step)
    assert out == payload
    assert compression == name.split("-")[0]
    assert largest <= max(MAX_OUTPUT_CHUNK, step)


@pytest.mark.parametrize("name", ["gzip", "zstd", "bzip2", "xz"])
def test_bomb_output_is_chunked(name):
    blob = COMPRESSORS[name](b"\0" * (64 << 20))
    decoder = StreamDecoder()
    total = 0
    for piece in decoder.decode(blob):
        assert len(piece) <= MAX_OUTPUT_CHUNK
        total += len(piece)
    list(decoder.finish())
    assert total == 64 << 20


@pytest.mark.parametrize("name", ["gzip", "zstd", "bzip2", "xz"])
def test_truncated_stream(name):
    blob = COMPRESSORS[name](PAYLOAD)
    with pytest.raises(ArchiveError, match=f"{name} stream"):
        decode(blob[: len(blob) // 2], 1 << 16)


def test_corrupt_gzip():
    blob = bytearray(gzip.compress(PAYLOAD))
    blob[len(blob) // 2] ^= 0xFF
    with pytest.raises(ArchiveError, match="corrupt gzip stream"):
        decode(bytes(blob), 1 << 16)


@pytest.mark.parametrize("name", ["gzip", "zstd", "bzip2", "xz"])
def test_a_corrupt_stream_is_named_with_the_decoders_reason(name):
    """Not a memory limit (those have their own messages): the codec's own reason follows."""
    blob = bytearray(COMPRESSORS[name](PAYLOAD))
    # the middle of the data; for zstd its first block's header (corrupt literals without a
    # frame checksum decode to other bytes, which the layer digest then refuses)
    start = 6 if name == "zstd" else len(blob) // 3
    for i in range(start, start + 64):
        blob[i] ^= 0xFF
    with pytest.raises(ArchiveError, match=f"^corrupt {name} stream: .+") as caught:
        decode(bytes(blob), 1 << 16)
    assert "None" not in caught.value.message


def test_trailing_garbage_after_gzip():
    with pytest.raises(ArchiveError, match="trailing garbage"):
        decode(gzip.compress(b"abc") + b"not gzip at all", 1 << 16)


def test_zero_padding_after_gzip_is_harmless():
    out, _, _ = decode(gzip.compress(b"abc") + b"\0" * 1024, 100)
    assert out == b"abc"


def test_empty_blob_is_an_empty_layer():
    assert decode(b"", 10)[0] == b""


def test_zlib_and_isal_agree():
    raw = zlib.compressobj(6, zlib.DEFLATED, 31)
    blob = raw.compress(PAYLOAD) + raw.flush()
    assert decode(blob, 1 << 16)[0] == PAYLOAD


# -- decoder memory is bounded by named limits, not by what the stream declares ---------------

def xz_with_dictionary_property(blob: bytes, dict_property: int) -> bytes:
    """``blob`` (one xz stream, one block, one LZMA2 filter) with its block header declaring
    another dictionary size: LZMA2's one-byte property p means (2 | p & 1) << (p // 2 + 11)
    bytes (39: 3 GiB). The header's CRC-32 is recomputed, so only the size is a lie; the data
    decodes with any dictionary at least as large as the encoder's."""
    out = bytearray(blob)
    start = 12  # after the stream header
    size = (out[start] + 1) * 4
    flags = out[start + 1]
    at = start + 2
    for present in (flags & 0x40, flags & 0x80):  # compressed, then uncompressed size (varints)
        if present:
            while out[at] & 0x80:
                at += 1
            at += 1
    assert out[at:at + 2] == b"\x21\x01", "an LZMA2 filter with a one-byte property"
    out[at + 2] = dict_property
    out[start + size - 4:start + size] = zlib.crc32(out[start:start + size - 4]).to_bytes(4, "little")
    return bytes(out)


def xz_zeros(size: int) -> bytes:
    """``size`` zero bytes, xz-compressed a MiB at a time (so building it raises no peak)."""
    compressor = lzma.LZMACompressor(preset=1)
    chunk = bytes(1 << 20)
    return b"".join([*(compressor.compress(chunk) for _ in range(size >> 20)), compressor.flush()])


def zstd_frame_with_window_log(window_log: int) -> bytes:
    """An empty zstd frame whose header declares a 2**window_log window: a frame header
    descriptor with no content size and no single-segment flag, a window descriptor
    (exponent window_log - 10, mantissa 0), then one empty last raw block."""
    return decompress.ZSTD_MAGIC + bytes([0x00, (window_log - 10) << 3]) + b"\x01\x00\x00"


def test_xz_dictionary_over_the_limit_is_refused():
    blob = xz_with_dictionary_property(lzma.compress(b"\0" * (8 << 20), preset=1), 39)  # 3 GiB dictionary
    decoder = StreamDecoder()
    with pytest.raises(ArchiveError, match=r"xz stream needs more than the 128 MiB .*XZ_MAX_MEMORY"):
        for _ in decoder.decode(blob):
            pass


def test_xz_dictionary_attack_costs_no_memory():
    """The confirmed attack, measured: the 3 GiB dictionary used to grow RSS by the output
    decoded (~200 MB here); now it is refused from the block header."""
    growth, outcome = peak_growth(
        setup="""
            from analyzerd.archive.decompress import StreamDecoder
            from tests.unit.test_decompress import xz_with_dictionary_property, xz_zeros
            blob = xz_with_dictionary_property(xz_zeros(200 << 20), 39)
        """,
        call="""
            decoder = StreamDecoder()
            for _ in decoder.decode(blob):
                pass
        """)
    assert outcome.startswith("ArchiveError: xz stream needs more than")
    assert growth < 16 << 20


def test_xz_largest_preset_still_decodes():
    payload = os.urandom(1000) + b"\0" * 100_000
    assert decode(lzma.compress(payload, preset=9 | lzma.PRESET_EXTREME), 4099)[0] == payload
    # a declared 64 MiB dictionary (property 28), as xz -9 writes
    blob = xz_with_dictionary_property(lzma.compress(payload, preset=1), 28)
    assert decode(blob, 4099)[0] == payload


def test_zstd_window_over_the_limit_is_refused():
    assert decompress.ZSTD_MAX_WINDOW_LOG == 27
    assert decode(zstd_frame_with_window_log(27), 4099)[0] == b""
    with pytest.raises(ArchiveError, match=r"zstd frame declares a window larger than the 128 MiB limit"):
        decode(zstd_frame_with_window_log(28), 4099)
    with pytest.raises(ArchiveError, match="ZSTD_MAX_WINDOW_LOG"):
        decode(zstd.compress(b"x") + zstd_frame_with_window_log(31), 4099)


# -- the zlib fallback: what runs where isal is not installed ---------------------------------

@pytest.fixture
def without_isal(monkeypatch):
    """The module as it is imported without isal: zlib inflates, no igzip error type."""
    monkeypatch.setattr(decompress, "_igzip", None)
    monkeypatch.setattr(decompress, "_gzip_impl", zlib)
    monkeypatch.setattr(decompress, "_IGZIP_ERRORS", ())


@pytest.mark.parametrize("name", ["gzip", "gzip-multi-member"])
@pytest.mark.parametrize("step", [1 << 18, 4099, 7])
def test_zlib_fallback_round_trip_in_bounded_chunks(without_isal, name, step):
    payload = PAYLOAD if step > 7 else PAYLOAD[:20_000]
    out, compression, largest = decode(COMPRESSORS[name](payload), step)
    assert out == payload
    assert compression == "gzip"
    assert largest <= max(MAX_OUTPUT_CHUNK, step)


def test_zlib_fallback_bomb_output_is_chunked(without_isal):
    decoder = StreamDecoder()
    sizes = [len(piece) for piece in decoder.decode(gzip.compress(b"\0" * (16 << 20)))]
    list(decoder.finish())
    assert max(sizes) == MAX_OUTPUT_CHUNK and sum(sizes) == 16 << 20


def test_zlib_fallback_refuses_truncated_and_corrupt_gzip(without_isal):
    blob = gzip.compress(PAYLOAD)
    with pytest.raises(ArchiveError, match="gzip stream truncated"):
        decode(blob[: len(blob) // 2], 1 << 16)
    corrupt = bytearray(blob)
    for i in range(len(corrupt) // 3, len(corrupt) // 3 + 64):
        corrupt[i] ^= 0xFF
    with pytest.raises(ArchiveError, match="^corrupt gzip stream: .+"):
        decode(bytes(corrupt), 1 << 16)
    with pytest.raises(ArchiveError, match="trailing garbage after the gzip stream"):
        decode(gzip.compress(b"abc") + b"not gzip at all", 1 << 16)


def test_zstd_window_limit_is_the_named_constant_not_the_librarys_default(monkeypatch):
    """Lowered below libzstd's own default (2**27), the constant alone refuses a 2**21 window."""
    monkeypatch.setattr(decompress, "ZSTD_MAX_WINDOW_LOG", 20)
    assert decode(zstd_frame_with_window_log(20), 4099)[0] == b""
    with pytest.raises(ArchiveError, match=r"larger than the 1 MiB limit \(ZSTD_MAX_WINDOW_LOG = 20\)"):
        decode(zstd_frame_with_window_log(21), 4099)


# -- member boundaries: the next member's magic split across reads, and what may follow the last

SINGLE = {"gzip": gzip.compress, "zstd": zstd.compress, "bzip2": bz2.compress, "xz": lzma.compress}


@pytest.mark.parametrize("name", SINGLE)
def test_next_members_magic_split_across_reads(name):
    """A read that ends inside the magic of the next member (1 byte of gzip's 2, up to 5 of
    xz's 6): the bytes are held until the next read completes them, nothing is lost."""
    first, second = SINGLE[name](b"first member;"), SINGLE[name](b"second member")
    magic = decompress._DECODERS[name].magic
    for cut in range(1, len(magic)):
        decoder = StreamDecoder()
        blob = first + second
        out = b"".join([*decoder.decode(blob[:len(first) + cut]), *decoder.decode(blob[len(first) + cut:]),
                        *decoder.finish()])
        assert out == b"first member;second member", cut


def test_next_members_magic_split_across_reads_with_the_zlib_fallback(without_isal):
    decoder = StreamDecoder()
    blob = gzip.compress(b"first;") + gzip.compress(b"second")
    cut = len(gzip.compress(b"first;")) + 1
    assert b"".join([*decoder.decode(blob[:cut]), *decoder.decode(blob[cut:]), *decoder.finish()]) == b"first;second"


def test_a_stream_that_ends_inside_the_next_members_magic_is_refused():
    with pytest.raises(ArchiveError, match="^trailing garbage after the gzip stream$"):
        decode(gzip.compress(b"abc") + b"\x1f", 1 << 16)
    with pytest.raises(ArchiveError, match="^xz stream truncated"):  # a whole magic starts a member
        decode(lzma.compress(b"abc") + decompress.XZ_MAGIC, 1 << 16)
    with pytest.raises(ArchiveError, match="^gzip stream truncated"):
        decode(gzip.compress(b"abc") + b"\x1f\x8b", 1 << 16)


def test_short_zero_padding_is_harmless_and_short_garbage_is_not():
    assert decode(gzip.compress(b"abc") + b"\0", 1 << 16)[0] == b"abc"
    assert decode(zstd.compress(b"abc") + b"\0\0\0", 1 << 16)[0] == b"abc"
    for garbage in (b"X", b"XXXXXXXX", b"\0X\0X"):
        with pytest.raises(ArchiveError, match="trailing garbage after the gzip stream"):
            decode(gzip.compress(b"abc") + garbage, 1 << 16)


# -- sniffing -----------------------------------------------------------------------------------

def test_a_tar_whose_first_name_starts_like_bzip2_is_a_tar():
    """bzip2's magic is "BZh" and a block-size digit: a member named BZh.txt is no bzip2."""
    from analyzerd.testing import Member, make_layer
    tar = make_layer([Member("BZh.txt", b"x")])
    assert decompress.sniff(tar[:decompress.SNIFF_SIZE]) == "tar"
    assert decode(tar, 4099)[:2] == (tar, "tar")
    assert decompress.sniff(b"BZh91AY") == "bzip2"


def test_the_compression_is_known_once_sniff_size_bytes_arrived():
    blob = gzip.compress(b"abc")
    decoder = StreamDecoder()
    assert list(decoder.decode(blob[:decompress.SNIFF_SIZE - 1])) == [] and decoder.compression is None
    list(decoder.decode(blob[decompress.SNIFF_SIZE - 1:decompress.SNIFF_SIZE]))
    assert decoder.compression == "gzip"
    assert b"".join([*decoder.decode(blob[decompress.SNIFF_SIZE:]), *decoder.finish()]) == b"abc"


def test_a_blob_shorter_than_sniff_size_is_decoded_at_finish():
    assert decode(b"abc", 1)[:2] == (b"abc", "tar")
    with pytest.raises(ArchiveError, match="gzip stream truncated"):
        decode(gzip.compress(b"abc")[:4], 1)


def test_a_zstd_layer_without_a_zstd_decoder_names_the_package(monkeypatch):
    monkeypatch.setattr(decompress, "_zstd", None)
    with pytest.raises(ArchiveError, match=r"^zstd-compressed layer, and no zstd decoder is installed "
                                           r"\(pip install backports\.zstd\)$"):
        decode(zstd.compress(b"abc"), 4099)
    assert decode(gzip.compress(b"abc"), 4099)[0] == b"abc"  # the others need no zstd


def test_an_empty_bzip2_stream_is_bzip2():
    """bz2.compress(b"") is "BZh9" and the end-of-stream marker (0x17...): no block's "1"."""
    assert decode(bz2.compress(b""), 4099)[:2] == (b"", "bzip2")


@pytest.mark.parametrize("name", SINGLE)
def test_a_member_that_ends_while_its_output_is_drained_keeps_the_next_member(name):
    """The first member's last output comes after its input was all taken (1 MiB of zeros from
    a few bytes): the next member, in the same read, is still decoded."""
    blob = SINGLE[name](bytes(1 << 20)) + SINGLE[name](b"second member")
    out, _, largest = decode(blob, len(blob))
    assert out == bytes(1 << 20) + b"second member" and largest <= MAX_OUTPUT_CHUNK


def test_a_decoder_running_out_of_memory_is_not_reported_as_a_corrupt_layer(monkeypatch):
    class OutOfMemory:
        eof = False

        def decompress(self, data, max_length):
            raise MemoryError

    monkeypatch.setattr(decompress._Xz, "_new", lambda self: OutOfMemory())
    with pytest.raises(MemoryError):
        decode(lzma.compress(b"abc"), 4099)


# Mutation survivors that cannot matter (tools/mutation.sh archive):
# - decompress _Multi._more_output: `getattr(obj, "needs_input", True)` without `not`, on `None`, with the
#   names "XXneeds_inputXX"/"NEEDS_INPUT", or with the defaults None/False: bz2, lzma, zstd and igzip
#   report needs_input False before eof only when a call filled max_length, which `len(out) ==
#   MAX_OUTPUT_CHUNK` already drains (zlib has no needs_input and stops short only out of input), so
#   the loop makes at most one more decompress(b"") call that returns b"".
# - decompress _Multi.__init__: `_started = None` or `True`, `_tail = None`: a decoder is made for input
#   in hand and fed it at once (so its first member has started), and _tail is only tested for truth.
# - decompress _Multi._decode_slice: `self._tail = None` once the tail is joined: only tested for truth;
#   `self._started = None` / `True` for a new member: the next line sets it True.
# - decompress _Multi._decode_slice: the drain condition with `and`, `!=` or `_more_output(None)`, and
#   `return` for the drain loop's `break`: the codecs with needs_input report False whenever a call
#   filled max_length (so either operand drains), zlib leaves unconsumed_tail (data) when it did, and
#   the loop only breaks with no data left, where the outer loop ends as a return does.
# - decompress StreamDecoder.decode, finish: `self._head = b"XXXX"` once the decoder is chosen: _head
#   is read only while no decoder is chosen.
# - decompress _Gzip._new: `decompressobj(17 + zlib.MAX_WBITS)` (wbits 32, gzip or zlib header): only
#   input that starts with the gzip magic reaches a member (sniff, and the check before each next one).
