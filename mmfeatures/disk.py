"""Cache directories, artifact identity, integrity checks, atomic writes and self-describing JSON headers.

- ``artifact_key`` is the one function that names an artifact (a store, an SAE, an encoded-latent set, a
  job record) by exactly the fields that determine its content and the keys of its inputs. Reuse compares
  keys, never folder existence.
- ``check_file`` verifies a file against its recorded checksum the first time this process opens it. A
  checksum names its algorithm: bare hex is SHA-256 (SAE weights, stats, checkpoints, headers), and
  ``xxh3-128:<hex>`` is XXH3-128, used for the bulk store shards, which are read whole on every pass
  (about 10x faster than SHA-256 here; as good at catching corruption, which is what it is for).
- Every directory mmfeatures writes carries a JSON header (see docs/disk-layout.md) with the schema
  version, the package version, its key and its inputs' keys. Directories are written into a temporary
  sibling and renamed into place, so a crash never leaves a half-written one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mmfeatures.errors import ArtifactConflictError, CorruptFileError
from mmfeatures.version import __version__

SCHEMA_VERSION = 2
"""Bumped whenever what an artifact holds changes meaning; it enters every key."""
HEADER = "mmfeatures.json"


def package_version() -> str:
    return __version__


def artifact_key(kind: str, fields: Mapping[str, Any], inputs: Mapping[str, str] | None = None) -> str:
    """The identity of an artifact: 16 hex digits of the SHA-256 of its kind, the schema version, the
    fields that determine its content and the keys of the artifacts it was computed from.

    Callers pass exactly the content-determining fields: never a device, a progress flag, an output
    path or a display label, so that those can change without losing a result.

    >>> artifact_key("sae", {"width": 64}, {"store": "0123"}) == artifact_key("sae", {"width": 64}, {"store": "0123"})
    True
    >>> artifact_key("sae", {"width": 64}) == artifact_key("sae", {"width": 65})
    False
    """
    return config_hash({"kind": kind, "schema": SCHEMA_VERSION, "fields": dict(fields),
                        "inputs": dict(inputs or {})})


def check_key(folder: str | os.PathLike, kind: str, key: str, what: str, found: Mapping[str, Any] | None) -> None:
    """Raise ArtifactConflictError when ``folder``'s header describes another artifact than ``key``."""
    if found is None or found.get("key") == key:
        return
    raise ArtifactConflictError(
        f"{folder} already holds another {kind} (key {found.get('key')!r}, {describe(found)}) but this run asks "
        f"for {what} (key {key!r}); choose another folder, or delete {folder} to replace it")


def describe(header: Mapping[str, Any]) -> str:
    """A short human description of an artifact header: its ``summary`` and the keys it was made from."""
    inputs = ", ".join(f"{k} {v}" for k, v in (header.get("inputs") or {}).items())
    return str(header.get("summary", "no summary")) + (f"; made from {inputs}" if inputs else "")


FAST = "xxh3-128"
"""The checksum of bulk data (store shards): fast enough to check on a full read pass."""

_VERIFIED: dict[tuple[str, int, int], str] = {}
"""Files whose checksum this process has checked, by (path, size, mtime): each is hashed once per process."""


def forget_checks() -> None:
    """Forget which files this process has verified, so the next read checks them again (as a new process
    would); for tests and benchmarks."""
    _VERIFIED.clear()


def check_file(path: str | os.PathLike, checksum: str | None, fix: str) -> None:
    """Verify ``path`` against its recorded checksum the first time this process opens it (streamed, for files
    that are not read whole). A missing record (``checksum`` None) is itself corruption: every file mmfeatures
    writes records one."""
    _verify(Path(path), checksum, fix, lambda algorithm: file_checksum(path, algorithm))


def matches(path: str | os.PathLike, checksum: str | None) -> bool:
    """Whether ``path`` exists and matches ``checksum``; a match is remembered like ``check_file``'s, so a
    later read in this process does not hash the file again."""
    try:
        _verify(Path(path), checksum, "", lambda algorithm: file_checksum(path, algorithm))
    except CorruptFileError:
        return False
    return True


