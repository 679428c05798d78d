"""Summarises `splitnas compare --config examples/ofa-gm.toml` runs: per criterion and seed,
the selected leaf's evolved subnet (accuracy through the supernet, stand-alone test accuracy,
test accuracy extracted with the supernet's weights and no retraining where `splitnas extract
RUN --json > RUN/extract.json` was run, MACs), the splits (choice point and partition) and the search's seconds, then the mean and
standard deviation per criterion and gm's paired differences by seed.

    for run in runs/compare-ofa-5/*-seed*; do splitnas extract $run --json --quiet > $run/extract.json; done
    python3 benchmarks/ofa-compare/summarize.py runs/compare-ofa-5
"""
import json
import statistics
import sys
from pathlib import Path

KERNELS = ["3", "5", "7"]


def runs(directory):
    for path in sorted(Path(directory).glob("*-seed*")):
        report = path / "report.json"
        if not report.exists():
            continue
        criterion, seed = path.name.rsplit("-seed", 1)
        extracted = path / "extract.json"
        extracted = json.loads(extracted.read_text()) if extracted.exists() and extracted.stat().st_size else None
        yield criterion, int(seed), json.loads(report.read_text()), json.loads((path / "tree.json").read_text()), extracted


def main(directory):
    by_criterion = {}
    print("| criterion | seed | leaves | through supernet | stand-alone test | extracted test | MACs | kernel splits (block: groups) | search s | splitting s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for criterion, seed, report, tree, extracted in runs(directory):
        result = report["selected_result"]
        splits = [
            f"block {node['split']['choice_point'] + 1}: " + "/".join("{" + ",".join(KERNELS[o] for o in group) + "}" for group in node["split"]["groups"])
            for node in tree["nodes"]
            if node["split"]
        ]
        leaves = sum(1 for node in tree["nodes"] if node.get("result"))
        test = result["standalone"]["test_accuracy"]
        extracted_test = extracted["test_accuracy"] if extracted else float("nan")
        by_criterion.setdefault(criterion, {})[seed] = (test, result["architecture_valid_accuracy"], extracted_test)
        print(
            f"| {criterion} | {seed} | {leaves} | {result['architecture_valid_accuracy']:.3f} | {test:.3f} | {extracted_test:.3f} | {result['flops'] / 1e6:.2f} M | "
            f"{'; '.join(splits) or '-'} | {report['search_seconds']:.0f} | {report['split_seconds']:.0f} |"
        )
    print()
    print("| criterion | runs | stand-alone test mean ± sd | extracted test mean ± sd | through supernet mean ± sd |")
    print("|---|---|---|---|---|")
    for criterion, seeds in by_criterion.items():
        tests = [value[0] for value in seeds.values()]
        through = [value[1] for value in seeds.values()]
        extracted = [value[2] for value in seeds.values()]
        sd = lambda values: statistics.stdev(values) if len(values) > 1 else float("nan")
        print(f"| {criterion} | {len(tests)} | {statistics.mean(tests):.3f} ± {sd(tests):.3f} | {statistics.mean(extracted):.3f} ± {sd(extracted):.3f} | {statistics.mean(through):.3f} ± {sd(through):.3f} |")
    if "gm" in by_criterion:
        print()
        for other, seeds in by_criterion.items():
            if other == "gm":
                continue
            common = sorted(set(seeds) & set(by_criterion["gm"]))
            for index, what in [(0, "stand-alone test"), (2, "extracted test")]:
                differences = [by_criterion["gm"][seed][index] - seeds[seed][index] for seed in common]
                if differences:
                    wins = sum(1 for difference in differences if difference > 0)
                    print(
                        f"gm - {other}, {what}, paired by seed ({len(common)} seeds): "
                        f"mean {statistics.mean(differences):+.3f}, per seed {', '.join(f'{d:+.3f}' for d in differences)}; gm higher in {wins}"
                    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/compare-ofa-5")
