"""Feature dashboards as self-contained HTML: one page per feature and an index with search, drawn from
``analysis.dashboard.FeatureView``s (this module computes nothing).

A page carries its text as text (CJK, Arabic and Devanagari render with the reader's fonts, right-to-left where
the script is), its charts as inline SVG and its pictures as embedded thumbnails, so a page is one file that opens
anywhere. Each token is a ``<span class="tok" data-v="...">`` whose shade is its activation over the feature's
largest; ``data-v`` is the stored activation, which the browser test reads back. Given views of the same feature
on several stores (a two-tower model's text and image sites through one SAE), the examples stand side by side.

>>> write_dashboards({12: [view]}, "runs/e5/inspect", title="e5-small layer 8")    # doctest: +SKIP
"""

from __future__ import annotations

import base64
import functools
import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from mmfeatures.analysis.dashboard import FeatureView, Group, Shown, summary_row
from mmfeatures.disk import write_text_atomic

STYLE = """
body { font-family: "Noto Sans", "Noto Sans CJK JP", "Noto Sans Arabic", "Noto Sans Devanagari", sans-serif;
       margin: 1.5em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.stats { display: flex; gap: 2em; flex-wrap: wrap; } .stat b { display: block; font-size: 1.3em; }
.charts { display: flex; gap: 2em; flex-wrap: wrap; align-items: flex-start; }
.columns { display: flex; gap: 1.5em; } .columns > div { flex: 1; min-width: 0; }
.ex { padding: 4px 6px; margin: 3px 0; border-left: 3px solid #f59e0b; background: #fafafa; line-height: 1.9; }
.ex .meta { color: #777; font-size: 0.8em; margin-right: 0.6em; }
.tok { border-radius: 3px; padding: 1px 0; }
.img img { height: 72px; margin-right: 6px; vertical-align: middle; border: 1px solid #ddd; }
table { border-collapse: collapse; } td, th { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: left; }
input#q { font-size: 1em; padding: 4px; width: 24em; }
"""


def token_text(token: str) -> str:
    """A stored token as it reads: SentencePiece's '▁' and byte-level BPE's 'Ġ' are spaces, WordPiece's '##'
    joins the word before."""
    if token.startswith("##"):
        return token[2:]
    return token.replace("▁", " ").replace("Ġ", " ")


@functools.lru_cache(maxsize=512)
def _thumbnail(path: str) -> str | None:
    """A PNG data URI of the picture, at most 128 pixels high; None when it cannot be read."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            im = im.convert("RGBA")
            im.thumbnail((256, 128))
            buf = io.BytesIO()
            im.save(buf, "PNG")
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _shade(value: float, top: float) -> str:
    alpha = 0.0 if top <= 0 or value <= 0 else min(1.0, 0.15 + 0.85 * value / top)
    return f"background: rgba(245, 158, 11, {alpha:.2f})" if alpha else ""


def example_html(shown: Shown, top: float) -> str:
    """One example: its tokens shaded by activation (per-token stores), else its text or id, its picture."""
    e = html.escape
    meta = " · ".join(x for x in (shown.language, shown.concept, f"{shown.activation:.3g}") if x)
    if shown.modality == "image":
        uri = _thumbnail(shown.source) if shown.source else None
        pic = f'<img src="{uri}" alt="{e(shown.id)}">' if uri else f"[picture {e(shown.id)} not readable here]"
        body = f'<span class="img">{pic}</span>'
    elif shown.tokens:
        body = "".join(f'<span class="tok" data-v="{v:.6g}" title="{e(t)}: {v:.3g}" style="{_shade(v, top)}">'
                       f"{e(token_text(t))}</span>" for t, v in zip(shown.tokens, shown.values, strict=True))
    else:
        body = e(shown.text if shown.text is not None else shown.id)
    return (f'<div class="ex" data-id="{e(shown.id)}" data-activation="{shown.activation:.6g}">'
            f'<span class="meta">{e(meta)}</span><bdi dir="auto">{body}</bdi></div>')


def _bars_svg(groups: Sequence[Group], title: str, width: int = 360) -> str:
    """Horizontal bars: each group's mean activation, the share of its examples the feature fires on noted."""
    if not groups:
        return ""
    top = max((g.mean for g in groups), default=0) or 1.0
    row, left = 16, 90
    parts = [f'<svg width="{width}" height="{row * len(groups) + 24}" role="img" aria-label="{html.escape(title)}">'
             f'<text x="0" y="12" font-size="12" font-weight="bold">{html.escape(title)}</text>']
    for i, g in enumerate(groups):
        y = 20 + i * row
        w = (width - left - 70) * g.mean / top
        parts.append(f'<text x="{left - 4}" y="{y + 11}" font-size="11" text-anchor="end">{html.escape(g.name)}</text>'
                     f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" fill="#4477aa">'
                     f"<title>{html.escape(g.name)}: mean {g.mean:.3g}, fires on {g.firing:.0%} of {g.examples}"
                     f'</title></rect><text x="{left + w + 4:.1f}" y="{y + 11}" font-size="10">{g.mean:.2g} '
                     f"({g.firing:.1%})</text>")
    return "".join(parts) + "</svg>"


