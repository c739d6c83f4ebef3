"""Benchmark reports: a Markdown table and a self-contained HTML page with one chart per metric.

Both read the ``results.json`` dictionary (``BenchmarkResult.to_dict()``), so a report can be
rebuilt from a saved file without re-running anything. The HTML page has no external assets:
charts are inline SVG (mean as a bar, the bootstrap 95% interval as a whisker).
"""

from __future__ import annotations

import html
from collections.abc import Sequence

MAIN_METRICS = ("ndcg", "recall", "mrr", "hit", "precision", "map")
BEYOND_METRICS = ("auc", "coverage", "gini", "popularity", "novelty", "diversity")


def _columns(results: dict, bases: Sequence[str]) -> list[str]:
    names = list(results["results"][0]["metrics"]) if results["results"] else []
    return [n for n in names if n.split("@")[0] in bases]


def _cell(result: dict, name: str) -> str:
    m = result["metrics"][name]
    cell = f"{m['mean']:.4f}"
    if m.get("ci_low") is not None:
        cell += f" [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"
    sig = result.get("significance", {}).get(name)
    if sig is None:
        return cell
    if sig["best"]:
        return cell + " ▲"
    return cell + (" *" if sig["significant"] else "")


def to_markdown(results: dict, *, title: str | None = None) -> str:
    """A Markdown report: protocol, accuracy table, beyond-accuracy table, costs, versions."""
    p, v = results["protocol"], results["versions"]
    lines = [f"# {title or 'genrec benchmark'}", ""]
    lines.append(f"Dataset **{p.get('dataset')}** (sha256 `{str(p.get('checksum'))[:12]}`), split "
                 f"**{p.get('split')}** (seed {p.get('seed')}), full ranking over "
                 f"{p.get('n_items')} items, seen items excluded; filtering: "
                 f"{p.get('filtering') or 'none'}. Cells are the mean over "
                 f"{p.get('evaluated_users', '?')} test users and its bootstrap 95% interval. "
                 "▲ = best model on that metric; * = significantly worse than the best "
                 "(paired t-test and Wilcoxon, both Holm-corrected p < 0.05).")
    lines.append("")
    sections = [(f"Accuracy at {k}", [c for c in _columns(results, MAIN_METRICS)
                                       if c.endswith(f"@{k}")]) for k in p.get("k", [])]
    sections.append(("Beyond accuracy", _columns(results, BEYOND_METRICS)))
    for heading, cols in sections:
        if not cols:
            continue
        lines += [f"## {heading}", "", "| model | " + " | ".join(cols) + " |",
                  "| --- |" + " --- |" * len(cols)]
        for r in results["results"]:
            lines.append(f"| {r['model']} | " + " | ".join(_cell(r, c) for c in cols) + " |")
        lines.append("")
    lines += ["## Cost", "", "| model | fit s | score s | peak RSS MB | best epoch |",
              "| --- | --- | --- | --- | --- |"]
    for r in results["results"]:
        lines.append(f"| {r['model']} | {r['fit_seconds']:.2f} | {r['score_seconds']:.2f} | "
                     f"{r['peak_rss_mb']:.0f} | {r.get('best_epoch', '-')} |")
    lines += ["", "Configs: " + "; ".join(f"{r['model']} {r['config']}" for r in results["results"]),
              "", "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()), ""]
    return "\n".join(lines)


def to_html(results: dict, *, title: str | None = None) -> str:
    """A self-contained HTML page: the Markdown tables' content plus one SVG chart per metric."""
    title = html.escape(title or "genrec benchmark")
    charts = "\n".join(_svg_chart(results, name) for name in
                       _columns(results, MAIN_METRICS + BEYOND_METRICS))
    body = html.escape(to_markdown(results, title=None))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1100px; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1.5em; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: .3em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 12px; }}
</style></head><body>
<h1>{title}</h1>
<p>Bars are means over test users; whiskers are bootstrap 95% intervals (corpus-level
coverage and Gini have none).</p>
<div class="charts">
{charts}
</div>
<h2>Tables</h2>
<pre>{body}</pre>
</body></html>
"""


def _svg_chart(results: dict, name: str) -> str:
    rows = [(r["model"], r["metrics"][name]) for r in results["results"]]
    width, bar_h, left, right = 360, 22, 90, 20
    height = bar_h * len(rows) + 30
    top = max(max(m["ci_high"] or m["mean"], m["mean"]) for _, m in rows) or 1.0
    scale = (width - left - right) / top
    parts = []
    for i, (model, m) in enumerate(rows):
        y = 10 + i * bar_h
        w = max(0.0, m["mean"]) * scale
        has_ci = m.get("ci_low") is not None
        lo = left + (m["ci_low"] if has_ci else m["mean"]) * scale
        hi = left + (m["ci_high"] if has_ci else m["mean"]) * scale
        interval = f' [{m["ci_low"]:.4f}, {m["ci_high"]:.4f}]' if has_ci else ""
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="12">{html.escape(model)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 8}" fill="#4c78a8">'
            f'<title>{html.escape(model)} {name}: {m["mean"]:.4f}{interval}</title></rect>'
            f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{y + bar_h / 2:.1f}" y2="{y + bar_h / 2:.1f}" stroke="#222"/>'
            f'<line x1="{lo:.1f}" x2="{lo:.1f}" y1="{y + 6}" y2="{y + bar_h - 6}" stroke="#222"/>'
            f'<line x1="{hi:.1f}" x2="{hi:.1f}" y1="{y + 6}" y2="{y + bar_h - 6}" stroke="#222"/>'
            f'<text x="{left + w + 4:.1f}" y="{y + 14}" font-size="10" fill="#555">{m["mean"]:.3f}</text>')
    axis = (f'<line x1="{left}" x2="{left}" y1="5" y2="{height - 20}" stroke="#888"/>'
            f'<text x="{left}" y="{height - 5}" font-size="10" fill="#555">0</text>'
            f'<text x="{width - right}" y="{height - 5}" font-size="10" fill="#555" text-anchor="end">{top:.3g}</text>')
    return (f'<figure><figcaption>{html.escape(name)}</figcaption>'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
            f'aria-label="{html.escape(name)}">{axis}{"".join(parts)}</svg></figure>')
