#!/usr/bin/env python3
"""What the recorded gradient-matching streams of `splitnas bench gm-repeats --recordings DIR`
say about the decision itself (standard library only).

    python3 benchmarks/gm-repeats/analyze.py runs/gm-repeats-recordings

Per seed it prints every candidate's score (mean cross-group cosine distance of its best
partition over the 100 recorded repeats) with its standard error, and the noise ceiling:
how often two independent halves of the stream (repeats 0-49 and 50-99) make the same split
decision. An adaptive rule is compared with the fixed R=100 decision on the same stream; when
two independent R=50 decisions disagree often, the R=100 decision is itself mostly noise
between near-tied candidates, and no cheap rule can reproduce it.

The authoritative adaptive numbers come from `splitnas bench gm-repeats` (the gm plugin's own
rule); this script restates only the fixed rule (cosine distances, partitions of five options
into two groups of at least two, least within-group distance, largest cross-group score).
"""
import glob
import itertools
import json
import math
import sys


def cosine_distances(gram, k):
    norm = [math.sqrt(max(gram[i * k + i], 0.0)) for i in range(k)]
    return [1.0 - gram[i] / (norm[i // k] * norm[i % k] + 1e-6) for i in range(k * k)]


def partitions(n, groups=2, min_size=2):
    return [labels for labels in itertools.product(range(groups), repeat=n)
            if labels[0] == 0 and all(labels.count(g) >= min_size for g in range(groups))]


def within_cross(distances, k, labels):
    within = cross = 0.0
    for i in range(k):
        for j in range(i + 1, k):
            if labels[i] == labels[j]:
                within += distances[i * k + j]
            else:
                cross += distances[i * k + j]
    return within, cross


def mean_matrix(matrices):
    return [sum(column) / len(matrices) for column in zip(*matrices)]


def best_partition(matrices, k):
    mean = mean_matrix(matrices)
    best = None
    for labels in partitions(k):
        within, cross = within_cross(mean, k, labels)
        if best is None or within < best[1]:
            best = (labels, within, cross)
    return best


def groups_of(labels):
    return tuple(sorted(tuple(i for i, label in enumerate(labels) if label == g) for g in set(labels)))


def variance_of_mean(values):
    mean = sum(values) / len(values)
    return sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values)


def decide(stream):
    """The fixed rule on every candidate's matrices: (choice point, groups)."""
    scored = []
    for point in sorted(stream):
        labels, _, cross = best_partition(stream[point], 5)
        scored.append((cross, -point, point, groups_of(labels)))
    _, _, point, groups = max(scored)
    return point, groups


def load(directory):
    seeds = {}
    for path in sorted(glob.glob(f"{directory}/seed-*.json")):
        seed = int(path.rsplit("-", 1)[1].split(".")[0])
        recording = json.load(open(path))
        seeds[seed] = {int(point): [cosine_distances(gram, len(options)) for options, gram in samples]
                       for point, samples in recording["candidates"].items()}
    return dict(sorted(seeds.items()))


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "runs/gm-repeats-recordings"
    seeds = load(directory)
    if not seeds:
        sys.exit(f"no seed-*.json recordings in {directory}")
    halves_agree = full_vs_half = 0
    for seed, stream in seeds.items():
        repeats = min(len(matrices) for matrices in stream.values())
        half = repeats // 2
        cells = []
        for point in sorted(stream):
            labels, _, _ = best_partition(stream[point], 5)
            crosses = [within_cross(m, 5, labels)[1] for m in stream[point]]
            mean = sum(crosses) / len(crosses)
            error = math.sqrt(sum((c - mean) ** 2 for c in crosses) / (len(crosses) - 1) / len(crosses))
            cells.append(f"{point}: {mean:.2f}±{error:.2f}")
        # The top two candidates' difference: its standard error if the repeats were independent,
        # and measured round by round (smaller when rounds share batch and context).
        scores = []
        for point in sorted(stream):
            labels, _, cross = best_partition(stream[point], 5)
            scores.append((cross, point, [within_cross(m, 5, labels)[1] for m in stream[point]]))
        scores.sort(reverse=True)
        (_, top, a), (_, runner_up, b) = scores[0], scores[1]
        unpaired = math.sqrt(variance_of_mean(a) + variance_of_mean(b))
        paired = math.sqrt(variance_of_mean([x - y for x, y in zip(a, b)]))
        cells.append(f"gap {top}-{runner_up}: {sum(a) / len(a) - sum(b) / len(b):.3f}, SE unpaired {unpaired:.3f}, per round {paired:.3f}")
        full = decide(stream)
        first = decide({p: m[:half] for p, m in stream.items()})
        second = decide({p: m[half:repeats] for p, m in stream.items()})
        halves_agree += first == second
        full_vs_half += (full == first) + (full == second)
        print(f"seed {seed:>3}: R={repeats} picks {full[0]} {full[1]}; halves pick {first[0]} and {second[0]}; scores {' | '.join(cells)}")
    n = len(seeds)
    print(f"{n} seeds: two independent halves (R={half}) agree on {halves_agree}/{n}; "
          f"R={repeats} agrees with a half on {full_vs_half}/{2 * n}")


if __name__ == "__main__":
    main()
