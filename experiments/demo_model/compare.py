"""Paired comparison of demo-model variants on the same held-out clips.

    python experiments/demo_model/compare.py \
        experiments/demo_model/results/test_slowfast_2026-12-02.json \
        experiments/demo_model/results/test_uniform_2026-12-03.json \
        --baseline slowfast [--json outputs/paired.json]

Reads ``run.py --json`` files, pairs every variant's replies with the baseline's by clip
id, and counts per question family (and overall) the clips only the baseline gets right
and the clips only the other variant gets right. The p-value is the exact two-sided sign
test on those discordant clips (McNemar's exact test): how often a coin flip would split
them at least this unevenly if both variants were equally accurate.
"""

from __future__ import annotations

import argparse
import json
from math import comb
from pathlib import Path
from typing import Any


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p-value of a ``wins``:``losses`` split under p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def replies_by_variant(paths: list[Path]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{variant: {clip id: row}}`` from one or more ``run.py`` JSON files."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for path in paths:
        for row in json.loads(path.read_text())["rows"]:
            out.setdefault(row["variant"], {})[row["id"]] = row
    return out


def paired(base: dict[str, dict[str, Any]], other: dict[str, dict[str, Any]]
           ) -> dict[str, dict[str, Any]]:
    """Per group: clips, accuracy of each, clips only one gets right, and the p-value."""
    shared = sorted(base.keys() & other.keys())
    if not shared:
        raise ValueError("the two variants share no clip ids: were they run on one split?")
    result = {}
    for group in ["all", *sorted({base[i]["family"] for i in shared})]:
        ids = [i for i in shared if group == "all" or base[i]["family"] == group]
        only_base = sum(base[i]["correct"] and not other[i]["correct"] for i in ids)
        only_other = sum(other[i]["correct"] and not base[i]["correct"] for i in ids)
        result[group] = {
            "n": len(ids),
            "baseline": sum(base[i]["correct"] for i in ids) / len(ids),
            "other": sum(other[i]["correct"] for i in ids) / len(ids),
            "only_baseline": only_base, "only_other": only_other,
            "p": sign_test(only_base, only_other)}
    return result


def markdown(baseline: str, table: dict[str, dict[str, dict[str, Any]]]) -> str:
    lines = [f"| variant vs {baseline} | family | n | {baseline} | variant "
             f"| only {baseline} right | only variant right | sign test p |",
             "|---|---|---|---|---|---|---|---|"]
    for name, groups in table.items():
        for group, g in groups.items():
            lines.append(f"| {name} | {group} | {g['n']} | {g['baseline']:.3f} | "
                         f"{g['other']:.3f} | {g['only_baseline']} | {g['only_other']} | "
                         f"{g['p']:.3g} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", type=Path, help="run.py --json files")
    parser.add_argument("--baseline", default="slowfast")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    replies = replies_by_variant(args.results)
    if args.baseline not in replies:
        parser.error(f"--baseline {args.baseline!r} is not among {sorted(replies)}")
    table = {name: paired(replies[args.baseline], rows)
             for name, rows in replies.items() if name != args.baseline}
    print(markdown(args.baseline, table))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"baseline": args.baseline, "paired": table},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
