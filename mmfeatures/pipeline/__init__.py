"""The pipeline: every step (extract, train, eval, analyze, match, steer, fidelity, alignment, inspect) is a frozen config and
a function returning a ``Record``, the one typed result a step leaves (verdict, scores, figures, and the stores
or SAEs it wrote as ``Artifact``s, named by their keys). The command line, the demo, the notebooks and the studies
all call these; nothing else chains extract → train → score → verdict.

>>> from mmfeatures.pipeline import ExtractStep, TrainStep, run                 # doctest: +SKIP
>>> store = run(ExtractStep(model="offline:e5-small")).store("text.layer.8.resid")      # doctest: +SKIP
>>> sae = run(TrainStep(store=str(store.path), width=1536, k=16)).sae()                  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mmfeatures.pipeline.alignment import SENTENCES, AlignmentStep, run_alignment
from mmfeatures.pipeline.analyze import AnalyzeStep, run_analyze
from mmfeatures.pipeline.evaluate import EvalStep, run_eval
from mmfeatures.pipeline.extract import ExtractStep, run_extract
from mmfeatures.pipeline.fidelity import FidelityStep, run_fidelity
from mmfeatures.pipeline.inspect import InspectStep, run_inspect
from mmfeatures.pipeline.match import MatchStep, run_match
from mmfeatures.pipeline.plan import FeaturesOf, PlanStep, SAEOf, StepOutcome, StoreOf, run_plan
from mmfeatures.pipeline.record import Artifact, Record, check_sizes
from mmfeatures.pipeline.steer import SteerStep, run_steer
from mmfeatures.pipeline.train import TrainStep, run_train

RUNNERS: dict[type, Callable[[Any], Record]] = {
    ExtractStep: run_extract, TrainStep: run_train, AnalyzeStep: run_analyze, MatchStep: run_match,
    SteerStep: run_steer, FidelityStep: run_fidelity, AlignmentStep: run_alignment, EvalStep: run_eval,
    InspectStep: run_inspect,
}


def run(step: Any) -> Record:
    """Run one step config (any of ``RUNNERS``) and return its record."""
    from mmfeatures.errors import InputError

    runner = RUNNERS.get(type(step))
    if runner is None:
        raise InputError(f"{type(step).__name__} is not a pipeline step; use one of "
                         f"{', '.join(t.__name__ for t in RUNNERS)}")
    return runner(step)


__all__ = ["SENTENCES", "AlignmentStep", "AnalyzeStep", "Artifact", "EvalStep", "ExtractStep", "FeaturesOf", "FidelityStep", "InspectStep", "MatchStep",
           "PlanStep", "RUNNERS", "Record", "SAEOf", "SteerStep", "StepOutcome", "StoreOf", "TrainStep", "check_sizes",
           "run", "run_alignment", "run_analyze", "run_eval", "run_extract", "run_fidelity", "run_inspect", "run_match", "run_plan", "run_steer",
           "run_train"]