def read_checked(path: str | os.PathLike, checksum: str | None, fix: str) -> bytes:
    """A file's bytes, read once and checked as ``check_file`` does, without reading the file twice."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CorruptFileError(f"{path} is missing; {fix}") from None
    _verify(path, checksum, fix, lambda algorithm: _finish(_hasher(algorithm, data), algorithm))
    return data


def _verify(path: Path, checksum: str | None, fix: str, digest: Callable[[str], str]) -> None:
    """Compare ``digest(algorithm)`` with ``checksum`` unless this process already verified the same file (path,
    size, mtime); remember a match, raise CorruptFileError naming the file and ``fix`` on a mismatch."""
    try:
        st = path.stat()
    except FileNotFoundError:
        raise CorruptFileError(f"{path} is missing; {fix}") from None
    ident = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if checksum is not None and _VERIFIED.get(ident) == checksum:
        return
    algorithm = algorithm_of(checksum)
    actual = digest(algorithm)
    if actual != checksum:
        recorded = f"recorded {checksum[:20]}…" if checksum else "no checksum recorded"
        raise CorruptFileError(f"{path} fails its checksum ({algorithm} {actual[:20]}…, {recorded}): it changed "
                               f"after it was written; {fix}")
    _VERIFIED[ident] = actual


def algorithm_of(checksum: str | None) -> str:
    """The algorithm a recorded checksum names: ``xxh3-128:<hex>`` is XXH3-128, bare hex is SHA-256."""
    return checksum.partition(":")[0] if checksum and ":" in checksum else "sha256"


def _hasher(algorithm: str, data: bytes = b""):
    if algorithm == "sha256":
        return hashlib.sha256(data)
    if algorithm == FAST:
        import xxhash

        return xxhash.xxh3_128(data)
    raise CorruptFileError(f"unknown checksum algorithm {algorithm!r} (known: sha256, {FAST}); the file was "
                           "written by a newer mmfeatures: upgrade it, or delete the file to recompute it")


def _finish(h: Any, algorithm: str) -> str:
    return h.hexdigest() if algorithm == "sha256" else f"{algorithm}:{h.hexdigest()}"


def read_json(path: str | os.PathLike, fix: str) -> Any:
    """A JSON file's value; a truncated or malformed file raises CorruptFileError naming it and ``fix``."""
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorruptFileError(f"{path} is missing; {fix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{path} is damaged (not valid JSON: {e}); {fix}") from None


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


def release_freed_memory() -> None:
    """Hand freed heap memory back to the OS at the end of a streaming pass. glibc keeps what reader threads freed
    in their own arenas (about 0.6 GiB after one pass over two million-row stores), which would otherwise count
    against the next step's peak. A no-op where the C library has no ``malloc_trim``."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def file_checksum(path: str | os.PathLike, algorithm: str = "sha256", chunk_bytes: int = 1 << 22) -> str:
    """A file's checksum (``sha256`` as bare hex, or ``xxh3-128:<hex>``), read in 4 MiB chunks."""
    h = _hasher(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            h.update(block)
    return _finish(h, algorithm)


_CONTENT: dict[tuple[str, int, int], str] = {}


def content_checksum(path: str | os.PathLike) -> str:
    """XXH3-128 of every byte of a file, computed once per process for a given (path, size, mtime): what a key
    of a file made elsewhere uses, so that an edit in place changes the key whatever its timestamp."""
    st = Path(path).stat()
    ident = (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    if ident not in _CONTENT:
        _CONTENT[ident] = file_checksum(path, FAST)
    return _CONTENT[ident]


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    return file_checksum(path)


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


def read_header(directory: str | os.PathLike, filename: str = HEADER, fix: str = "delete the folder to rebuild it"
                ) -> dict[str, Any] | None:
    """The directory's header, or None when it has none; a damaged one raises CorruptFileError."""
    path = Path(directory, filename)
    if not path.is_file():
        return None
    header = read_json(path, fix)
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path} is damaged (a JSON {type(header).__name__}, not an object); {fix}")
    return header


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete ``.<name>.tmp-<pid>`` files that a killed process left in ``folder`` (its own are kept)."""
    import re

    removed = []
    for path in Path(folder).glob(".*.tmp-*"):
        pid = re.match(r"\d+", path.name.rsplit(".tmp-", 1)[1])     # '.x.tmp-<pid>', '.x.tmp-<pid>-<random>'
        if pid and _alive(int(pid.group())):
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sync_tree(folder: Path) -> None:
    """fsync every file under ``folder`` and the folders themselves, so that a rename that publishes it follows
    its contents to disk (a power cut then leaves the old artifact or the whole new one)."""
    for path in sorted(folder.rglob("*"), reverse=True) + [folder]:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``final`` only if the block succeeds.

    On an exception the temporary directory is removed and ``final`` is untouched. If another
    process finished ``final`` first, its result is kept and ours is discarded. Every file is fsynced before the
    rename. SAE folders, training checkpoints with their checksums, converted models and unpacked Debian packages
    are written this way. Stores and latent sets are resumable shard by shard instead (each shard file fsynced,
    then its sidecar written atomically as the completion marker, the header last), and a record folder, which
    may hold the user's own files, is staged beside them and published with the old record removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{os.getpid()}-", dir=final.parent))
    tmp.chmod(0o755)                       # mkdtemp makes it private; the finished folder is an ordinary one
    try:
        yield tmp
        sync_tree(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
            # lost a race with another writer: theirs is complete, drop ours
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
