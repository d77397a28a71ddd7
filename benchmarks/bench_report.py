"""A bench's report.md (tables) and report.html (the same tables plus plots: speedup per
task, fast_p over p, cost vs speedup), and the side-by-side comparison of two runs.

The HTML is one self-contained file: plots are matplotlib SVG inlined in the page, so it
opens from disk, mails and archives. Matplotlib is optional (`kopt[report]`); without it
the page still has every table and says how to get the plots.
"""
from __future__ import annotations

import html
import io
import time
from pathlib import Path

from kopt.agent.errors import UserInputError
from kopt.agent.proposers.factory import model_label
from kopt.agent.runs.store import STORE_FILE
from kopt.benchmarks.bench_results import BENCH_FILE, load_bench, load_results, result_from_store, write_json
from kopt.benchmarks.fastp import (
    FAILURE_KINDS,
    PS,
    baseline_results,
    by_level,
    fast_p_curve,
    metrics,
    never_slower_results,
)

PLOTS_MISSING = "plots need matplotlib: pip install 'kopt[report]'"


# -- numbers to text ---------------------------------------------------------------------------------

def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v else "-"


def _pct(v: float | None) -> str:
    return f"{100 * v:.0f}%" if v is not None else "-"


def _money(v: float | None) -> str:
    return f"${v:.4f}" if v else "$0"


def _sizes(r: dict) -> str:
    fit = r.get("fit") or {}
    sizes = fit.get("sizes") or {}
    return ", ".join(f"{k} {a}->{b}" for k, (a, b) in sizes.items()) or ("as written" if fit else "not fitted")


def _outcome(r: dict) -> str:
    if r.get("status") in ("skipped", "error", "pending"):
        return r["status"]
    return r.get("verdict") or "nothing proposed"


def _reason(r: dict) -> str:
    text = r.get("reason") or ""
    if r.get("degenerate"):
        text = f"degenerate task: {r.get('degenerate_reason') or ''}; " + text
    return text.replace("|", "/").replace("\n", " ")[:160]


def _compile(r: dict) -> str:
    b = (r.get("baselines") or {}).get("compile")
    if b is None:
        return "not run"
    if b.get("skipped"):
        return "skipped"
    return _x(b.get("speedup")) if b.get("correct") else "incorrect"


def _compile_ran(results: list[dict]) -> bool:
    return any(not b.get("skipped") for r in results if (b := (r.get("baselines") or {}).get("compile")))


# -- tables ---------------------------------------------------------------------------------------------

def summary_rows(results: list[dict], include_degenerate: bool = False) -> list[list[str]]:
    """One row per level (and "all") for the model, and for torch.compile when it ran."""
    header = ["solutions", "level", "tasks", "skipped", "degenerate excluded", "correct"] + \
        [f"fast_{p:g}" for p in PS[1:]] + ["geomean speedup", "evaluations", "tokens", "cost"]
    rows = [header]
    sources = [("model", results), ("model, never slower", never_slower_results(results))]
    if _compile_ran(results):
        sources.append(("torch.compile", baseline_results(results, "compile")))
    for label, rs in sources:
        levels = by_level(rs, include_degenerate=include_degenerate)
        if len(levels) == 2:
            levels.pop("all")  # one level: its row is the total
        for level, m in levels.items():
            rows.append([label, level, str(m["tasks"]), str(m["skipped"]), str(m["degenerate_excluded"]),
                         _pct(m["correct_rate"])] + [_pct(m["fast_p"][f"{p:g}"]) for p in PS[1:]] +
                        [_x(m["geomean_speedup"]), str(m["evaluations"]) if label == "model" else "-",
                         str(m["tokens"]) if label == "model" else "-", _money(m["cost"]) if label == "model" else "-"])
    return rows


def task_rows(results: list[dict]) -> list[list[str]]:
    rows = [["task", "level", "sizes used", "outcome", "speedup", "torch.compile", "eager ms", "evals", "tokens",
             "cost", "reason"]]
    for r in results:
        eager = ((r.get("baselines") or {}).get("eager") or r.get("eager") or {}).get("ms")
        rows.append([r.get("id", r.get("name", "?")), str(r.get("level") if r.get("level") is not None else "-"),
                     _sizes(r), _outcome(r), _x(r.get("speedup")) if r.get("correct") else "-", _compile(r),
                     f"{eager:.3f}" if eager else "-", str(r.get("evaluations") or 0), str(r.get("tokens") or 0),
                     _money(r.get("cost")), _reason(r)])
    return rows


