#!/usr/bin/env python3
"""How much slower splitnas and plain PyTorch run beside one competing CPU-bound process.

What it measures, quiet and then loaded (benchmarks/loaded/competitor.py running: a 2-thread
torch matmul loop), side by side in one invocation:

  splitnas bench step   spos and darts steps of the small NB201 supernet (C=8, 1 cell per
                        stage, batch 32, 16x16 images), libtorch threads chosen by splitnas
                        from the free CPUs (the default);
  splitnas --threads N  the same, pinned to N threads (N = the CPUs of this process's affinity
                        mask: libtorch's default before splitnas chose for itself);
  plain PyTorch         benchmarks/step/reference_nb201.py with the same flags and torch's
                        default thread count;
  quickstart            `splitnas run examples/quickstart.toml`, wall seconds (threads chosen
                        by splitnas).

and prints a Markdown table: each workload's quiet and loaded time and their ratio (a fair
share of 2 cores beside a 2-thread process is 2x; the target is at most about 2.5x), with the
thread counts used. A machine that is not otherwise quiet makes every number meaningless:
run it alone.

How to run (from the repository root; `python` has torch 2.11, e.g. the interpreter
`cargo xtask setup` provisions, ~/.cache/splitnas/torch-2.11.0/bin/python):

    cargo xtask build
    python benchmarks/loaded/run.py --json benchmarks/loaded/results.json --markdown /tmp/loaded.md

--quick runs a tiny version of everything (2 timed steps, a 2-epoch quickstart) to check the
script end to end in a few minutes; its numbers mean nothing.
"""

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPETITOR = REPO_ROOT / "benchmarks" / "loaded" / "competitor.py"
REFERENCE = REPO_ROOT / "benchmarks" / "step" / "reference_nb201.py"
QUICKSTART = REPO_ROOT / "examples" / "quickstart.toml"
STEP_FLAGS = ["--channels", "8", "--cells", "1", "--batch", "32", "--image", "16", "--modes", "spos,darts"]
# --quick: the quickstart's schedule cut to two short epochs and one split.
QUICK_QUICKSTART = [
    "search.epochs=2",
    "search.max_steps_per_epoch=2",
    "split.epochs=[1]",
    "split.groups=[2]",
    "final.epochs=1",
    "final.max_steps_per_epoch=2",
]


def step_lines(command):
    """Runs a step benchmark; returns {mode: record} from its JSON lines."""
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {shlex.join(map(str, command))}\n{result.stderr}")
    records = {}
    for line in result.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            record = json.loads(line)
            if "mode" in record:
                records[record["mode"]] = record
    return records


def quickstart_seconds(splitnas, out_dir, name, quick):
    command = [splitnas, "run", str(QUICKSTART), "--quiet", "--overwrite"]
    for key in [f"run.name={name}", f"run.output_dir={out_dir}"] + (QUICK_QUICKSTART if quick else []):
        command += ["--set", key]
    started = time.monotonic()
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {shlex.join(map(str, command))}\n{result.stderr}")
    threads = set()
    metrics = Path(out_dir) / name / "metrics.jsonl"
    for line in metrics.read_text().splitlines():
        event = json.loads(line)
        if isinstance(event.get("threads"), dict):
            threads.add(event["threads"]["threads"])
    return seconds, sorted(threads)


def shown(threads):
    return ",".join(str(t) for t in threads)


def measure(args, setting, out_dir):
    """Every workload once; returns {workload: (value, unit, threads)}."""
    steps = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    rows = {}
    for label, command in [
        ("splitnas bench step (threads chosen)", [args.splitnas, "bench", "step", *STEP_FLAGS, *steps]),
        (f"splitnas bench step --threads {args.pinned_threads}", [args.splitnas, "bench", "step", *STEP_FLAGS, *steps, "--threads", str(args.pinned_threads)]),
        ("plain PyTorch (reference_nb201.py)", [args.python, str(REFERENCE), *STEP_FLAGS, *steps]),
    ]:
        for mode, record in step_lines(command).items():
            rows[f"{label}: {mode}"] = (record["ms_per_step"], "ms/step", [record.get("threads")])
    seconds, threads = quickstart_seconds(args.splitnas, out_dir, f"loaded-{setting}", args.quick)
    rows["splitnas run examples/quickstart.toml" + (" (--quick)" if args.quick else "")] = (round(seconds, 2), "s", threads)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--splitnas", default=str(REPO_ROOT / "target" / "release" / "splitnas"))
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch 2.11 for the reference and the competitor")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per mode (the median is reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1, help="quiet/loaded rounds; the median of each is reported")
    ap.add_argument("--pinned-threads", type=int, default=len(os.sched_getaffinity(0)), help="the pinned comparison's thread count")
    ap.add_argument("--quick", action="store_true", help="tiny settings to check the script; numbers mean nothing")
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--markdown", help="write the table here too")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.warmup = 2, 1
    if not Path(args.splitnas).exists():
        sys.exit(f"{args.splitnas} does not exist: run `cargo xtask build` (or pass --splitnas)")

    measurements = {"quiet": [], "loaded": []}
    with tempfile.TemporaryDirectory() as out_dir:
        for round_index in range(args.rounds):
            for setting in ("quiet", "loaded"):
                competitor = None
                if setting == "loaded":
                    competitor = subprocess.Popen([args.python, str(COMPETITOR)], stdout=subprocess.PIPE, text=True)
                    competitor.stdout.readline()  # running
                    time.sleep(2.0)  # let it reach full speed
                try:
                    print(f"round {round_index + 1}/{args.rounds}: {setting} ...", file=sys.stderr, flush=True)
                    measurements[setting].append(measure(args, setting, out_dir))
                finally:
                    if competitor is not None:
                        competitor.terminate()
                        competitor.wait()

    lines = [
        "| workload | quiet | loaded | loaded / quiet | threads quiet → loaded |",
        "|---|---|---|---|---|",
    ]
    summary = []
    for workload in measurements["quiet"][0]:
        quiet = statistics.median(r[workload][0] for r in measurements["quiet"])
        loaded = statistics.median(r[workload][0] for r in measurements["loaded"])
        unit = measurements["quiet"][0][workload][1]
        threads_quiet = measurements["quiet"][0][workload][2]
        threads_loaded = measurements["loaded"][0][workload][2]
        ratio = loaded / quiet if quiet > 0 else float("nan")
        summary.append({"workload": workload, "unit": unit, "quiet": quiet, "loaded": loaded, "ratio": ratio})
        lines.append(
            f"| {workload} | {quiet:g} {unit} | {loaded:g} {unit} | {ratio:.2f}× | {shown(threads_quiet)} → {shown(threads_loaded)} |"
        )
    table = "\n".join(lines)
    print(table)
    print(f"\ncompeting process: {COMPETITOR.relative_to(REPO_ROOT)} (a 2-thread torch matmul loop); "
          f"{len(os.sched_getaffinity(0))} CPUs; {args.rounds} round(s){'; --quick' if args.quick else ''}")
    if args.markdown:
        Path(args.markdown).write_text(table + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": shlex.join(sys.argv), "summary": summary, "rounds": measurements}, indent=2) + "\n")


if __name__ == "__main__":
    main()
