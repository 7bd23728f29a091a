"""Human-readable outputs of an evaluation: a text table and a PNG bar chart."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:6.2f}"


def format_table(benchmark: str, metrics: dict[str, Any]) -> str:
    """Accuracy overall and per category value, with counts of failures and no-answers."""
    c = metrics["counts"]
    head = metrics["headline"]
    lines = [f"{benchmark}: {head['name']} = {_acc(head['value']).strip()} "
             f"({c['correct']}/{c['scored']} correct; {c['failed']} failed videos, "
             f"{c['no_answer']} without an answer letter)"]
    if c["not_scored"]:
        lines.append(f"  note: {c['not_scored']} of {c['items']} items are not scored yet")
    rows = [("overall", "", c["scored"], metrics["accuracy"], c["failed"], c["no_answer"])]
    for field, groups in metrics["by"].items():
        for value, g in groups.items():
            rows.append((field, value or "(none)", g["n"], g["accuracy"], g["failed"],
                         g["no_answer"]))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(max(len(str(r[1])) for r in rows), len("value"))
    lines.append(f"  {'field':<{w0}}  {'value':<{w1}}  {'n':>6}  {'acc %':>6}  "
                 f"{'failed':>6}  {'no ans':>6}")
    for field, value, n, acc, failed, no_answer in rows:
        lines.append(f"  {field:<{w0}}  {value!s:<{w1}}  {n:>6}  {_acc(acc)}  "
                     f"{failed:>6}  {no_answer:>6}")
    return "\n".join(lines)


def bar_chart(benchmark: str, metrics: dict[str, Any], field: str | None, path: Path) -> Path:
    """A PNG of accuracy per value of ``field`` (or overall only), with the overall line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = metrics["by"].get(field, {}) if field else {}
    labels = [v or "(none)" for v in groups] or ["overall"]
    values = [g["accuracy"] or 0.0 for g in groups.values()] or [metrics["accuracy"] or 0.0]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(labels) + 2), 3.6), dpi=100)
    counts = [g["n"] for g in groups.values()] or [metrics["counts"]["scored"]]
    bars = ax.bar(range(len(labels)), values, color="#4477aa")
    ax.bar_label(bars, labels=[f"{v:.1f}\nn={n}" for v, n in zip(values, counts, strict=True)],
                 fontsize=8)
    ax.axhline(metrics["accuracy"] or 0.0, color="#cc6677", linestyle="--", label="overall")
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 4 else 0, ha="right")
    ax.set_ylim(0, 115)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{benchmark}: accuracy by {field}" if groups else f"{benchmark}: accuracy")
    ax.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