def _histogram_svg(view: FeatureView, width: int = 360, height: int = 140) -> str:
    counts, edges = view.histogram
    if not counts:
        return "<p>The feature never fires on this store.</p>"
    top = max(counts) or 1
    bar = (width - 20) / len(counts)
    parts = [f'<svg width="{width}" height="{height + 34}" role="img" aria-label="activation histogram">'
             f'<text x="0" y="12" font-size="12" font-weight="bold">Non-zero activations ({sum(counts):,} rows)</text>']
    for i, c in enumerate(counts):
        h = (height - 20) * c / top
        parts.append(f'<rect x="{10 + i * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}" '
                     f'fill="#f59e0b"><title>{edges[i]:.3g} to {edges[i + 1]:.3g}: {c}</title></rect>')
    parts.append(f'<text x="10" y="{height + 14}" font-size="10">{edges[0]:.3g}</text>'
                 f'<text x="{width - 10}" y="{height + 14}" font-size="10" text-anchor="end">{edges[-1]:.3g}</text>')
    return "".join(parts) + "</svg>"


def _examples(shown: Sequence[Shown], top: float) -> str:
    return "".join(example_html(s, top) for s in shown) or "<p>None.</p>"


def _column_title(view: FeatureView) -> str:
    return f"{view.model} · {view.site}"


