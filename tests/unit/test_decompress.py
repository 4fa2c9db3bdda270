"""Decoders: chosen by magic bytes, multi-member/multi-frame, bounded output, clear errors."""

import bz2
import gzip
import lzma
import os
import zlib

import pytest
from backports import zstd

from analyzerd.archive.decompress import MAX_OUTPUT_CHUNK, StreamDecoder
from analyzerd.errors import ArchiveError

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
