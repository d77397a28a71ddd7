"""report.md and report.html for a run: the best verified solution, speedup over
evaluations, the lineage, and every failure reason counted. Self-contained (inline SVG).

report.html renders report.md with markdown-it (raw HTML off: plan steps and reasons come from
a model), adds the best solution's code with its diff against the reference, and draws a plot
only when there is something to draw."""
from __future__ import annotations

import difflib
import html
import json
import statistics
from collections import Counter
from pathlib import Path

from kopt.agent.runs.lineage import build_graph, layers
from kopt.agent.runs.store import Store


def _curve(evals: list) -> list[tuple[int, float]]:
    best, out = None, []
    for i, e in enumerate(evals, 1):
        r = e.result
        if r.get("correct") and r.get("verdict") in ("faster", "same", "slower") and r.get("speedup"):
            best = max(best or 0.0, r["speedup"])
        out.append((i, best or 0.0))
    return out


def _svg_curve(points: list[tuple[int, float]], w: int = 560, h: int = 220) -> str:
    if not any(y > 0 for _, y in points):  # nothing verified yet: no empty axes
        return ""
    xmax = max(p[0] for p in points)
    ymax = max(1.2, max(p[1] for p in points) * 1.1)
    sx = lambda x: 40 + (w - 60) * (x - 1) / max(1, xmax - 1)  # noqa: E731
    sy = lambda y: h - 30 - (h - 50) * y / ymax  # noqa: E731
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(points))
    one = sy(1.0)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-size="11">'
            f'<line x1="40" y1="{h - 30}" x2="{w - 20}" y2="{h - 30}" stroke="#444"/>'
            f'<line x1="40" y1="10" x2="40" y2="{h - 30}" stroke="#444"/>'
            f'<line x1="40" y1="{one:.1f}" x2="{w - 20}" y2="{one:.1f}" stroke="#aaa" stroke-dasharray="4"/>'
            f'<text x="4" y="{one + 4:.1f}">1.0x</text><text x="4" y="18">{ymax:.2f}x</text>'
            f'<text x="{w / 2 - 40}" y="{h - 8}">evaluation #</text>'
            f'<path d="{path}" fill="none" stroke="#1b7" stroke-width="2"/></svg>')


