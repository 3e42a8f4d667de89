"""Mutation check of the verdicts (`make mutations`): break the null, the baseline or the rule of a verdict, one at a
time, and run its controls; every mutation must make a test fail.

Each mutation edits one line of a copy of the package (the working tree is never touched) and runs the listed test
files against the copy (PYTHONPATH puts it first). A mutation the tests survive is printed as SURVIVED and the
script exits 1.

    .venv/bin/python scripts/mutate_verdicts.py [--only NAME ...]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]


class Mutation(NamedTuple):
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


ANALYZE = ("tests/test_controls_analyze.py",)
MATCH = ("tests/test_controls_match.py",)
STEER = ("tests/test_controls_steer.py",)
NEURONS = ("tests/test_controls_neurons.py",)
SPLICE = ("tests/test_controls_splice.py",)
ALL = ("tests/test_verdict.py",) + ANALYZE + MATCH + STEER + NEURONS + SPLICE
V, E, A = "mmfeatures/analysis/verdict.py", "mmfeatures/analysis/evidence.py", "mmfeatures/pipeline/analyze.py"
M, S = "mmfeatures/analysis/evidence_models.py", "mmfeatures/pipeline/steer.py"
N, P = "mmfeatures/analysis/evidence_neurons.py", "mmfeatures/analysis/evidence_splice.py"

GROUPS = {"cross-lingual and cross-modal": ANALYZE, "cross-model": MATCH, "steering": STEER,
          "features against neurons": NEURONS, "splice": SPLICE}
MUTATIONS = (
    # the rule, shared by every verdict: always / never supported must fail each verdict's own controls
    *(Mutation(f"rule: always supported [{g}]", V, "    return Verdict(claim, status, tests,",
               "    return Verdict(claim, Status.SUPPORTED, tests,", t) for g, t in GROUPS.items()),
    *(Mutation(f"rule: never supported [{g}]", V, "    return Verdict(claim, status, tests,",
               "    return Verdict(claim, Status.NOT_SUPPORTED, tests,", t) for g, t in GROUPS.items()),
    # the rule's parts, once for all verdicts
    Mutation("rule: p-value ignored", V, '"p": bool(self.p_value <= ALPHA)', '"p": True', ALL),
    Mutation("rule: interval ignored", V, '"interval": bool(lo > 0)', '"interval": True', ALL),
    Mutation("rule: floor ignored", V, '"floor": bool(self.effect >= self.floor)', '"floor": True', ALL),
    Mutation("rule: one test decides", V, "used = [t for t in tests if t.name in needed]",
             "used = [t for t in tests if t.name in needed][-1:]", ALL),
    Mutation("rule: never excludes (no 'not supported')", V, "return bool(np.isfinite(mde) and self.bounds[1] < mde)",
             "return False", ALL),
    Mutation("rule: always excludes (no 'inconclusive')", V, "return bool(np.isfinite(mde) and self.bounds[1] < mde)",
             "return True", ALL),
    Mutation("rule: a test with no power excludes (MDE inf)", V,
             "return bool(np.isfinite(mde) and self.bounds[1] < mde)", "return bool(self.bounds[1] < mde)", ALL),
    # cross-lingual and cross-modal: nulls and baselines
    Mutation("crosslingual: multilingual null returns the observed value", E,
             'Score("multilingual fraction", value, np.asarray(null))',
             'Score("multilingual fraction", value, np.full(len(null), value))', ANALYZE),
    Mutation("crosslingual: overlap null returns the observed value", E,
             "null = main.draws - main.draws.mean()", "null = np.full(len(main.draws), value)", ANALYZE),
    Mutation("crossmodal: nulls return the observed value", E,
             "Score(stat, float(values[i]), np.asarray(nulls[i]))",
             "Score(stat, float(values[i]), np.full(len(nulls[i]), float(values[i])))", ANALYZE),
    Mutation("analyze: baseline dictionaries return 0", A, "            found.append(summary(z))",
             "            z = np.zeros_like(z)\n            found.append(summary(z))", ANALYZE),
    Mutation("crosslingual: multilingual baseline returns 0", E,
             "value, reference = values[0], float(np.mean(baseline_fractions))", "value, reference = values[0], 0.0",
             ANALYZE),
    Mutation("crosslingual: overlap baseline returns 0", E,
             "reference = float(np.mean([b.excess() for b in baseline]))", "reference = 0.0", ANALYZE),
    Mutation("crossmodal: baseline returns 0", E, "reference = float(base[:, i].mean())", "reference = 0.0", ANALYZE),
    Mutation("crosslingual: the random-init model returns 0", A,
             "    return z[[where[e] for e in labels.example_id]], stores[0].config.model",
             "    return 0 * z[[where[e] for e in labels.example_id]], stores[0].config.model", ANALYZE),
    # cross-model
    Mutation("match: null returns the observed value", M, 'Score("median best-match correlation", value, null)',
             'Score("median best-match correlation", value, np.full(len(null), value))', MATCH),
    Mutation("match: baseline (random-init copies) returns 0", M,
             "    return median_best_r(a, copy, absolute)\n", "    return 0.0\n", MATCH),
    # steering
    Mutation("steer: null returns the observed value", S, 'value, np.array(null), "less")',
             'value, np.full(len(null), value), "less")', STEER),
    Mutation("steer: baseline (random directions) returns 0", S,
             "return np.stack([self.shifted(d / d.norm() * norm) for d in self.directions])",
             "return np.zeros((len(self.directions), len(self.queries)))", STEER),
    # features against neurons
    Mutation("neurons: null returns the observed value", N, "                      value, null), reference,",
             "                      value, np.full(len(null), value)), reference,", NEURONS),
    Mutation("neurons: baseline (the neurons read the same way) returns 0", A,
             "    as_dictionary = np.concatenate([pooled_units(store, basis)[0] for store in baseline.stores])"
             "[baseline.rows]",
             "    as_dictionary = 0 * np.concatenate([pooled_units(store, basis)[0] for store in baseline.stores])"
             "[baseline.rows]", NEURONS),
    # splice
    Mutation("splice: null returns the observed value", P,
             'Score("mean cosine of the spliced model\'s embeddings to the clean ones", value, null)',
             'Score("mean cosine of the spliced model\'s embeddings to the clean ones", value, '
             "np.full(len(null), value))", SPLICE),
    Mutation("splice: baseline (random directions) returns 0", P,
             "    baseline = np.mean([cosines(", "    baseline = 0 * np.mean([cosines(", SPLICE),
)


def apply(copy: Path, m: Mutation) -> None:
    if not m.file:                                    # the unmutated copy
        return
    path = copy / m.file
    text = path.read_text()
    if text.count(m.old) != 1:
        raise SystemExit(f"{m.name}: {m.old!r} occurs {text.count(m.old)} times in {m.file}; update the mutation")
    path.write_text(text.replace(m.old, m.new))


def run(m: Mutation, workers: Path) -> tuple[bool, float, str]:
    """(caught, seconds, the failing test's name) for one mutation."""
    copy = workers / "pkg"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ROOT / "mmfeatures", copy / "mmfeatures")
    apply(copy, m)
    tests = [t for t in m.tests if (ROOT / t).exists()]
    # python -P: the working tree (the current folder) is not put before the mutated copy on sys.path
    env = {**os.environ, "PYTHONPATH": str(copy), "MMFEATURES_DATA": str(ROOT / "data"), "TQDM_DISABLE": "1",
           "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-P", "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    failed = [line.split(" ")[1] for line in done.stdout.splitlines() if line.startswith("FAILED ")]
    return done.returncode != 0, time.perf_counter() - start, failed[0] if failed else done.stdout[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="substrings of the mutations to run")
    args = parser.parse_args()
    chosen = [m for m in MUTATIONS if args.only is None or any(o in m.name for o in args.only)]
    survived = []
    with tempfile.TemporaryDirectory(prefix="mmf-mutants-") as tmp:
        tests = tuple(sorted({t for m in chosen for t in m.tests}))
        failed, seconds, where = run(Mutation("none", "", "", "", tests), Path(tmp))
        if failed:
            raise SystemExit(f"the unmutated copy fails {where} ({seconds:.0f} s): fix the tests before mutating")
        print(f"unmutated copy passes {', '.join(tests)} ({seconds:.0f} s)", flush=True)
        for m in chosen:
            caught, seconds, where = run(m, Path(tmp))
            print(f"{'caught  ' if caught else 'SURVIVED'} {seconds:6.1f} s  {m.name}  <- {where if caught else ''}",
                  flush=True)
            if not caught:
                survived.append(m.name)
    print(f"\n{len(chosen) - len(survived)} of {len(chosen)} mutations caught"
          + (f"; survived: {', '.join(survived)}" if survived else ""))
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