def feature_html(views: Sequence[FeatureView], *, title: str = "", index: str | None = "index.html") -> str:
    """The dashboard of one feature as an HTML fragment (with its style): ``views`` are that feature on one or
    more stores, drawn side by side."""
    e = html.escape
    first = views[0]
    top = max(v.max_activation for v in views)
    out = [f"<style>{STYLE}</style>", f'<div class="dashboard" data-feature="{first.feature}">']
    if index:
        out.append(f'<p><a href="{e(index)}">← all features</a></p>')
    out.append(f"<h1>Feature {first.feature}{' · ' + e(title) if title else ''}</h1>")
    if any(s.modality == "text" and not s.tokens and s.text is None for v in views for s in v.top):
        out.append("<p><i>This store is pooled and keeps no text: the examples show their ids. Pass the data they "
                   "came from (<code>--texts DATA</code>, <code>feature_views(..., texts=...)</code>) to show "
                   "the sentences.</i></p>")
    for v in views:
        out.append(f"<h2>{e(_column_title(v))}</h2><div class='stats'>"
                   f"<div class='stat'><b>{v.frequency:.3%}</b>of {v.rows:,} rows</div>"
                   f"<div class='stat'><b>{v.firing_examples:,} / {v.examples:,}</b>examples it fires on</div>"
                   f"<div class='stat'><b>{v.max_activation:.3g}</b>largest activation</div>"
                   f"<div class='stat'><b>{e(v.top_concept or '-')}</b>top concept</div></div>"
                   f"<div class='charts'>{_histogram_svg(v)}{_bars_svg(v.by_language, 'Mean activation by language')}"
                   f"{_bars_svg(v.by_concept[:15], 'Mean activation by concept (top 15)')}</div>")
    columns = lambda pick: "<div class='columns'>" + "".join(  # noqa: E731
        f"<div><h3>{e(_column_title(v))}</h3>{pick(v)}</div>" for v in views) + "</div>"
    out.append("<h2>Top examples</h2>" + columns(lambda v: _examples(v.top, top)))
    out.append("<h2>Quantile bands of the firing examples</h2>" + columns(
        lambda v: "".join(f"<h4>{e(b.label)}</h4>{_examples(b.examples, top)}" for b in v.bands) or "<p>None.</p>"))
    out.append("<h2>Top examples by language</h2>" + columns(
        lambda v: "".join(f"<h4>{e(lang)}</h4>{_examples(shown, top)}" for lang, shown in v.per_language)
        or "<p>None.</p>"))
    partners = [(v, p) for v in views for p in v.partners]
    if partners:
        out.append("<h2>Best matches in other SAEs or models</h2><p>Pearson r of the examples' largest activations "
                   "over the examples both stores hold.</p>")
        for _, p in partners:
            ptop = max((s.activation for s in p.top), default=0.0)
            out.append(f"<h4>{e(p.name)} feature {p.feature}: r = {p.r:.3f}</h4>{_examples(p.top, ptop)}")
    return "".join(out) + "</div>"


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width"></head><body>{body}</body></html>\n')


def index_html(rows: Sequence[dict], title: str) -> str:
    """The index: one row per feature, filtered as you type by feature id, concept or language."""
    e = html.escape
    body = [f"<style>{STYLE}</style><h1>{e(title)}</h1>",
            '<p><input id="q" placeholder="search: feature id, concept or language" autofocus></p>',
            "<table id='features'><tr><th>feature</th><th>fires on (rows)</th><th>largest</th><th>top concept</th>"
            "<th>top language</th><th>languages it fires on</th></tr>"]
    for r in rows:
        words = " ".join([str(r["feature"]), *r["concepts"], *r["languages"]])
        body.append(f"<tr data-search='{e(words.lower())}'><td><a href='{e(page_name(r['feature']))}'>"
                    f"{r['feature']}</a></td><td>{r['frequency']:.3%}</td><td>{r['max_activation']:.3g}</td>"
                    f"<td>{e(r['top_concept'] or '-')}</td><td>{e(r['top_language'] or '-')}</td>"
                    f"<td>{e(', '.join(r['languages']))}</td></tr>")
    body.append("</table><script>document.getElementById('q').addEventListener('input', ev => {"
                "const words = ev.target.value.toLowerCase().split(/\\s+/).filter(Boolean);"
                "for (const row of document.querySelectorAll('#features tr[data-search]')) {"
                "const hay = row.dataset.search.split(' ');"
                "row.style.display = words.every(w => hay.some(h => h === w || h.startsWith(w))) ? '' : 'none'; }"
                "});</script>")
    return _document(title, "".join(body))


def page_name(feature: int) -> str:
    return f"feature-{feature}.html"


def write_dashboards(views: Mapping[int, Sequence[FeatureView]], out: str | Path, *, title: str = "") -> Path:
    """A page per feature (``feature-N.html``), ``index.html`` and ``features.json`` (the index's rows) in ``out``;
    returns the index's path. Each file is written atomically."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for feature, per_store in views.items():
        write_text_atomic(out / page_name(feature),
                          _document(f"Feature {feature} · {title}", feature_html(per_store, title=title)))
        rows.append(summary_row(per_store[0]))
    write_text_atomic(out / "features.json", json.dumps(rows, indent=1, ensure_ascii=False))
    index = out / "index.html"
    write_text_atomic(index, index_html(rows, title or "Feature dashboards"))
    return index
