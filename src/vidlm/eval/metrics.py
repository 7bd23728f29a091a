"""Metrics from prediction records: accuracy overall, by category, and the headline score.

Denominators always hold every item. An item whose video was missing or unreadable
(a *failure*) or whose reply gave no letter (*no answer*) counts as wrong; both are
also counted separately, and the two lenient accuracies that some toolkits report
(failures left out; unanswered left out, as lmms-eval's MVBench does) are given
beside the strict one, never instead of it. Accuracies are percentages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from vidlm.eval.items import EvalItem


def _pct(num: int, den: int) -> float | None:
    return round(100.0 * num / den, 4) if den else None


def _group(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    correct = sum(bool(r.get("correct")) for r in records)
    failed = sum(r.get("failure") is not None for r in records)
    answered = sum(bool(r.get("extracted")) for r in records)
    return {"n": n, "correct": correct, "accuracy": _pct(correct, n), "failed": failed,
            "no_answer": n - failed - answered}


def latest_records(items: Sequence[EvalItem], records: Iterable[dict[str, Any]]
                   ) -> list[dict[str, Any]]:
    """The last record per item id, in item order (an item never answered is absent)."""
    last: dict[str, dict[str, Any]] = {}
    for rec in records:
        last[str(rec["id"])] = rec
    return [last[it.id] for it in items if it.id in last]


def _order_key(value: str, known: Sequence[str]) -> tuple[int, float, str]:
    """Known order first (e.g. short, medium, long), then numbers by value, then text."""
    if value in known:
        return (0, float(list(known).index(value)), "")
    try:
        return (1, float(value), "")
    except ValueError:
        return (2, 0.0, value)


def compute_metrics(items: Sequence[EvalItem], records: Iterable[dict[str, Any]], *,
                    report_by: Sequence[str], headline: str,
                    order: dict[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """``items`` define the denominator; ``records`` are prediction rows (see runner).
    ``order``: per category field, the order its values are listed in."""
    recs = latest_records(items, records)
    overall = _group(recs)
    failures_by_kind: dict[str, int] = defaultdict(int)
    for r in recs:
        if r.get("failure") is not None:
            failures_by_kind[r["failure"]["kind"]] += 1
    by: dict[str, dict[str, Any]] = {}
    for name in report_by:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in recs:
            groups[str(r.get("categories", {}).get(name, ""))].append(r)
        ordered = sorted(groups, key=lambda v, n=name: _order_key(v, (order or {}).get(n, ())))
        by[name] = {value: _group(groups[value]) for value in ordered}
    answered = overall["n"] - overall["failed"] - overall["no_answer"]
    metrics: dict[str, Any] = {
        "accuracy": overall["accuracy"],
        "counts": {
            "items": len(items), "scored": overall["n"], "not_scored": len(items) - overall["n"],
            "correct": overall["correct"], "failed": overall["failed"],
            "no_answer": overall["no_answer"], "failures_by_kind": dict(failures_by_kind),
        },
        "accuracy_excluding_failures": _pct(overall["correct"], overall["n"] - overall["failed"]),
        "accuracy_answered_only": _pct(overall["correct"], answered),
        "by": by,
    }
    metrics["headline"] = _headline(metrics, report_by, headline)
    return metrics


def _headline(metrics: dict[str, Any], report_by: Sequence[str], kind: str) -> dict[str, Any]:
    if kind == "mean_of_category_accuracies" and report_by:
        field = report_by[0]
        accs = [g["accuracy"] for g in metrics["by"][field].values() if g["accuracy"] is not None]
        value = round(sum(accs) / len(accs), 4) if accs else None
        return {"name": f"mean accuracy over {field}", "value": value, "over": len(accs)}
    return {"name": "accuracy", "value": metrics["accuracy"]}
