"""Every verdict run where it must fail: the same step, on the same real stores and SAEs as the quick demo, with
the concepts shuffled. A verdict that still says "supported" here could not fail, and is worth nothing."""

from __future__ import annotations

import dataclasses

import pytest

from mmfeatures.pipeline import AnalyzeStep, run


def _config(quick_demo, name: str) -> AnalyzeStep:
    record = next(s.record for s in quick_demo.stages if s.name == name)
    fields = {f.name for f in dataclasses.fields(AnalyzeStep)}
    return AnalyzeStep(**{k: tuple(v) if isinstance(v, list) else v for k, v in record.config.items() if k in fields})


@pytest.mark.parametrize("name", ["03-crosslingual", "06-crossmodal"])
def test_a_verdict_with_shuffled_concepts_is_not_supported(quick_demo, name, tmp_path):
    real = next(s.record for s in quick_demo.stages if s.name == name)
    assert real.supported, real.verdict
    control = run(dataclasses.replace(_config(quick_demo, name), control="shuffled-concepts", out=str(tmp_path)))
    assert control.supported is False, control.verdict
    assert control.verdict.startswith("Not supported") and "control: shuffled-concepts" in control.claim
