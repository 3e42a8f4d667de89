"""Cache directories, content hashing, atomic writes and self-describing JSON headers.

Every directory mmfeatures writes carries ``mmfeatures.json`` (see docs/disk-layout.md) with
the schema version, the package version and whatever produced it. Directories are written
into a temporary sibling and renamed into place, so a crash never leaves a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
HEADER = "mmfeatures.json"


def package_version() -> str:
    from mmfeatures import __version__

    return __version__


def cache_dir(*parts: str) -> Path:
    """The user cache directory (``$MMFEATURES_CACHE`` or the platform's user cache), created.

    >>> cache_dir("offline").name
    'offline'
    """
    root = os.environ.get("MMFEATURES_CACHE")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("mmfeatures")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in 4 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return h.hexdigest()


def config_hash(config: Any, n: int = 16) -> str:
    """A short, stable hash of a JSON-able config (dict keys sorted)."""
    blob = json.dumps(config, sort_keys=True, default=str, ensure_ascii=False).encode()
    return hashlib.sha256(blob).hexdigest()[:n]


def write_header(directory: str | os.PathLike, kind: str, filename: str = HEADER, **fields: Any) -> dict[str, Any]:
    """Write a JSON header (default ``mmfeatures.json``) into ``directory``, atomically."""
    header = {
        "kind": kind,
        "schema_version": SCHEMA_VERSION,
        "mmfeatures_version": package_version(),
        **fields,
    }
    write_text_atomic(Path(directory, filename), json.dumps(header, indent=2, sort_keys=True, ensure_ascii=False))
    return header


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a file so that readers see the old content or the new, never a torn one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_header(directory: str | os.PathLike, filename: str = HEADER) -> dict[str, Any] | None:
    """The directory's header, or None when it has none or it is unreadable."""
    path = Path(directory, filename)
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block succeeds.

    On an exception the temporary directory is removed and ``final`` is untouched. If another
    process finished ``final`` first, its result is kept and ours is discarded.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            # lost a race with another writer: theirs is complete, drop ours
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
