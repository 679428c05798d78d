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

A second table tests one explanation of a loss across leaves: that each leaf predicts on its
own scale. Per leaf, its offset is the mean predicted accuracy minus the mean true accuracy
of the table architectures it evaluates, for the split run and for the one-shot run on the
same architectures. How much the offsets matter depends on how widely the predictions spread
inside a leaf, so the table gives their ratio: the standard deviation of a run's leaf offsets
over the mean standard deviation of its predictions inside a leaf. "τ across, offsets
removed" subtracts each leaf's offset before scoring the pairs across leaves: a diagnostic
that uses the ground truth, not a method, and for the one-shot run it removes the same
groups' offsets, so both columns get the same help. The last two columns are a method that needs no ground truth: each leaf's
predictions standardized (minus their mean, over their standard deviation) before all pairs
are ranked, which puts the leaves on a common scale if they hold equally good architectures.
Plain Python, no packages.
"""
import argparse
import json
import sys
from itertools import combinations
from pathlib import Path
from statistics import mean, pstdev

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


def leaf_offsets(scores, leaf_of, method):
    """Mean predicted minus mean true accuracy per leaf, over the architectures it holds."""
    sums = {}
    for genotype, score in scores.items():
        total = sums.setdefault(leaf_of[genotype], [0.0, 0.0, 0])
        total[0] += score["predicted"][method]
        total[1] += score["truth"]
        total[2] += 1
    return {leaf: (predicted - truth) / count for leaf, (predicted, truth, count) in sums.items()}


def offset_ratio(scores, leaf_of, method):
    """Spread of the leaf offsets relative to the spread of predictions inside a leaf."""
    offsets = leaf_offsets(scores, leaf_of, method)
    inside = [pstdev([score["predicted"][method] for genotype, score in scores.items()
                      if leaf_of[genotype] == leaf]) for leaf in offsets]
    return pstdev(offsets.values()) / mean(inside)


def with_predictions(scores, method, predict):
    """A copy of `scores` whose predictions for `method` are `predict(genotype, prediction)`."""
    result = {}
    for genotype, score in scores.items():
        predicted = list(score["predicted"])
        predicted[method] = predict(genotype, predicted[method])
        result[genotype] = {**score, "predicted": predicted}
    return result


def without_offsets(scores, leaf_of, method):
    offsets = leaf_offsets(scores, leaf_of, method)
    return with_predictions(scores, method, lambda genotype, value: value - offsets[leaf_of[genotype]])


def standardized(scores, leaf_of, method):
    """Each leaf's predictions as z-scores inside that leaf."""
    by_leaf = {}
    for genotype, score in scores.items():
        by_leaf.setdefault(leaf_of[genotype], []).append(score["predicted"][method])
    moments = {leaf: (mean(values), pstdev(values)) for leaf, values in by_leaf.items()}

    def z_score(genotype, value):
        centre, spread = moments[leaf_of[genotype]]
        return (value - centre) / spread if spread > 0 else 0.0

    return with_predictions(scores, method, z_score)


def offsets_report(runs, seeds):
    """`runs`: per criterion, the (seed, split, one-shot, pairs across leaves) that main loaded."""
    method = METHODS.index("recalibrated")
    print("\n| criterion | seed | leaf offsets: split | the same groups: one-shot "
          "| offsets / spread inside: split | one-shot | τ across, offsets removed: split | one-shot "
          "| τ all pairs, leaves standardized: split | one-shot |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for criterion, criterion_runs in runs.items():
        sums = [0.0] * 6
        for seed, split, one_shot, across in criterion_runs:
            leaf_of = {genotype: score["leaf"] for genotype, score in split.items()}
            row = []
            for scores in (split, one_shot):
                offsets = leaf_offsets(scores, leaf_of, method)
                row.append(" ".join(f"{offsets[leaf]:+.3f}" for leaf in sorted(offsets)))
            ratios = [offset_ratio(scores, leaf_of, method) for scores in (split, one_shot)]
            taus = [pair_tau(across, without_offsets(scores, leaf_of, method), method)
                    for scores in (split, one_shot)]
            everything = list(combinations(sorted(split), 2))
            common_scale = [pair_tau(everything, standardized(scores, leaf_of, method), method)
                            for scores in (split, one_shot)]
            values = ratios + taus + common_scale
            sums = [total + value for total, value in zip(sums, values)]
            print(f"| {criterion} | {seed} | {row[0]} | {row[1]} | "
                  + " | ".join(f"{value:+.3f}" for value in values) + " |")
        print(f"| **{criterion}** | **mean of {len(seeds)}** | | | "
              + " | ".join(f"**{total / len(seeds):+.3f}**" for total in sums) + " |")


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
    runs = {}  # loaded once, reused by the offsets report
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
            runs.setdefault(criterion, []).append((seed, split, one_shot, across))
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
    print("\nPer-leaf offsets (recalibrated BN; leaves in id order): mean predicted minus mean true"
          " accuracy of the table architectures in each leaf.")
    offsets_report(runs, seeds)


if __name__ == "__main__":
    main()
