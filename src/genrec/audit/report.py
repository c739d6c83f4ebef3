"""The audit as one self-contained HTML page (no scripts, styles inline, no external files).

* a heat map of models x scenarios: each cell shows the scenario's headline metric
  (``protocol.headlines``), shaded within its column from best to worst by the metric's
  direction; "n/a" cells are grey and say why on hover;
* one section per scenario: a table of every metric per model with its interval, and bar
  charts (inline SVG) of each model's value with its interval whiskers for the scenario's
  headline metric and the next few (:data:`CHARTS`; the table has the rest);
* a definitions section; every metric name and number links to its definition (``#def-...``).

Example:
    >>> doc = {"protocol": {"dataset": "d", "headlines": {"accuracy": "ndcg@10"}},
    ...        "results": [{"model": "pop", "scenario": "accuracy", "settings": {},
    ...                     "metrics": {"ndcg@10": {"mean": 0.1, "ci_low": 0.05, "ci_high": 0.15}}}],
    ...        "definitions": {"ndcg": {"text": "t", "source": "s", "better": "higher"}}}
    >>> "#def-ndcg" in to_html(doc)
    True
"""

from __future__ import annotations

import html
import json

from genrec.audit.results import NA, family

CHARTS = 1  # bar charts per scenario: the headline metric first, then the table's first ones

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;
padding:3px 6px;text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}
td.na{background:#eee;color:#888;text-align:center}a{color:#124;text-decoration:none}
a:hover{text-decoration:underline}.def{margin:.3em 0}.src{color:#666;font-size:12px}
svg text{font-size:11px;font-family:system-ui,sans-serif}svg rect{fill:#7aa6d8}
svg line{stroke:#222;stroke-width:1.5}pre{white-space:pre-wrap}"""


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, (int, float)):
        return f"{x:.{digits}g}"
    return html.escape(str(x))


def _link(metric: str, text: str) -> str:
    return f'<a href="#def-{html.escape(family(metric))}">{text}</a>'


def _cell(results, model, scenario):
    for r in results:
        if r["model"] == model and r["scenario"] == scenario:
            return r
    return None


def _shade(value, values, better: str) -> str:
    """Background colour: green (best) to red (worst) within a column."""
    finite = [v for v in values if isinstance(v, (int, float))]
    if not isinstance(value, (int, float)) or len(finite) < 2 or max(finite) == min(finite):
        return "#fff"
    t = (value - min(finite)) / (max(finite) - min(finite))
    if better == "lower":
        t = 1 - t
    elif better == "0.5":
        t = 1 - min(1.0, abs(value - 0.5) * 2)
    elif better != "higher":
        return "#fff"
    return f"hsl({int(120 * t)},60%,85%)"


def heat_map(doc: dict) -> str:
    p, results, defs = doc["protocol"], doc["results"], doc.get("definitions", {})
    models = list(dict.fromkeys(r["model"] for r in results))
    scenarios = list(dict.fromkeys(r["scenario"] for r in results))
    heads = p.get("headlines", {})
    rows = [
        "<table><tr><th class=l>model</th>"
        + "".join(
            f'<th><a href="#s-{s}">{html.escape(s)}</a><br><small>{_link(heads.get(s, ""), html.escape(heads.get(s, "")))}</small></th>'
            for s in scenarios
        )
        + "</tr>"
    ]
    column = {s: [_value(_cell(results, m, s), heads.get(s)) for m in models] for s in scenarios}
    for m in models:
        tds = []
        for s in scenarios:
            r = _cell(results, m, s)
            if r is None or r["metrics"] == NA:
                reason = "" if r is None else r["settings"].get("reason", "")
                hover = f' title="{html.escape(reason)}"' if reason else ""
                tds.append(f"<td class=na{hover}>n/a</td>")
                continue
            v = _value(r, heads.get(s))
            better = defs.get(family(heads.get(s, "")), {}).get("better", "")
            tds.append(
                f'<td style="background:{_shade(v, column[s], better)}">'
                f"{_link(heads.get(s, ''), _fmt(v))}</td>"
            )
        rows.append(f"<tr><th class=l>{html.escape(m)}</th>{''.join(tds)}</tr>")
    return "\n".join(rows) + "</table>"


def _value(r, metric):
    if r is None or r["metrics"] == NA or metric not in r["metrics"]:
        return None
    return r["metrics"][metric]["mean"]


def bar_chart(values: list[tuple[str, dict]], width: int = 420) -> str:
    """An inline SVG of horizontal bars (mean) with whiskers (interval), one per model."""
    finite = [
        x
        for _, v in values
        for x in (v["mean"], v["ci_low"], v["ci_high"])
        if isinstance(x, (int, float))
    ]
    if not finite:
        return ""
    lo, hi = min(0.0, min(finite)), max(0.0, max(finite))
    span = (hi - lo) or 1.0
    x0, plot = 90, width - 140
    pos = lambda x: x0 + (x - lo) / span * plot  # noqa: E731
    parts = [f'<svg width="{width}" height="{18 * len(values) + 8}">']
    for i, (model, v) in enumerate(values):
        y = 4 + 18 * i
        parts.append(f'<text x="0" y="{y + 11}">{html.escape(model)}</text>')
        if isinstance(v["mean"], (int, float)):
            a, b = sorted((pos(0.0), pos(v["mean"])))
            parts.append(
                f'<rect x="{a:.0f}" y="{y}" width="{max(b - a, 1):.0f}" height="13"/>'
                f'<text x="{width - 45}" y="{y + 11}">{_fmt(v["mean"], 3)}</text>'
            )
        if isinstance(v["ci_low"], (int, float)) and isinstance(v["ci_high"], (int, float)):
            parts.append(
                f'<line x1="{pos(v["ci_low"]):.0f}" x2="{pos(v["ci_high"]):.0f}" '
                f'y1="{y + 6}" y2="{y + 6}"/>'
            )
    return "".join(parts) + "</svg>"


def scenario_section(doc: dict, scenario: str) -> str:
    rows = [r for r in doc["results"] if r["scenario"] == scenario]
    out = [f'<h2 id="s-{scenario}">{html.escape(scenario)}</h2>']
    na = [r for r in rows if r["metrics"] == NA]
    if na:
        out.append(
            "<p>n/a: "
            + "; ".join(
                f"<b>{html.escape(r['model'])}</b> ({html.escape(r['settings'].get('reason', ''))})"
                for r in na
            )
            + "</p>"
        )
    done = [r for r in rows if r["metrics"] != NA]
    if not done:
        return "\n".join(out)
    names = list(dict.fromkeys(m for r in done for m in r["metrics"]))
    out.append(
        "<table><tr><th class=l>metric</th>"
        + "".join(f"<th>{html.escape(r['model'])}</th>" for r in done)
        + "</tr>"
    )
    for name in names:
        tds = []
        for r in done:
            v = r["metrics"].get(name)
            if v is None:
                tds.append("<td>–</td>")
                continue
            ci = (
                f" [{_fmt(v['ci_low'], 3)}, {_fmt(v['ci_high'], 3)}]"
                if v.get("ci_low") is not None
                else ""
            )
            pv = f" p={_fmt(v['p_value'], 2)}" if v.get("p_value") is not None else ""
            tds.append(f"<td>{_link(name, _fmt(v['mean'], 3))}{ci}{pv}</td>")
        out.append(f"<tr><td class=l>{_link(name, html.escape(name))}</td>{''.join(tds)}</tr>")
    out.append("</table>")
    headline = doc["protocol"].get("headlines", {}).get(scenario)
    charted = ([headline] if headline in names else []) + [n for n in names if n != headline]
    for name in charted[:CHARTS]:
        values = [(r["model"], r["metrics"][name]) for r in done if name in r["metrics"]]
        chart = bar_chart(values)
        if chart:
            out.append(f"<div><b>{_link(name, html.escape(name))}</b><br>{chart}</div>")
    settings = {r["model"]: r["settings"] for r in done if r["settings"]}
    if settings:  # a page built from a cut document may leave every cell's settings out
        out.append(
            "<details><summary>settings</summary><pre>"
            + html.escape(json.dumps(settings), quote=False)
            + "</pre></details>"
        )
    return "\n".join(out)


def to_html(doc: dict, *, title: str | None = None) -> str:
    """The report page of an ``audit.json`` document (module docstring)."""
    p = doc["protocol"]
    title = title or f"genrec audit: {p.get('dataset', '')}"
    scenarios = list(dict.fromkeys(r["scenario"] for r in doc["results"]))
    defs = "".join(
        f'<p class=def id="def-{html.escape(name)}"><b>{html.escape(name)}</b>: '
        f"{html.escape(d['text'])} <span class=src>Source: {html.escape(d['source'])}"
        f"{'; better: ' + html.escape(d['better']) if d.get('better') else ''}</span></p>"
        for name, d in sorted(doc.get("definitions", {}).items())
    )
    body = [
        f"<h1>{html.escape(title)}</h1>",
        "<p>Every number links to its definition. Intervals are 95% bootstrap intervals over "
        "users; corpus-level values (Gini, coverage, AUCs) have none. n/a = the scenario does "
        "not apply to the model (never zero).</p>",
        "<h2>Models x scenarios</h2>",
        heat_map(doc),
        *[scenario_section(doc, s) for s in scenarios],
        "<h2>Definitions</h2>",
        defs,
        "<h2>Protocol</h2><pre>" + html.escape(json.dumps(p), quote=False) + "</pre>",
    ]
    return (
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
        f"<style>{_CSS}</style></head><body>{''.join(body)}</body></html>"
    )


__all__ = ["CHARTS", "bar_chart", "heat_map", "scenario_section", "to_html"]
