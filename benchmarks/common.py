"""Shared helpers for the ratio benchmarks (not a test module)."""

from __future__ import annotations

import platform
import time

import torch


def device_line(device: torch.device) -> str:
    if device.type == "cuda":
        return f"device: {torch.cuda.get_device_name(device)} (cuda)"
    return f"device: cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def timed(fn) -> float:
    """Wall time of one call, with the GPU drained before and after."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t


def sentences(n: int) -> list[str]:
    """Distinct multilingual sentences of realistic length (10-25 tokens)."""
    from mmfeatures.demo import SENTENCES

    base = [t for by_lang in SENTENCES.values() for t in by_lang.values()]
    return [f"{base[i % len(base)]} ({i})" for i in range(n)]
