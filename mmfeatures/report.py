"""``mmfeatures report``: one static HTML page from the job records (``*/result.json``) in a folder.

The page opens with every claim's verdict, then gives one section per job: its verdict paragraph, its
scores next to their nulls, its figures and tables, and the exact config. It ends with the run's config and
the versions that produced it. Figures are linked PNG files beside the records; a missing one is an error
here, not a broken image in the browser.
"""

from __future__ import annotations

import html
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mmfeatures.analysis.stats import p_text
from mmfeatures.disk import write_text_atomic
from mmfeatures.errors import CorruptFileError, InputError
from mmfeatures.pipeline.record import RECORD, Record, fmt, opt

RUN = "run.json"
CSS = """
body{font:15px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{margin-top:2.2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.meta{color:#666} table{border-collapse:collapse;margin:.8em 0;font-size:13px} td,th{border:1px solid #ddd;
padding:.3em .6em;text-align:left;vertical-align:top} th{background:#f5f5f5} .ok{color:#176f2c;font-weight:600}
.no{color:#a3261b;font-weight:600} .open{color:#8a6100;font-weight:600} .claim{font-style:italic} .verdict{background:#f8f8f4;border-left:4px solid #bbb;
padding:.6em 1em} .verdict.ok{border-color:#2e9e47;font-weight:normal;color:#222} .verdict.no{border-color:#d0473a;
font-weight:normal;color:#222} .verdict.open{border-color:#d9a400} .figs{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0;max-width:100%}
figure img{max-width:100%;border:1px solid #eee} figcaption{font-size:12px;color:#555;max-width:520px}
pre{background:#f5f5f5;padding:.8em;overflow:auto;font-size:12px} details{margin:.6em 0}
"""


@dataclass(frozen=True)
class ReportJob:
    """Render ``folder``'s job records into ``folder/index.html``."""

    folder: str = opt("reports/demo", "folder holding job folders with result.json (e.g. the demo's)")
    title: str = opt("mmfeatures report", "page title (the demo sets its own)")


def _e(x: Any) -> str:
    return html.escape(str(x))


def _cell(x: Any) -> str:
    return _e(fmt(x)) if isinstance(x, float) else _e(x)


def _table(columns: list[str], rows: list[list[Any]], title: str = "", raw: int | None = None) -> str:
    """An HTML table; column ``raw`` holds markup made here (not escaped)."""
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{v if i == raw else _cell(v)}</td>" for i, v in enumerate(row)) + "</tr>"
                   for row in rows)
    caption = f"<caption>{_e(title)}</caption>" if title else ""
    return f"<table>{caption}<tr>{head}</tr>{body}</table>"


def _badge(record: Record) -> str:
    status = record.status or ({True: "supported", False: "not supported"}.get(record.supported, ""))
    if not status:
        return ""
    cls, mark = {"supported": ("ok", "✔"), "not supported": ("no", "✘")}.get(status, ("open", "?"))
    return f'<span class="{cls}">{mark} {_e(status)}</span>'


def _power(tests: tuple[dict[str, Any], ...]) -> str:
    """Each test's effect, interval, baseline and power (the smallest effect it detects with 80% power)."""
    rows = []
    for t in tests:
        power = t.get("power") or {}
        finite = math.isfinite(t["effect"])
        rows.append([t["test"], fmt(t["effect"]) if finite else "cannot be computed",
                     f"{fmt(t['low'])} to {fmt(t['high'])}" if finite else "", fmt(t["floor"]),
                     _mde(power.get("mde", float("nan"))), "pass" if t["passes"] else (t.get("reason") or "fail")])
    return _table(["test", "effect beyond baseline", "95% interval", "floor", "detects with 80% power", "result"],
                  rows, "The tests this verdict rests on")


def _scores(scores: tuple[dict[str, Any], ...]) -> str:
    rows = [[s["metric"], s["value"], f"{fmt(s['null_mean'])} ± {fmt(s['null_sd'])}",
             p_text(s["p_value"], s["n_perm"]), s["n_perm"]]
            for s in scores]
    return _table(["statistic", "value", "null (mean ± sd)", "p", "K"], rows)


def _effect(t: dict) -> str:
    """A test's effect with its interval; a test whose statistic cannot be computed on this data says so."""
    if not math.isfinite(t["effect"]):
        return "cannot be computed"
    return f"{fmt(t['effect'])} [{fmt(t['low'])}, {fmt(t['high'])}]"


def _mde(x: float) -> str:
    """The smallest effect detected with 80% power; infinite when no planted effect was ever detected."""
    return "none detectable" if x == float("inf") else fmt(x)


def _headline(r: Record) -> str:
    """Each test's effect with its interval, or the first score for records without tests."""
    if r.tests:
        return "; ".join(_effect(t) for t in r.tests)
    if r.scores:
        s = r.scores[0]
        return f"{s['metric']} = {fmt(s['value'])} (null {fmt(s['null_mean'])}, {p_text(s['p_value'], s['n_perm'])})"
    return ""