def failure_rows(results: list[dict]) -> list[list[str]]:
    m = metrics(results, include_degenerate=True)
    return [list(FAILURE_KINDS), [str(m["failures"][k]) for k in FAILURE_KINDS]]


def md_table(rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows[1:]]
    return out


def html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


# -- plots ------------------------------------------------------------------------------------------------

def _figure(w: float = 7.5, h: float = 3.4):
    """A matplotlib Figure without pyplot (no global state, no display), or None."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure(figsize=(w, h), layout="constrained")


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def plot_speedups(results: list[dict]) -> str | None:
    fig = _figure(max(6.0, 0.45 * len(results) + 2), 3.6)
    if fig is None:
        return None
    ax = fig.add_subplot()
    names = [r.get("id", "?") for r in results]
    xs = range(len(results))
    vals = [r["speedup"] if r.get("correct") and r.get("speedup") else 0 for r in results]
    colours = ["#2a9d5c" if (v or 0) > 1 else "#e0a030" if v else "#cccccc" for v in vals]
    ax.bar(xs, [v or 0 for v in vals], color=colours, label="kopt (verified)")
    comp = [((r.get("baselines") or {}).get("compile") or {}) for r in results]
    cx = [i for i, c in enumerate(comp) if c.get("correct") and c.get("speedup")]
    if cx:
        ax.scatter(cx, [comp[i]["speedup"] for i in cx], marker="D", color="#3060c0", zorder=3, label="torch.compile")
    failed = [i for i, v in enumerate(vals) if not v]
    if failed:
        ax.scatter(failed, [0.02] * len(failed), marker="x", color="#c03030", zorder=3,
                   label="no verified solution / skipped")
    ax.axhline(1.0, color="#555", linestyle="--", linewidth=1)
    ax.set_xticks(list(xs), names, rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("speedup over eager (x)")
    ax.set_title("Verified speedup per task")
    ax.legend(fontsize=7, loc="upper right")
    return _svg(fig)


def plot_fastp(curves: dict[str, list[tuple[float, float]]], title: str = "fast_p over p") -> str | None:
    fig = _figure(6.0, 3.4)
    if fig is None:
        return None
    ax = fig.add_subplot()
    for label, pts in curves.items():
        if pts:
            ax.step([p for p, _ in pts], [f for _, f in pts], where="post", label=label)
    ax.axvline(1.0, color="#999", linestyle=":", linewidth=1)
    ax.set_xlabel("p (speedup threshold)")
    ax.set_ylabel("fast_p (fraction of tasks)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _svg(fig)


def plot_cost(results: list[dict]) -> str | None:
    fig = _figure(6.0, 3.4)
    if fig is None:
        return None
    ax = fig.add_subplot()
    ran = [r for r in results if r.get("status") == "done"]
    if any(r.get("cost") for r in ran):
        key, label = "cost", "dollars per task"
    elif any(r.get("tokens") for r in ran):
        key, label = "tokens", "tokens per task"
    else:
        key, label = "evaluations", "evaluations per task (no LLM cost)"
    ok = [r for r in ran if r.get("correct") and r.get("speedup")]
    bad = [r for r in ran if r not in ok]
    ax.scatter([r.get(key) or 0 for r in ok], [r["speedup"] for r in ok], color="#2a9d5c", label="verified")
    ax.scatter([r.get(key) or 0 for r in bad], [0] * len(bad), marker="x", color="#c03030", label="not verified")
    for r in ok:
        ax.annotate(r.get("name", ""), (r.get(key) or 0, r["speedup"]), fontsize=6, alpha=0.7)
    ax.axhline(1.0, color="#555", linestyle="--", linewidth=1)
    ax.set_xlabel(label)
    ax.set_ylabel("speedup (x)")
    ax.set_title("Cost vs speedup")
    ax.legend(fontsize=8)
    return _svg(fig)


# -- the bench report ----------------------------------------------------------------------------------

CSS = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
       "margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left}"
       "th{background:#f2f2f2}.note{color:#666}svg{max-width:100%;height:auto}")


def _header(info: dict, results: list[dict]) -> list[str]:
    cfg = info["config"]
    done = sum(1 for r in results if r.get("status") != "pending")
    return [f"- suite: `{cfg['suite']}`" + (f" (level {cfg['level']})" if cfg.get("level") else "") +
            (f", tasks {cfg['tasks']}" if cfg.get("tasks") else ""),
            f"- proposer: {model_label(cfg['model'])}",
            f"- budget per task: {cfg['budget']} evaluation(s)" + (" (one-shot)" if cfg["budget"] == 1 else ""),
            f"- sizes: --fit {cfg['fit']}; device {cfg['device']}; jobs {cfg['jobs']} ({cfg['executor']})",
            f"- baselines: {', '.join(cfg['baselines']) or 'none'}",
            f"- tasks finished: {done} of {len(results)}",
            "- fast_p: fraction of tasks with a verified solution more than p x faster than eager; "
            "fast_0 is the correctness rate" + ("" if cfg.get("include_degenerate") else
                                                 "; degenerate tasks excluded")]


def write_bench_report(bench_dir: Path) -> dict:
    """(Re)write report.md, report.html and summary.json of a bench from its task results."""

    info = load_bench(bench_dir)
    results = load_results(bench_dir, info)
    include_deg = bool(info["config"].get("include_degenerate"))
    finished = [r for r in results if r.get("status") != "pending"]
    summary = {"bench_dir": str(bench_dir), "model": info["config"]["model"], "budget": info["config"]["budget"],
               "finished": len(finished), "total": len(results),
               "metrics": by_level(finished, include_degenerate=include_deg),
               "tasks": [{k: r.get(k) for k in ("id", "level", "status", "verdict", "correct", "speedup",
                                                "degenerate", "evaluations", "tokens", "cost", "reason")}
                         for r in results]}
    summary["never_slower_metrics"] = by_level(never_slower_results(finished), include_degenerate=include_deg)
    if _compile_ran(finished):
        summary["compile_metrics"] = by_level(baseline_results(finished, "compile"), include_degenerate=include_deg)
    name = f"kopt bench {Path(info['config']['suite']).name}"
    head = _header(info, results)
    srows, trows, frows = summary_rows(finished, include_deg), task_rows(results), failure_rows(finished)
    md = [f"# {name}", "", *head, "", "## Summary", "", *md_table(srows), "", "## Tasks", "", *md_table(trows), "",
          "## Failure reasons (evaluations of proposed candidates)", "", *md_table(frows), ""]
    (bench_dir / "report.md").write_text("\n".join(md))
    curves = {"kopt": fast_p_curve(finished, include_degenerate=include_deg)}
    if "compile_metrics" in summary:
        curves["torch.compile"] = fast_p_curve(baseline_results(finished, "compile"), include_degenerate=include_deg)
    plots = [plot_speedups(finished), plot_fastp(curves), plot_cost(finished)]
    figures = "".join(f"<figure>{p}</figure>" for p in plots if p) if plots[0] is not None else \
        f"<p class='note'>{html.escape(PLOTS_MISSING)}</p>"
    head_html = "".join(f"<li>{html.escape(line[2:])}</li>" for line in head)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
            f"<style>{CSS}</style></head><body><h1>{html.escape(name)}</h1><ul>{head_html}</ul>"
            f"<h2>Summary</h2>{html_table(srows)}<h2>Plots</h2>{figures}<h2>Tasks</h2>{html_table(trows)}"
            f"<h2>Failure reasons</h2>{html_table(frows)}"
            f"<p class='note'>written {time.strftime('%Y-%m-%d %H:%M:%S')}</p></body></html>")
    (bench_dir / "report.html").write_text(page)
    write_json(bench_dir / "summary.json", summary)
    return summary


# -- comparing two runs ----------------------------------------------------------------------------------

def run_results(run: Path) -> tuple[str, list[dict]]:
    """(label, task results) of a bench directory, or of a single `kopt optimize` run."""
    if (run / BENCH_FILE).exists():
        info = load_bench(run)
        return f"{run.name} ({info['config']['model']})", [r for r in load_results(run, info)]
    if (run / STORE_FILE).exists():
        rec = result_from_store(run)
        task = {"id": run.name, "name": run.name, "level": None, "status": "done", **rec}
        return f"{run.name} ({rec.get('model') or '?'})", [task]

    raise UserInputError(f"{run} is neither a bench nor a run directory (no bench.json or run.sqlite)")


def compare(a: Path, b: Path, out: Path | None = None) -> dict:
    """Side-by-side rows for two runs and, when matplotlib is there, a comparison plot."""
    la, ra = run_results(a)
    lb, rb = run_results(b)
    by_a = {r.get("id"): r for r in ra}
    by_b = {r.get("id"): r for r in rb}
    ids = list(dict.fromkeys([*by_a, *by_b]))
    rows = [["task", f"A: {la}", f"B: {lb}", "B / A"]]
    for i in ids:
        x, y = by_a.get(i, {}), by_b.get(i, {})
        sx = x.get("speedup") if x.get("correct") else None
        sy = y.get("speedup") if y.get("correct") else None
        cell = lambda r, s: _x(s) if s else (_outcome(r) if r else "absent")  # noqa: E731
        rows.append([str(i), cell(x, sx), cell(y, sy), f"{sy / sx:.2f}" if sx and sy else "-"])
    ma = metrics([r for r in ra if r.get("status") != "pending"])
    mb = metrics([r for r in rb if r.get("status") != "pending"])
    totals = [["metric", "A", "B"], ["tasks scored", str(ma["scored"]), str(mb["scored"])],
              ["correct", _pct(ma["correct_rate"]), _pct(mb["correct_rate"])]]
    totals += [[f"fast_{p:g}", _pct(ma["fast_p"][f"{p:g}"]), _pct(mb["fast_p"][f"{p:g}"])] for p in PS[1:]]
    totals += [["geomean speedup", _x(ma["geomean_speedup"]), _x(mb["geomean_speedup"])],
               ["evaluations", str(ma["evaluations"]), str(mb["evaluations"])],
               ["tokens", str(ma["tokens"]), str(mb["tokens"])], ["cost", _money(ma["cost"]), _money(mb["cost"])]]
    plot = _compare_plot(ids, by_a, by_b, la, lb, ra, rb)
    written = None
    if out is not None:
        body = plot or f"<p class='note'>{html.escape(PLOTS_MISSING)}</p>"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>kopt compare</title>"
                       f"<style>{CSS}</style></head><body><h1>A: {html.escape(la)} vs B: {html.escape(lb)}</h1>"
                       f"{html_table(totals)}<figure>{body}</figure>{html_table(rows)}</body></html>")
        written = str(out)
    return {"a": la, "b": lb, "rows": rows, "totals": totals, "metrics": {"a": ma, "b": mb}, "plot": written}


def _compare_plot(ids, by_a, by_b, la, lb, ra, rb) -> str | None:
    fig = _figure(max(7.0, 0.5 * len(ids) + 4), 3.6)
    if fig is None:
        return None
    ax, ax2 = fig.subplots(1, 2, width_ratios=[2, 1])
    xs = list(range(len(ids)))
    sp = lambda r: (r.get("speedup") or 0) if r.get("correct") else 0  # noqa: E731
    ax.bar([x - 0.2 for x in xs], [sp(by_a.get(i, {})) for i in ids], width=0.4, label=f"A: {la}")
    ax.bar([x + 0.2 for x in xs], [sp(by_b.get(i, {})) for i in ids], width=0.4, label=f"B: {lb}")
    ax.axhline(1.0, color="#555", linestyle="--", linewidth=1)
    ax.set_xticks(xs, [str(i) for i in ids], rotation=40, ha="right", fontsize=7)
    ax.set_ylabel("verified speedup (x)")
    ax.legend(fontsize=7)
    for label, rs in (("A", ra), ("B", rb)):
        pts = fast_p_curve([r for r in rs if r.get("status") != "pending"])
        if pts:
            ax2.step([p for p, _ in pts], [f for _, f in pts], where="post", label=label)
    ax2.set_xlabel("p")
    ax2.set_ylabel("fast_p")
    ax2.set_ylim(-0.02, 1.02)
    ax2.legend(fontsize=7)
    return _svg(fig)
