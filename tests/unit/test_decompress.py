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