def _section(record: Record, anchor: str, root: Path, level: int = 2) -> str:
    folder = Path(record.folder)
    parts = [f'<h{level} id="{anchor}">{_e(record.title)}</h{level}>']
    if record.claim:
        parts.append(f'<p class="claim">Claim: {_e(record.claim)}.</p>')
    if record.verdict:
        cls = {True: "ok", False: "no"}.get(record.supported, "open")
        parts.append(f'<p class="verdict {cls}">{_badge(record)} {_e(record.verdict)}</p>')
    if record.tests:
        parts.append(_power(record.tests))
    if record.scores:
        parts.append(_scores(record.scores))
    figures = []
    for fig in record.figures:
        rel = figure_path(folder, fig.get("file", ""), root)
        figures.append(f'<figure><img src="{_e(quote(rel))}" alt="{_e(fig["caption"])}">'
                       f'<figcaption>{_e(fig["caption"])}</figcaption></figure>')
    if figures:
        parts.append(f'<div class="figs">{"".join(figures)}</div>')
    for t in record.tables:
        if t["rows"]:
            parts.append(_table(t["columns"], t["rows"], t["title"]))
    parts += _dashboards(record, root)
    outputs = "".join(f"<li>{_e(a.kind)} {_e(a.site)}: <code>{_e(a.path)}</code> (key {_e(a.key)})</li>"
                      for a in record.artifacts)
    parts.append(f"<details><summary>config, outputs and time ({record.seconds:.1f} s)</summary>"
                 f"<pre>{_e(json.dumps(record.config, indent=1, ensure_ascii=False))}</pre><ul>{outputs}</ul></details>")
    return "\n".join(parts)


def _dashboards(record: Record, root: Path) -> list[str]:
    """Links to the feature dashboards a record wrote inside the report's folder (``mmfeatures inspect``)."""
    out = []
    for a in record.artifacts:
        index = Path(a.path).resolve()
        if a.kind == "dashboards" and index.is_relative_to(root.resolve()):
            rel = index.parent.relative_to(root.resolve()).as_posix()
            links = " · ".join(f'<a href="{_e(quote(f"{rel}/feature-{f}.html"))}">f{f}</a>'
                               for f in record.config.get("features", ()))
            out.append(f'<p>Feature dashboards ({_e(record.title)}): {links} · '
                       f'<a href="{_e(quote(rel + "/index.html"))}">index with search</a></p>')
    return out


def figure_path(folder: Path, name: str, root: Path) -> str:
    """A record's figure as a path relative to the report folder; one that leaves the record's folder (an
    absolute path, '..') or is missing is refused, naming the record."""
    record = folder / RECORD
    path = (folder / name).resolve()
    if not name or Path(name).is_absolute() or not path.is_relative_to(folder.resolve()):
        raise CorruptFileError(f"{record} names figure {name!r}, outside its own folder; a record's figures must "
                               "be files beside it: rerun that step (delete its result.json to force it)")
    if not path.is_file():
        raise CorruptFileError(f"figure {path} named in {record} is missing; rerun that step "
                               "(delete its result.json to force it)")
    return path.relative_to(root.resolve()).as_posix()


def load_records(folder: Path) -> list[Record]:
    """The job records directly in ``folder``'s subfolders, in folder-name order."""
    records = [Record.load(p.parent) for p in sorted(folder.glob(f"*/{RECORD}"))]
    return [r for r in records if r is not None]


def render_report(job: ReportJob) -> Path:
    """Write ``index.html`` in ``job.folder`` and return its path."""
    root = Path(job.folder)
    if not root.is_dir():
        raise InputError(f"report folder {str(root)!r} does not exist; run `mmfeatures demo` or a job with "
                         f"--out {root}/<name> first")
    records = load_records(root)
    if not records:
        raise InputError(f"no job records (*/{RECORD}) in {root}; run jobs with --out {root}/<name> first")
    run = json.loads((root / RUN).read_text()) if (root / RUN).is_file() else {}
    title = run.get("title", job.title)
    claims = [(f"s{i}", r) for i, r in enumerate(records) if r.claim]
    summary = _table(["claim", "effect beyond the baseline [95% interval]", "detects with 80% power", "verdict"],
                     [[r.claim, _headline(r), "; ".join(_mde((t.get("power") or {}).get("mde", float("nan")))
                                                        for t in r.tests),
                       f'<a href="#{anchor}">{_badge(r)}</a>'] for anchor, r in claims], raw=3)
    env = run.get("environment") or records[-1].environment
    versions = _table(["package", "version"], [[k, v] for k, v in env.get("versions", {}).items()])
    devices = sorted({str(r.config.get("device")) for r in records if isinstance(r.config, dict)
                      and r.config.get("device") not in (None, "auto")})
    device = run.get("device") or ", ".join(devices) or ("cuda" if env.get("gpu") else "cpu")
    hardware = (f"device {_e(device)}, {env.get('cpu_threads', '?')} CPU threads, "
                f"GPU {_e(env.get('gpu') or 'none')}, {_e(env.get('platform', ''))}")
    seconds = sum(r.seconds for r in records)
    body = [f"<h1>{_e(title)}</h1>",
            f'<p class="meta">Rendered {time.strftime("%Y-%m-%d %H:%M:%S")} from {len(records)} job records; '
            f"{seconds / 60:.1f} min of compute in these jobs; {hardware}.</p>"]
    if run.get("intro"):
        body.append(f"<p>{_e(run['intro'])}</p>")
    if claims:
        body += ["<h2>Verdicts</h2>", summary, *(link for r in records for link in _dashboards(r, root))]
    body += [_section(r, f"s{i}", root) for i, r in enumerate(records) if r.claim]
    setup = [_section(r, f"s{i}", root, 3 if claims else 2) for i, r in enumerate(records) if not r.claim]
    if setup and claims:
        body.append("<h2>How the activations and SAEs were made</h2>")
    body += setup
    body += ["<h2>Exact config and versions</h2>",
             f"<pre>{_e(json.dumps(run.get('config', {}), indent=1, ensure_ascii=False))}</pre>" if run else "",
             f'<p class="meta">{hardware}</p>', versions]
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head>'
            f'<body>{"".join(body)}</body></html>\n')
    index = root / "index.html"
    write_text_atomic(index, page)
    return index
