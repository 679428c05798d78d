#!/usr/bin/env python3
"""Splits a few-shot run's ranking into pairs inside one leaf and pairs across leaves.

    python3 benchmarks/nb201-table-d/within_leaf.py runs/study-d-e100 --criteria gm,random --seeds 0,1,2

A few-shot supernet ranks two kinds of pairs of architectures: pairs that one leaf (one
sub-supernet) evaluates, and pairs that two different leaves evaluate, whose predictions come
from differently trained weights. The paper's argument is about the first kind: a leaf has
fewer paths interfering with each other, so it should order its own architectures better.
This script scores both kinds, and the one-shot run of the same seed (`none-seed<k>`) on
exactly the same pairs, from the `ranking.json` files that `splitnas compare --table` /
`splitnas bench ranking` leave in each run directory. The score is Kendall's τ-a over the
pairs: (concordant − discordant) / pairs, ties in either ranking counting as neither.
Plain Python, no packages.
"""
import argparse
import json
import sys
from itertools import combinations
from pathlib import Path

METHODS = ("running", "recalibrated")  # the order of `predicted` in ranking.json


def load_scores(run_dir):
    path = run_dir / "ranking.json"
    try:
        ranking = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        sys.exit(f"{path}: {error} (score the run first: splitnas bench ranking {run_dir} --table ...)")
    methods = [m["method"] for m in ranking["methods"]]
    if tuple(methods) != METHODS:
        sys.exit(f"{path}: methods {methods}, expected {list(METHODS)}")
    return ranking["table"], {s["genotype"]: s for s in ranking["scores"]}


def pair_tau(pairs, scores, method):
    concordant = discordant = 0
    for a, b in pairs:
        truth = scores[a]["truth"] - scores[b]["truth"]
        predicted = scores[a]["predicted"][method] - scores[b]["predicted"][method]
        if truth * predicted > 0:
            concordant += 1
        elif truth * predicted < 0:
            discordant += 1
    return (concordant - discordant) / len(pairs) if pairs else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir", type=Path, help="a `splitnas compare --output-dir`")
    parser.add_argument("--criteria", default="gm,random")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    print("| criterion | seed | leaves | pairs within / across leaves "
          "| BN | τ within: split | within: one-shot | τ across: split | across: one-shot |")
    print("|---|---|---|---|---|---|---|---|---|")
    seeds = args.seeds.split(",")
    tables = set()
    for criterion in args.criteria.split(","):
        sums = {name: [0.0] * 4 for name in METHODS}
        for seed in seeds:
            table, split = load_scores(args.output_dir / f"{criterion}-seed{seed}")
            one_shot_table, one_shot = load_scores(args.output_dir / f"none-seed{seed}")
            if table != one_shot_table or split.keys() != one_shot.keys():
                sys.exit(f"{criterion}-seed{seed} and none-seed{seed} were scored against different tables")
            within, across = [], []
            for a, b in combinations(sorted(split), 2):
                (within if split[a]["leaf"] == split[b]["leaf"] else across).append((a, b))
            leaves = len({s["leaf"] for s in split.values()})
            tables.add(table)
            for method, name in enumerate(METHODS):
                # within: split, one-shot; across: split, one-shot (the columns' order)
                taus = [pair_tau(pairs, scores, method)
                        for pairs in (within, across) for scores in (split, one_shot)]
                sums[name] = [total + tau for total, tau in zip(sums[name], taus)]
                print(f"| {criterion} | {seed} | {leaves} | {len(within)} / {len(across)} | {name} | "
                      + " | ".join(f"{tau:+.3f}" for tau in taus) + " |")
        for name in METHODS:
            print(f"| **{criterion}** | **mean of {len(seeds)}** | | | {name} | "
                  + " | ".join(f"**{total / len(seeds):+.3f}**" for total in sums[name]) + " |")
    print(f"\nScored against: {', '.join(sorted(tables))}")


if __name__ == "__main__":
    main()
