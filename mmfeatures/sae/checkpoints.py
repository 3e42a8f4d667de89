"""Training checkpoints of ``sae.train``: each a folder written whole, so a kill never tears one."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch

from mmfeatures.disk import (
    atomic_dir,
    check_file,
    file_sha256,
    read_header,
    remove_stale_temporaries,
    write_header,
)
from mmfeatures.errors import CorruptFileError
from mmfeatures.sae.formats import load_tensors


class Checkpoints:
    """A run's checkpoints: each a folder ``<stem>-step<N>`` (``state.pt`` and a header with its checksum) written
    whole by ``atomic_dir``; the older ones are removed only after the newer one is in place, so a kill at any
    moment leaves a complete checkpoint to resume from (or none yet). A damaged one is skipped for the one before
    it, with a warning."""

    def __init__(self, folder: Path, stem: str):
        self.folder, self.stem = folder, stem

    def found(self) -> list[Path]:
        """The checkpoint folders, newest step first."""
        return sorted(self.folder.glob(f"{self.stem}-step*[0-9]"), key=lambda p: p.name, reverse=True)

    def save(self, states: list[Any], step: int, gen: torch.Generator) -> None:
        blob = {"step": step, "rng": gen.get_state(),
                "saes": [{"model": st.sae.state_dict(), "opt": st.opt.state_dict(), "since_fired": st.since_fired,
                          "window_fires": st.window_fires, "window_rows": st.window_rows,
                          "history": json.dumps(st.history)} for st in states]}
        with atomic_dir(self.folder / f"{self.stem}-step{step:09d}") as tmp:
            torch.save(blob, tmp / "state.pt")
            write_header(tmp, "sae-checkpoint", step=step, files={"state.pt": file_sha256(tmp / "state.pt")})
        for old in self.found()[1:]:
            shutil.rmtree(old, ignore_errors=True)

    def load(self, states: list[Any], gen: torch.Generator) -> int:
        """Restore the newest intact checkpoint into ``states`` and ``gen``; its step (0 when there is none)."""
        remove_stale_temporaries(self.folder)          # a killed writer's half-written folder
        for path in self.found():
            try:
                blob = self._read(path)
            except CorruptFileError as e:
                warnings.warn(f"{e}; skipped", stacklevel=3)
                continue
            for st, saved in zip(states, blob["saes"], strict=True):
                st.sae.load_state_dict(saved["model"])
                st.opt.load_state_dict(saved["opt"])
                st.since_fired.copy_(saved["since_fired"])
                st.window_fires.copy_(saved["window_fires"])
                st.window_rows = int(saved["window_rows"])
                st.history = json.loads(saved["history"])
            gen.set_state(blob["rng"])
            return int(blob["step"])
        return 0

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        fix = f"delete {path} (training resumes from the checkpoint before it, or from step 0)"
        header = read_header(path, fix=fix) or {}
        files = header.get("files")
        if not isinstance(files, dict) or "state.pt" not in files:
            raise CorruptFileError(f"checkpoint {path} records no checksum of state.pt; {fix}")
        check_file(path / "state.pt", files["state.pt"], fix)
        return load_tensors(path / "state.pt", path / "state.pt")          # tensors and plain values only

    def remove(self) -> None:
        for path in self.found():
            shutil.rmtree(path, ignore_errors=True)
