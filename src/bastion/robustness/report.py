"""Reports of an evaluation: JSON for machines, one self-contained HTML page for people.

The page holds the verdict, the accuracy-versus-ε curves (one plot per norm, one line per
attack, the worst case in bold) as embedded PNG, and the table of every figure.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

from bastion.robustness.evaluation import Evaluation
from bastion.robustness.threat import Norm

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }
table { border-collapse: collapse; }
td, th { padding: .25rem .75rem; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .warn { color: #a15c00; }
"""


def write_report(evaluation: Evaluation, directory: Path) -> tuple[Path, Path]:
    """Write ``robustness.json`` and ``robustness.html`` into ``directory``; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, html_path = directory / "robustness.json", directory / "robustness.html"
    json_path.write_text(json.dumps(evaluation.to_json(), indent=2) + "\n")
    html_path.write_text(render_html(evaluation))
    return json_path, html_path


def render_html(evaluation: Evaluation) -> str:
    """The report as one HTML page with its plots inline."""
    e = html.escape
    verdict = "".join(
        f'<li class="{"warn" if _is_warning(line) else ""}">{e(line)}</li>'
        for line in evaluation.verdict
    )
    plots = "".join(
        f'<img alt="accuracy against epsilon, {norm}" '
        f'src="data:image/png;base64,{_plot(evaluation, norm)}">'
        for norm in ("linf", "l2")
        if evaluation.budgets(norm)
    )
    rows = "".join(
        f"<tr><td>{e(p.attack)}</td><td>{_norm_label(p.norm)}</td><td class=n>{p.epsilon:g}</td>"
        f"<td class=n>{p.robust_accuracy:.1%}</td><td class=n>{p.queries or ''}</td></tr>"
        for p in evaluation.points
    )
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f"<title>Robustness of {e(evaluation.model)}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>Robustness of {e(evaluation.model)}</h1>"
        f"<p>Data: {e(evaluation.dataset)}, {evaluation.samples} inputs; "
        f"{'white box and black box' if evaluation.white_box else 'black box only'}.</p>"
        f"<h2>Verdict</h2><ul>{verdict}</ul><h2>Accuracy against ε</h2>{plots}"
        "<h2>Every figure</h2><table><tr><th>attack</th><th>norm</th><th>ε</th>"
        f"<th>robust accuracy</th><th>queries</th></tr>{rows}</table></body></html>\n"
    )


def _plot(evaluation: Evaluation, norm: Norm) -> str:
    from matplotlib.figure import Figure  # noqa: PLC0415 - optional extra, loaded on use

    figure = Figure(figsize=(6, 3.5), dpi=100)
    axes = figure.add_subplot()
    budgets = [0.0, *evaluation.budgets(norm)]
    for attack in dict.fromkeys(p.attack for p in evaluation.points if p.norm == norm):
        at = {
            p.epsilon: p.robust_accuracy
            for p in evaluation.points
            if p.norm == norm and p.attack == attack
        }
        xs = [0.0, *sorted(at)]
        axes.plot(
            xs,
            [evaluation.clean_accuracy, *(at[x] for x in xs[1:])],
            marker="o",
            label=attack,
            alpha=0.7,
        )
    worst = [evaluation.clean_accuracy, *(evaluation.worst(norm, b) for b in budgets[1:])]
    axes.plot(budgets, worst, color="black", linewidth=2.5, label="worst case")
    axes.set(xlabel=f"ε ({_norm_label(norm)})", ylabel="accuracy", ylim=(0, 1.02))
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode()


def _norm_label(norm: Norm) -> str:
    return "L∞" if norm == "linf" else "L2"


def _is_warning(line: str) -> bool:
    return line.startswith(("Gradient masking", "Accuracy rises", "Not robust", "Black box"))
