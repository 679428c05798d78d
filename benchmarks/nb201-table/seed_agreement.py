#!/usr/bin/env python3
"""How well the training seeds of a ground-truth table agree, from its raw records.

    python3 benchmarks/nb201-table/seed_agreement.py benchmarks/nb201-table/results.jsonl [--first N]

Takes the architectures that have both seeds 0 and 1 in results.jsonl, in the order their
second seed finished (the table trains architectures in a seeded random order, both seeds in
a row, so any prefix is a random subset: `--first 30` is the pilot), and prints Kendall's τ-b
and Spearman's ρ between the two seeds' test accuracies (scipy's definitions), the mean
absolute seed-to-seed difference, and the seconds per training. Plain Python, no packages.
"""
import argparse
import json
import statistics


def kendall_tau_b(x, y):
    concordant = discordant = tied_x = tied_y = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx = (x[i] > x[j]) - (x[i] < x[j])
            dy = (y[i] > y[j]) - (y[i] < y[j])
            tied_x += dx == 0
            tied_y += dy == 0
            concordant += dx * dy > 0
            discordant += dx * dy < 0
    pairs = len(x) * (len(x) - 1) // 2
    return (concordant - discordant) / ((pairs - tied_x) * (pairs - tied_y)) ** 0.5


def average_ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman_rho(x, y):
    rx, ry = average_ranks(x), average_ranks(y)
    mx, my = statistics.mean(rx), statistics.mean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    return sxy / (sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry)) ** 0.5


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results.jsonl of bench ground-truth")
    parser.add_argument("--first", type=int, default=0, help="only the first N architectures with both seeds (0: all)")
    args = parser.parse_args()
    by_genotype, complete, seconds = {}, [], []
    with open(args.results) as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            accuracies = by_genotype.setdefault(record["genotype"], {})
            accuracies[record["seed"]] = (record["test_accuracy"], record["seconds"])
            if record["seed"] in (0, 1) and 0 in accuracies and 1 in accuracies:
                complete.append(record["genotype"])
    if args.first:
        complete = complete[: args.first]
    first = [by_genotype[g][0][0] for g in complete]
    second = [by_genotype[g][1][0] for g in complete]
    seconds = [by_genotype[g][s][1] for g in complete for s in (0, 1)]
    print(f"{len(complete)} architectures with seeds 0 and 1")
    print(f"Kendall tau-b {kendall_tau_b(first, second):.3f}, Spearman rho {spearman_rho(first, second):.3f}")
    print(f"mean |seed 0 - seed 1| {statistics.mean(abs(a - b) for a, b in zip(first, second)):.4f}; "
          f"test accuracy mean {statistics.mean(first + second):.4f}, range {min(first + second):.3f}-{max(first + second):.3f}")
    print(f"seconds per training: median {statistics.median(seconds):.1f}, mean {statistics.mean(seconds):.1f}")


if __name__ == "__main__":
    main()
