"""Benchmark reports: a Markdown file and a self-contained HTML page with one chart per metric.

Both read the ``results.json`` dictionary (``BenchmarkResult.to_dict()``), so a report can be
rebuilt from a saved file without re-running anything, and both render the same sections
(:func:`_sections`). The HTML page has no external assets: charts are inline SVG (the mean as a
bar, the bootstrap 95% interval as a whisker).
"""

from __future__ import annotations

import html

from genrec.evaluation.protocol import BEYOND, RANKING

LEGEND = (
    "▲ = best model on that metric; * = significantly worse than the best (paired t-test "
    "and Wilcoxon, both Holm-corrected p < 0.05)."
)


def to_markdown(results: dict, *, title: str | None = None) -> str:
    """A Markdown report: protocol, accuracy tables per k, beyond accuracy, cost, versions."""
    lines = [f"# {title or 'genrec benchmark'}", "", _protocol_text(results), ""]
    for heading, header, rows in _sections(results):
        lines += [
            f"## {heading}",
            "",
            "| " + " | ".join(header) + " |",
            "|" + " --- |" * len(header),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines.append("")
    lines += [_configs_text(results), "", _versions_text(results), ""]
    return "\n".join(lines)


def to_html(results: dict, *, title: str | None = None) -> str:
    """A self-contained HTML page: one SVG chart per metric, then the same tables."""
    title = html.escape(title or "genrec benchmark")
    names = _columns(results, RANKING) + _columns(results, BEYOND)
    charts = "\n".join(_svg_chart(results, name) for name in names)
    tables = "\n".join(
        f'<h2>{html.escape(heading)}</h2><div class="wide"><table><tr>'
        + "".join(f"<th>{html.escape(h)}</th>" for h in header)
        + "</tr>"
        + "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
        )
        + "</table></div>"
        for heading, header, rows in _sections(results)
    )
    esc = html.escape
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1.5em; }}
figure {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: .3em; }}
table {{ border-collapse: collapse; font-size: 13px; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }}
th:first-child, td:first-child {{ text-align: left; }}
.wide {{ overflow-x: auto; }}
p.small {{ font-size: 12px; color: #555; }}
</style></head><body>
<h1>{title}</h1>
<p>{esc(_protocol_text(results).replace("**", "").replace("`", ""))}</p>
<p>Bars are means over test users; whiskers are bootstrap 95% intervals (corpus-level coverage
and Gini have none).</p>
<div class="charts">
{charts}
</div>
{tables}
<p class="small">{esc(_configs_text(results))}</p>
<p class="small">{esc(_versions_text(results))}</p>
</body></html>
"""


# ---- shared pieces ---------------------------------------------------------------------------
def _columns(results: dict, bases) -> list[str]:
    names = list(results["results"][0]["metrics"]) if results["results"] else []

    def order(name):  # by k (none first), then the listed metric order
        base, _, k = name.partition("@")
        return int(k or 0), bases.index(base)

    return sorted((n for n in names if n.split("@")[0] in bases), key=order)


def _sections(results: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(heading, header, rows) of every table: accuracy at each k, beyond accuracy, cost."""
    models = results["results"]
    accuracy = _columns(results, RANKING)
    groups = [
        (f"Accuracy at {k}", [c for c in accuracy if c.endswith(f"@{k}")])
        for k in results["protocol"].get("k", [])
    ]
    groups.append(("Beyond accuracy", _columns(results, BEYOND)))
    out = [
        (h, ["model"] + cols, [[r["model"]] + [_cell(r, c) for c in cols] for r in models])
        for h, cols in groups
        if cols
    ]
    cost = [
        [
            r["model"],
            f"{r['fit_seconds']:.2f}",
            f"{r['score_seconds']:.2f}",
            f"{r['peak_rss_mb']:.0f}",
            str(r.get("best_epoch", "-")),
        ]
        for r in models
    ]
    out.append(("Cost", ["model", "fit s", "score s", "peak RSS MB", "best epoch"], cost))
    return out


def _cell(result: dict, name: str) -> str:
    m = result["metrics"][name]
    cell = f"{m['mean']:.4f}"
    if m.get("ci_low") is not None:
        cell += f" [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"
    sig = result.get("significance", {}).get(name)
    if sig is None:
        return cell
    return cell + (" ▲" if sig["best"] else " *" if sig["significant"] else "")


def _protocol_text(results: dict) -> str:
    p = results["protocol"]
    return (
        f"Dataset **{p.get('dataset')}** (sha256 `{str(p.get('checksum'))[:12]}`), split "
        f"**{p.get('split')}** (seed {p.get('seed')}), full ranking over {p.get('n_items')} "
        f"items, seen items excluded; filtering: {p.get('filtering') or 'none'}. Cells are "
        f"the mean over {p.get('evaluated_users', '?')} test users and its bootstrap 95% "
        f"interval. {LEGEND}"
    )


def _configs_text(results: dict) -> str:
    return "Configs: " + "; ".join(f"{r['model']} {r['config']}" for r in results["results"])


def _versions_text(results: dict) -> str:
    return "Versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items())


def _svg_chart(results: dict, name: str) -> str:
    rows = [(r["model"], r["metrics"][name]) for r in results["results"]]
    width, bar_h, left, right = 380, 22, 90, 70
    height = bar_h * len(rows) + 30
    top = (
        max(
            max(m["ci_high"] if m.get("ci_high") is not None else m["mean"], m["mean"])
            for _, m in rows
        )
        or 1.0
    )
    scale = (width - left - right) / top
    parts = []
    for i, (model, m) in enumerate(rows):
        y = 10 + i * bar_h
        w = max(0.0, m["mean"]) * scale
        has_ci = m.get("ci_low") is not None
        lo = left + (m["ci_low"] if has_ci else m["mean"]) * scale
        hi = left + (m["ci_high"] if has_ci else m["mean"]) * scale
        interval = f" [{m['ci_low']:.4f}, {m['ci_high']:.4f}]" if has_ci else ""
        mid = y + bar_h / 2
        parts.append(
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="12">{html.escape(model)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 8}" fill="#4c78a8">'
            f"<title>{html.escape(model)} {name}: {m['mean']:.4f}{interval}</title></rect>"
            + (
                f'<line x1="{lo:.1f}" x2="{hi:.1f}" y1="{mid:.1f}" y2="{mid:.1f}" stroke="#222"/>'
                f'<line x1="{lo:.1f}" x2="{lo:.1f}" y1="{y + 6}" y2="{y + bar_h - 6}" stroke="#222"/>'
                f'<line x1="{hi:.1f}" x2="{hi:.1f}" y1="{y + 6}" y2="{y + bar_h - 6}" stroke="#222"/>'
                if has_ci
                else ""
            )
            + f'<text x="{max(hi, left + w) + 5:.1f}" y="{y + 14}" font-size="11" fill="#333">'
            f"{m['mean']:.4g}</text>"
        )
    axis = (
        f'<line x1="{left}" x2="{left}" y1="5" y2="{height - 20}" stroke="#888"/>'
        f'<text x="{left}" y="{height - 5}" font-size="10" fill="#555">0</text>'
        f'<text x="{width - right}" y="{height - 5}" font-size="10" fill="#555" '
        f'text-anchor="end">{top:.3g}</text>'
    )
    return (
        f"<figure><figcaption>{html.escape(name)}</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(name)}">{axis}{"".join(parts)}</svg></figure>'
    )
