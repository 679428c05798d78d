#!/usr/bin/env python3
"""Writes the architectures of an unfinished table that have both training seeds as a table.

    python3 benchmarks/nb201-table-d/partial_table.py benchmarks/nb201-table-d > benchmarks/nb201-table-d/table-partial.json

`bench ground-truth` assembles `table.json` only once every training has finished (run
without `--worker`, it would go on training the rest). While the workers are still going,
this script gives `splitnas compare --table` / `bench ranking` the finished part: the
architectures of `results.jsonl` with seeds 0 and 1, in the format of docs/GROUND_TRUTH.md,
with the value of each seed and `partial` in the metric. Since the table trains its
architectures in a seeded random order, that part is a random subset of the sample. Plain
Python, no packages.
"""
import json
import sys
from pathlib import Path


def main():
    directory = Path(sys.argv[1])
    protocol = json.loads((directory / "protocol.json").read_text())
    accuracy = {}
    for number, line in enumerate((directory / "results.jsonl").read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            sys.exit(f"{directory / 'results.jsonl'} line {number}: not JSON (a killed worker's last line?)")
        accuracy.setdefault(record["genotype"], {})[record["seed"]] = record["test_accuracy"]
    finished = [g for g in protocol["genotypes"] if {0, 1} <= accuracy.get(g, {}).keys()]
    table = {
        "format": "splitnas-ground-truth/1",
        "space": protocol["space"],
        "metric": (
            f"PARTIAL: test accuracy after {directory / 'protocol.toml'}, for the {len(finished)} of the "
            f"{len(protocol['genotypes'])} sampled architectures whose seeds 0 and 1 had finished "
            "(a random subset: the table trains them in a seeded random order)"
        ),
        "protocol": {"file": str(directory / "protocol.toml"), "partial": True},
        "command": f"python3 benchmarks/nb201-table-d/partial_table.py {directory}",
        "architectures": [
            {"genotype": g, "accuracy": [accuracy[g][0], accuracy[g][1]], "seeds": [0, 1]} for g in finished
        ],
    }
    json.dump(table, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
