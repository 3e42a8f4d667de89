"""Plans: steps held as data, whose outputs reach later steps as typed handles.

A plan is a tuple of ``PlanStep(name, config)``. A config field may hold a handle instead of a path:
``StoreOf("01-extract-e5", "text.layer.8.resid")`` is the store that step wrote at that site, ``SAEOf("04-train-emoji-0")``
the SAE that step trained, ``FeaturesOf("14-steer")`` the features its record names. ``run_plan`` runs the steps in order, each into ``root/<name>``, resolving handles from
the records of the steps before it, and every step reuses its result when its key is unchanged.

>>> plan = (PlanStep("extract", ExtractStep(sites=("text.layer.8.resid",))),           # doctest: +SKIP
...         PlanStep("train", TrainStep(store=StoreOf("extract", "text.layer.8.resid"))))
>>> run_plan(plan, "runs/e5", run)                                                     # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmfeatures.errors import InputError
from mmfeatures.pipeline.record import Record, Timer


@dataclass(frozen=True)
class StoreOf:
    """Handle: the store that plan step ``step`` wrote at ``site``."""

    step: str
    site: str

    def resolve(self, done: dict[str, Record]) -> str:
        return _record(done, self.step).artifact("store", self.site).path


@dataclass(frozen=True)
class SAEOf:
    """Handle: the SAE that plan step ``step`` trained (the ``index``-th when it trained one per seed)."""

    step: str
    index: int = 0

    def resolve(self, done: dict[str, Record]) -> str:
        return _record(done, self.step).artifact("sae", index=self.index).path


@dataclass(frozen=True)
class FeaturesOf:
    """Handle: the features of its SAE that plan step ``step``'s record names (``Record.features``); in a tuple
    field it stands for all of them."""

    step: str

    def resolve(self, done: dict[str, Record]) -> tuple[int, ...]:
        return tuple(_record(done, self.step).features)


Handle = StoreOf | SAEOf | FeaturesOf


def _record(done: dict[str, Record], step: str) -> Record:
    if step not in done:
        raise InputError(f"a handle names step {step!r}, which has not run before it; steps so far: {list(done)}")
    return done[step]


@dataclass(frozen=True)
class PlanStep:
    name: str
    """Its folder under the plan's root (and the name handles use)."""
    config: Any
    """A step config (ExtractStep, TrainStep, ...) whose artifact fields may hold handles."""


@dataclass(frozen=True)
class StepOutcome:
    name: str
    seconds: float
    reused: bool
    record: Record


def handles(config: Any) -> dict[str, list[Handle]]:
    """The handles a config holds, by field (a field may hold one, or a tuple of paths and handles)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        found = [v for v in (value if isinstance(value, tuple) else (value,)) if isinstance(v, Handle)]
        if found:
            out[f.name] = found
    return out


def resolve(config: Any, done: dict[str, Record]) -> Any:
    """``config`` with every handle replaced by the path it names."""
    def one(v):
        return v.resolve(done) if isinstance(v, Handle) else v

    def many(values: tuple) -> tuple:
        resolved = [one(v) for v in values]
        return tuple(x for r in resolved for x in (r if isinstance(r, tuple) else (r,)))

    changes = {name: many(value) if isinstance(value := getattr(config, name), tuple) else one(value)
               for name in handles(config)}
    return dataclasses.replace(config, **changes) if changes else config


def check_plan(plan: Sequence[PlanStep]) -> None:
    """Names are unique and every handle points at an earlier step (checked before any work)."""
    seen: set[str] = set()
    for step in plan:
        if step.name in seen:
            raise InputError(f"plan step name {step.name!r} is used twice; names are folders, so they must differ")
        for found in handles(step.config).values():
            for v in found:
                if v.step not in seen:
                    raise InputError(f"plan step {step.name!r} reads {v} before that step runs")
        seen.add(step.name)


def run_plan(plan: Sequence[PlanStep], root: str | Path, run: Callable[[Any], Record], *,
             progress: bool = True) -> list[StepOutcome]:
    """Run every step into ``root/<name>`` in order (each reusing its result when unchanged)."""
    from tqdm.auto import tqdm

    check_plan(plan)
    root = Path(root)
    done: dict[str, Record] = {}
    outcomes = []
    bar = tqdm(plan, desc="plan", unit="step", disable=not progress)
    for step in bar:
        bar.set_postfix_str(step.name)
        folder = root / step.name
        config = dataclasses.replace(resolve(step.config, done), out=str(folder))
        timer = Timer()
        record = run(config)
        done[step.name] = record
        outcomes.append(StepOutcome(step.name, timer.seconds, record.reused, record))
    return outcomes