def _svg_lineage(g, best: str | None, speedups: dict[str, float | None]) -> str:
    pos = layers(g)
    if len(pos) < 2:  # the reference alone is no lineage
        return ""
    bw, bh, gx, gy = 150, 40, 30, 50
    depth = max(d for d, _ in pos.values()) + 1
    width = max(c for _, c in pos.values()) + 1
    W, H = width * (bw + gx) + gx, depth * (bh + gy) + gy
    xy = {n: (gx + c * (bw + gx), gy / 2 + d * (bh + gy)) for n, (d, c) in pos.items()}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="11">']
    for a, b in g.edges:
        (x1, y1), (x2, y2) = xy[a], xy[b]
        parts.append(f'<line x1="{x1 + bw / 2}" y1="{y1 + bh}" x2="{x2 + bw / 2}" y2="{y2}" stroke="#888"/>')
    for n, (x, y) in xy.items():
        sp = speedups.get(n)
        fill = "#bfe8c8" if n == best else "#eee"
        label = f"{n[:8]} {sp:.2f}x" if sp else f"{n[:8]} -"
        step = html.escape((g.nodes[n].get("step") or "")[:26])
        parts.append(f'<rect x="{x}" y="{y}" width="{bw}" height="{bh}" rx="5" fill="{fill}" stroke="#666"/>'
                     f'<text x="{x + 5}" y="{y + 15}">{label}</text><text x="{x + 5}" y="{y + 31}">{step}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_reports(run_dir: Path, store: Store, run_id: str, best: str | None, stop_reason: str,
                  model_label: str) -> dict:
    cands = {c.id: c for c in store.candidates(run_id)}
    evals = store.evaluations(run_id)
    by_cand: dict[str, list[dict]] = {}
    for e in evals:
        by_cand.setdefault(e.candidate_id, []).append(e.result)
    speedups = {cid: (statistics.median(r["speedup"] for r in rs if r.get("speedup"))
                      if any(r.get("speedup") for r in rs) else None) for cid, rs in by_cand.items()}
    failures = Counter(f"{r.get('verdict')}: {(r.get('reason') or '')[:100]}" for e in evals
                       for r in [e.result] if not r.get("correct"))
    run = next((r for r in store.runs() if r["id"] == run_id), {})
    curve = _curve(evals)
    g = build_graph(cands)
    summary = {"run_id": run_id, "target": run.get("target"), "model": model_label, "evaluations": len(evals),
               "candidates": len(cands), "stop_reason": stop_reason, "best": best,
               "best_speedup": speedups.get(best) if best else None,
               "best_plan_step": cands[best].plan_step if best else None,
               "best_skills": cands[best].skills if best else [], "failures": dict(failures)}
    md = [f"# kopt run {run_id}", "", f"- target: `{run.get('target')}`", f"- proposer: {model_label}",
          f"- evaluations: {len(evals)}, candidates: {len(cands)}", f"- stopped: {stop_reason}", ""]
    if best:
        last = by_cand[best][-1]
        md += ["## Best verified solution", "",
               f"`best/` (candidate {best}): median speedup **{speedups[best]:.3f}x** over "
               f"{len(by_cand[best])} evaluation(s); last CI {last.get('speedup_ci')}, verdict {last.get('verdict')}",
               f"- plan step: {cands[best].plan_step}", f"- skills: {', '.join(cands[best].skills) or '-'}", ""]
        checks = last.get("checks") or {}  # a repo target's tests and changed functions; a program's metrics
        md[-1:] = [f"- {k.replace('_', ' ')}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
                   for k, v in checks.items() if k in ("tests", "functions_changed", "files_changed", "metric",
                                                       "ref_instructions", "new_instructions", "wall_speedup",
                                                       "wall_speedup_ci", "flags", "metrics_disagree")] + [""]
    else:
        md += ["## No verified improvement", "", "`best/` is the reference itself: no candidate was verified faster "
               "(kopt never returns a slower or unverified one).", ""]
    md += ["## Best verified speedup over evaluations", "", "| evaluation | best so far |", "|---|---|"]
    md += [f"| {i} | {v:.3f}x |" for i, v in curve]
    md += ["", "## Lineage (parent -> child: plan step)", ""]
    md += [f"- {a} -> {b}: {g.edges[a, b]['step'][:120]}" for a, b in g.edges] or ["- (root only)"]
    md += ["", "## Candidates", "", "| candidate | proposer | evals | median speedup | verdicts | plan step |",
           "|---|---|---|---|---|---|"]
    for cid, c in cands.items():
        rs = by_cand.get(cid, [])
        v = ",".join(r.get("verdict", "") for r in rs) or "duplicate/not evaluated"
        sp = f"{speedups[cid]:.3f}x" if speedups.get(cid) else "-"
        md.append(f"| {cid} | {_cell(c.proposer.get('model', ''))} | {len(rs)} | {sp} | {v} | "
                  f"{_cell(c.plan_step[:80])} |")
    md += ["", "## Failure reasons", ""]
    md += [f"- {n} x {reason}" for reason, n in failures.most_common()] or ["- none"]
    (run_dir / "report.md").write_text("\n".join(md) + "\n")
    (run_dir / "report.html").write_text(render_html(run_id, "\n".join(md), _svg_curve(curve),
                                                     _svg_lineage(g, best, speedups), _best_code(cands, best)))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _cell(text: str) -> str:
    """Text for a markdown table cell: a model's '|' or newline must not split the row."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _best_code(cands: dict, best: str | None) -> tuple[str, str] | None:
    """(the best solution's code, its unified diff against the reference), or None without one."""
    if not best:
        return None
    code = cands[best].code
    ref = next((c for c in cands.values() if not c.parent_ids), None)
    if ref is None or ref.id == best:
        return code, ""
    diff = difflib.unified_diff(ref.code.splitlines(keepends=True), code.splitlines(keepends=True),
                                "reference", f"best ({best})")
    return code, "".join(diff)


CSS = ("body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;padding:0 1em}"
       "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}"
       "pre{background:#f6f8fa;padding:8px;overflow:auto}.add{background:#e6ffec}.del{background:#ffebe9}")


def render_html(run_id: str, markdown: str, curve_svg: str, lineage_svg: str,
                best_code: tuple[str, str] | None) -> str:
    """The page: the markdown rendered (tables as tables), the plots that have data, the code."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>kopt run {html.escape(run_id)}</title>"
             f"<style>{CSS}</style></head><body>", md.render(markdown)]
    if curve_svg:
        parts.append(f"<h2>Best verified speedup over evaluations (plot)</h2>{curve_svg}")
    if lineage_svg:
        parts.append(f"<h2>Lineage (plot)</h2>{lineage_svg}")
    if best_code:
        code, diff = best_code
        parts.append(f"<h2>Best solution</h2><pre><code>{html.escape(code)}</code></pre>")
        if diff:
            lines = [f"<span class='{_diff_class(line)}'>{html.escape(line)}</span>" for line in diff.splitlines(True)]
            parts.append(f"<h2>Diff against the reference</h2><pre class='diff'><code>{''.join(lines)}</code></pre>")
    parts.append("</body></html>")
    return "".join(parts)


def _diff_class(line: str) -> str:
    if line.startswith("+") and not line.startswith("+++"):
        return "add"
    if line.startswith("-") and not line.startswith("---"):
        return "del"
    return "ctx"
