"""Resolve Hugging Face repos and open_clip pretrained tags to local files, never hanging.

Order: a local path; then the local cache; then, only if the hub answers a bounded probe, a
download. With ``HF_HUB_OFFLINE=1``, or when the probe fails, a missing model raises
ModelNotAvailableError within seconds, with the command that downloads it.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from mmfeatures.errors import ModelNotAvailableError

PROBE_TIMEOUT_S = 3.0

# Files a transformers model folder needs; weights in either format.
_HF_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*", "*.py"]


def _offline_env() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=8)
def _probe(host: str, port: int) -> bool:
    def connect() -> bool:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True

    # getaddrinfo has no timeout of its own, so bound the whole probe from outside.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=PROBE_TIMEOUT_S + 1)
    except (OSError, concurrent.futures.TimeoutError):
        return False
    finally:
        pool.shutdown(wait=False)


def hub_reachable() -> bool:
    """False under HF_HUB_OFFLINE=1 or when the hub endpoint does not answer within ~3 s."""
    if _offline_env():
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    return _probe(url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80))


def _why_offline() -> str:
    return "HF_HUB_OFFLINE=1 is set" if _offline_env() else "the Hugging Face hub is not reachable from here"


def resolve_hf(repo_or_path: str, patterns: list[str] | None = None) -> Path:
    """A local folder for ``repo_or_path``: the path itself, a cached snapshot, or a download.

    ``patterns`` limits which files are fetched (default: what a transformers model needs)."""
    patterns = patterns or _HF_PATTERNS
    path = Path(repo_or_path).expanduser()
    if path.is_dir():
        return path
    if repo_or_path.startswith(("/", ".", "~")) or repo_or_path.count("/") > 1:
        raise ModelNotAvailableError(
            f"no model folder at {repo_or_path!r}; pass an existing folder written by save_pretrained, "
            "or a hub repo id such as 'hf:intfloat/multilingual-e5-small'"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_or_path, local_files_only=True, allow_patterns=patterns))
    except LocalEntryNotFoundError:
        pass
    if not hub_reachable():
        raise ModelNotAvailableError(
            f"model {repo_or_path!r} is not in the Hugging Face cache and {_why_offline()}. "
            f"On a machine with access run: hf download {repo_or_path} "
            "(then copy ~/.cache/huggingface here), or pass a local folder: 'hf:/path/to/model'"
        )
    return Path(snapshot_download(repo_or_path, allow_patterns=patterns, etag_timeout=10))


def resolve_openclip_weights(arch: str, tag: str) -> str:
    """A local checkpoint file for an open_clip pretrained tag (cached, or downloaded if online)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    cached = _cached_openclip_file(cfg)
    if cached:
        return cached
    if not hub_reachable():
        where = cfg.get("hf_hub") or cfg.get("url") or "?"
        raise ModelNotAvailableError(
            f"open_clip weights {arch}/{tag} are not cached and {_why_offline()}. On a machine with "
            f"access run: python -c \"import open_clip; open_clip.create_model_and_transforms("
            f"'{arch}', pretrained='{tag}')\" (source: {where}), then copy ~/.cache/huggingface here; "
            f"or pass a checkpoint file: 'openclip:{arch}//path/to/weights.safetensors'"
        )
    return open_clip.download_pretrained(cfg)


def _cached_openclip_file(cfg: dict) -> str | None:
    if cfg.get("file"):
        return cfg["file"]
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(cfg["hf_hub"])  # 'org/model/' or 'org/model/file.bin'
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename.endswith(".bin"):
            names.insert(0, filename[: -len(".bin")] + ".safetensors")
        for name in names:
            hit = try_to_load_from_cache(model_id, name)
            if isinstance(hit, str):
                return hit
    if cfg.get("url"):
        local = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if local.is_file():
            return str(local)
    return None


@contextlib.contextmanager
def offline_unless_reachable() -> Iterator[None]:
    """Force huggingface_hub's offline mode while loading when the hub is not reachable, so
    third-party loaders (open_clip's HF tokenizers, transformers) fail fast instead of waiting."""
    if hub_reachable():
        yield
        return
    with forced_offline():
        yield


@contextlib.contextmanager
def forced_offline(*configs) -> Iterator[None]:
    """HF_HUB_OFFLINE=1 in the environment and in huggingface_hub's constants (which read it at
    import), plus in each of ``configs`` (e.g. ``datasets.config``); everything restored after."""
    from huggingface_hub import constants

    targets = [constants, *configs]
    old_env, old_flags = os.environ.get("HF_HUB_OFFLINE"), [t.HF_HUB_OFFLINE for t in targets]
    os.environ["HF_HUB_OFFLINE"] = "1"
    for t in targets:
        t.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        for t, flag in zip(targets, old_flags, strict=True):
            t.HF_HUB_OFFLINE = flag
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env
