#!/usr/bin/env python3
"""Compare splitnas supernet step times with the plain-PyTorch reference.

What it does
    Runs `splitnas bench step` (ours) and the eager PyTorch reference
    `benchmarks/step/reference_nb201.py` with identical flags, for each named configuration,
    for several rounds, and prints per mode (darts, spos, gm) the median
    ms/step of each side and the median ratio ours/reference against the
    project's targets (PASS/FAIL). It also records each child's peak RSS
    (os.wait4) and, unless --no-memory, measures the memory of one gm run
    per side on its own.

How to run (from the repository root)
    cargo build --release -p splitnas && python benchmarks/step/compare.py --rounds 5

    `python` is an interpreter with torch 2.11, e.g. the one `cargo xtask`
    provisions, ~/.cache/splitnas/torch-2.11.0/bin/python. It also runs the
    reference (override with --python); this script itself uses only the
    standard library. Recorded commands and paths are relative to the
    repository root, where the children run, and show the interpreter as
    `python`. Useful options: --configs small,
    --json FILE (raw per-round numbers), --markdown FILE (a fragment for
    docs/BENCHMARKS.md), --check (exit 1 if a target fails).

Why interleaved, alternating rounds
    CPU speed drifts over minutes (thermal and frequency limits, other load on
    the machine, page cache). Running all of ours and then all of the
    reference would fold that drift into the ratio. Instead every round runs
    both sides back to back under nearly the same conditions, and the side
    that goes first alternates from round to round, so a systematic
    "first/second process" effect cancels out over an even number of rounds.

Why the median of per-round ratios
    Each round gives a paired measurement: ours and the reference seen under
    the same conditions. The per-round ratio cancels the drift that is common
    to both, which a ratio of the two overall medians would not. The median
    over rounds then ignores a round disturbed by a transient load spike,
    where a mean would not. The min-max range of the ratios shows how stable
    the comparison was.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SPLITNAS = REPO_ROOT / "target" / "release" / "splitnas"
# The plain-PyTorch yardstick, next to this script.
DEFAULT_REFERENCE = REPO_ROOT / "benchmarks" / "step" / "reference_nb201.py"

ALL_MODES = ("darts", "spos", "gm")

# Named configurations: the network shape plus the steps/warmup that fit each
# one's cost on a 2-core CPU (a full step takes 1-13 s, a small one milliseconds).
CONFIGS = {
    "small": {"shape": {"channels": 8, "cells": 1, "batch": 32, "image": 16}, "steps": 20, "warmup": 3},
    "full": {"shape": {"channels": 16, "cells": 5, "batch": 64, "image": 32}, "steps": 3, "warmup": 1},
}

# Targets for the median ratio ours/reference (lower is better: ours must be at least this much faster).
TARGETS = {
    "full": {"darts": 0.9, "gm": 0.9, "spos": 1.0},
    "small": {"darts": 0.7, "gm": 0.7, "spos": 0.7},
}

# Keys both sides print; anything else ours prints is shown as an extra.
STANDARD_KEYS = {"mode", "ms_per_step", "steps", "channels", "cells", "batch", "image", "threads", "device", "torch"}
# Keys that must echo what was asked for; a mismatch means a flag was ignored and the comparison is void.
ECHOED_KEYS = ("steps", "channels", "cells", "batch", "image")

STDERR_TAIL_LINES = 25


class BenchError(Exception):
    """A failure that ends the comparison with a message (no traceback)."""


def log(message):
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- options


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="Run splitnas `bench step` and the PyTorch reference interleaved and compare them.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--splitnas", default=str(DEFAULT_SPLITNAS), help="our binary")
    ap.add_argument("--reference", default=str(DEFAULT_REFERENCE), help="reference_nb201.py")
    ap.add_argument("--python", default=sys.executable, help="interpreter (with torch) for the reference")
    ap.add_argument("--configs", default="small,full", help="comma list of: " + ",".join(CONFIGS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=None, help="timed steps for every config (default: per config)")
    ap.add_argument("--warmup", type=int, default=None, help="warmup steps for every config (default: per config)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--modes", default=",".join(ALL_MODES))
    ap.add_argument("--gm-batches", type=int, default=1)
    ap.add_argument("--gm-edge", type=int, default=0)
    ap.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                    help="also measure the peak RSS of one gm-only run per side")
    ap.add_argument("--memory-config", choices=sorted(CONFIGS), default="full",
                    help="configuration of the memory measurement")
    ap.add_argument("--json", metavar="FILE", help="write raw per-round numbers and the summary here")
    ap.add_argument("--markdown", metavar="FILE", help="write the summary as a markdown fragment here")
    ap.add_argument("--check", action="store_true", help="exit 1 if any target fails")
    args = ap.parse_args(argv)

    args.config_names = [c for c in args.configs.split(",") if c]
    args.mode_names = [m for m in args.modes.split(",") if m]
    unknown_configs = [c for c in args.config_names if c not in CONFIGS]
    unknown_modes = [m for m in args.mode_names if m not in ALL_MODES]
    if unknown_configs or not args.config_names:
        ap.error(f"--configs: unknown or empty {unknown_configs}; choose from {','.join(CONFIGS)}")
    if unknown_modes or not args.mode_names:
        ap.error(f"--modes: unknown or empty {unknown_modes}; choose from {','.join(ALL_MODES)}")
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    # Children run in the repository root; make the user's relative paths independent of that.
    args.splitnas = str(Path(args.splitnas).resolve())
    args.reference = str(Path(args.reference).resolve())
    return args


# ---------------------------------------------------------------- commands


def bench_flags(args, config_name, modes):
    """The flags both sides get, in the same order, for one configuration."""
    config = CONFIGS[config_name]
    steps = args.steps if args.steps is not None else config["steps"]
    warmup = args.warmup if args.warmup is not None else config["warmup"]
    flags = []
    for key, value in config["shape"].items():
        flags += [f"--{key}", str(value)]
    flags += [
        "--steps", str(steps),
        "--warmup", str(warmup),
        "--threads", str(args.threads),
        "--device", args.device,
        "--gm-batches", str(args.gm_batches),
        "--gm-edge", str(args.gm_edge),
        "--modes", ",".join(modes),
    ]
    return flags


def side_commands(args, config_name, modes):
    """{side: argv} for ours and the reference with identical flags."""
    flags = bench_flags(args, config_name, modes)
    return {
        "ours": [args.splitnas, "bench", "step"] + flags,
        "reference": [args.python, args.reference] + flags,
    }


def repo_relative(arg):
    """A path inside the repository relative to its root (where children run); anything else as is."""
    path = Path(arg)
    if path.is_absolute() and path.is_relative_to(REPO_ROOT):
        return str(path.relative_to(REPO_ROOT))
    return arg


def display_command(side, argv):
    """The command as a shell line to run from the repository root; the interpreter shown as `python`."""
    if side == "reference":
        argv = ["python"] + argv[1:]
    return shlex.join(repo_relative(arg) for arg in argv)


def display_commands(args, config_name, modes):
    return {side: display_command(side, argv) for side, argv in side_commands(args, config_name, modes).items()}


def recorded_options(args):
    """The options as recorded: paths repository-relative, the interpreter as `python` (as in the commands)."""
    options = {k: v for k, v in vars(args).items() if k not in ("config_names", "mode_names")}
    for key in ("splitnas", "reference", "json", "markdown"):
        if options[key] is not None:
            options[key] = repo_relative(str(Path(options[key]).resolve()))
    options["python"] = "python"
    return options


def check_executables(args):
    if not Path(args.splitnas).is_file():
        raise BenchError(f"our binary {args.splitnas} does not exist; build it with "
                         "`cargo build --release -p splitnas` or pass --splitnas PATH")
    if not Path(args.reference).is_file():
        raise BenchError(f"the reference {args.reference} does not exist; pass --reference PATH")


# ---------------------------------------------------------------- running


def rusage_maxrss_kib(rusage):
    # ru_maxrss is in KiB on Linux but in bytes on macOS.
    return rusage.ru_maxrss // 1024 if sys.platform == "darwin" else rusage.ru_maxrss


def run_child(argv, modes, label):
    """Run one benchmark process; return (records by mode, peak RSS in KiB, seconds).

    stdout is a pipe read to EOF before waiting; stderr goes to a temporary
    file, so a chatty stderr can never fill a pipe and deadlock the child.
    os.wait4 reaps the child itself to get the peak RSS of this child (and its
    own reaped children), not the largest of every child so far, which is
    what resource.getrusage(RUSAGE_CHILDREN) would give.
    """
    with tempfile.TemporaryFile() as stderr_file:
        started = time.perf_counter()
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr_file, cwd=REPO_ROOT)
        except OSError as e:
            raise BenchError(f"{label}: cannot start {shlex.join(argv)}: {e}") from e
        try:
            stdout = proc.stdout.read().decode("utf-8", errors="replace")
            proc.stdout.close()
            _, status, rusage = os.wait4(proc.pid, 0)
        except BaseException:
            # Interrupted (Ctrl-C): do not leave a multi-second benchmark running behind us.
            proc.kill()
            proc.wait()
            raise
        # Tell Popen the child is already reaped, so it does not try to wait for it again.
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        stderr_file.seek(0)
        stderr_tail = stderr_file.read().decode("utf-8", errors="replace").splitlines()[-STDERR_TAIL_LINES:]

    if proc.returncode != 0:
        raise BenchError(f"{label} exited with status {proc.returncode}\n  command: {shlex.join(argv)}\n"
                         "  stderr (last lines):\n" + "\n".join("    " + line for line in stderr_tail))
    records = parse_records(stdout, label, argv)
    missing = [m for m in modes if m not in records]
    if missing:
        raise BenchError(f"{label} printed no JSON line for mode(s) {missing}\n  command: {shlex.join(argv)}\n"
                         "  stdout:\n" + "\n".join("    " + line for line in stdout.splitlines()[-STDERR_TAIL_LINES:]))
    return records, rusage_maxrss_kib(rusage), seconds


def parse_records(stdout, label, argv):
    """The per-mode JSON lines of stdout; other lines (logs, banners) are ignored."""
    records = {}
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchError(f"{label} printed malformed JSON ({e}): {line}\n  command: {shlex.join(argv)}") from e
        if "mode" in record and "ms_per_step" in record:
            records[record["mode"]] = record
    return records


def check_echoed_flags(records, argv, label):
    """Refuse results whose shape differs from what was asked (a flag silently ignored)."""
    asked = {argv[i][2:]: argv[i + 1] for i in range(len(argv) - 1) if argv[i].startswith("--")}
    for mode, record in records.items():
        for key in ECHOED_KEYS:
            if key in record and key in asked and str(record[key]) != asked[key]:
                raise BenchError(f"{label} reports {key}={record[key]} for mode {mode}, but was asked "
                                 f"--{key} {asked[key]}\n  command: {shlex.join(argv)}")


def run_rounds(args):
    """All timing runs: each round, each config, both sides with the first side alternating."""
    runs = []
    for round_index in range(args.rounds):
        # Even rounds start with ours, odd rounds with the reference, so order effects cancel.
        order = ("ours", "reference") if round_index % 2 == 0 else ("reference", "ours")
        for config_name in args.config_names:
            commands = side_commands(args, config_name, args.mode_names)
            for side in order:
                label = f"round {round_index + 1}/{args.rounds} {config_name} {side}"
                records, peak_kib, seconds = run_child(commands[side], args.mode_names, label)
                check_echoed_flags(records, commands[side], label)
                log(f"[{label}] {seconds:.1f} s, peak RSS {peak_kib / 1024:.0f} MiB, "
                    + ", ".join(f"{m} {records[m]['ms_per_step']} ms" for m in args.mode_names))
                runs.append({"round": round_index + 1, "config": config_name, "side": side,
                             "first": side == order[0], "seconds": round(seconds, 3),
                             "peak_rss_kib": peak_kib, "records": records})
    return runs


def run_memory(args):
    """One gm-only run per side; the peak RSS of each process and our own growth figure."""
    config_name = args.memory_config
    commands = side_commands(args, config_name, ["gm"])
    result = {"config": config_name, "commands": display_commands(args, config_name, ["gm"])}
    for side in ("ours", "reference"):
        label = f"memory {config_name} gm {side}"
        records, peak_kib, seconds = run_child(commands[side], ["gm"], label)
        log(f"[{label}] {seconds:.1f} s, peak RSS {peak_kib / 1024:.0f} MiB")
        result[side] = {"peak_rss_mib": round(peak_kib / 1024, 1), "seconds": round(seconds, 3),
                        "record": records["gm"]}
    result["ratio"] = result["ours"]["peak_rss_mib"] / result["reference"]["peak_rss_mib"]
    # Ours may report how much its RSS grew over the steps (a leak shows up here, not in the peak).
    result["ours_rss_growth_mb"] = result["ours"]["record"].get("rss_growth_mb")
    return result


# ---------------------------------------------------------------- summary


def summarize(args, runs):
    """Per config and mode: medians of each side, per-round ratios, target and verdict."""
    summary = {}
    for config_name in args.config_names:
        config_runs = [r for r in runs if r["config"] == config_name]
        rows = []
        for mode in args.mode_names:
            ours_by_round = {r["round"]: r["records"][mode] for r in config_runs if r["side"] == "ours"}
            ref_by_round = {r["round"]: r["records"][mode] for r in config_runs if r["side"] == "reference"}
            rounds = sorted(ours_by_round)
            ours_ms = [float(ours_by_round[i]["ms_per_step"]) for i in rounds]
            ref_ms = [float(ref_by_round[i]["ms_per_step"]) for i in rounds]
            ratios = [o / r for o, r in zip(ours_ms, ref_ms)]
            median_ratio = statistics.median(ratios)
            target = TARGETS[config_name][mode]
            rows.append({
                "mode": mode,
                "ours_ms": statistics.median(ours_ms),
                "reference_ms": statistics.median(ref_ms),
                "ratios": ratios,
                "median_ratio": median_ratio,
                "min_ratio": min(ratios),
                "max_ratio": max(ratios),
                "target": target,
                "pass": median_ratio <= target,
                "ours_extra": median_extras([ours_by_round[i] for i in rounds]),
            })
        peaks = {side: statistics.median(r["peak_rss_kib"] for r in config_runs if r["side"] == side) / 1024
                 for side in ("ours", "reference")}
        summary[config_name] = {
            "commands": display_commands(args, config_name, args.mode_names),
            "rows": rows,
            "median_peak_rss_mib": peaks,
        }
    return summary


def median_extras(records):
    """Median over rounds of each numeric key ours prints beyond the standard ones."""
    extras = {}
    keys = sorted({k for rec in records for k in rec if k not in STANDARD_KEYS})
    for key in keys:
        values = [rec[key] for rec in records if isinstance(rec.get(key), (int, float))]
        if values:
            extras[key] = statistics.median(values)
    return extras


def torch_version(runs):
    for run in runs:
        if run["side"] == "reference":
            for record in run["records"].values():
                if "torch" in record:
                    return record["torch"]
    return "unknown"


# ---------------------------------------------------------------- machine


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# ---------------------------------------------------------------- output


def fmt_ms(ms):
    return f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def table_lines(rows, markdown):
    header = ["mode", "ours ms", "reference ms", "median ratio", "min–max ratio", "target", "result"]
    body = [[row["mode"], fmt_ms(row["ours_ms"]), fmt_ms(row["reference_ms"]), f"{row['median_ratio']:.3f}",
             f"{row['min_ratio']:.3f}–{row['max_ratio']:.3f}", f"<= {row['target']}",
             "PASS" if row["pass"] else "FAIL"] for row in rows]
    if markdown:
        return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"] + \
               ["| " + " | ".join(cells) + " |" for cells in body]
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return [line(header), line(["-" * w for w in widths])] + [line(cells) for cells in body]


def extra_lines(rows):
    lines = []
    for row in rows:
        if row["ours_extra"]:
            lines.append(f"ours {row['mode']} extras (median): "
                         + ", ".join(f"{k}={v:g}" for k, v in row["ours_extra"].items()))
    return lines


def peak_rss_line(config):
    peaks = config["median_peak_rss_mib"]
    return (f"median peak RSS (all modes in one process): ours {peaks['ours']:.0f} MiB, "
            f"reference {peaks['reference']:.0f} MiB")


def memory_lines(memory):
    lines = [f"gm alone, config {memory['config']}: peak RSS ours {memory['ours']['peak_rss_mib']:.0f} MiB, "
             f"reference {memory['reference']['peak_rss_mib']:.0f} MiB, ratio {memory['ratio']:.2f}"]
    if memory["ours_rss_growth_mb"] is not None:
        lines.append(f"ours rss_growth_mb: {memory['ours_rss_growth_mb']}")
    return lines


def print_report(report):
    machine = report["machine"]
    print(f"date: {report['date']}")
    print(f"machine: {machine['cpus']} CPUs, {machine['cpu_model']}; load average at start "
          f"{machine['load_start']}, at end {machine['load_end']}")
    print(f"torch (reference): {report['torch']}; rounds: {report['rounds']}; threads: {report['threads']}")
    for config_name, config in report["summary"].items():
        print()
        print(f"== {config_name} ==")
        print(f"ours:      {config['commands']['ours']}")
        print(f"reference: {config['commands']['reference']}")
        for line in table_lines(config["rows"], markdown=False):
            print(line)
        for line in extra_lines(config["rows"]):
            print(line)
        print(peak_rss_line(config))
    if report["memory"]:
        memory = report["memory"]
        print()
        print("== memory ==")
        print(f"ours:      {memory['commands']['ours']}")
        print(f"reference: {memory['commands']['reference']}")
        for line in memory_lines(memory):
            print(line)
    print()
    print("all targets met" if report["all_pass"] else "some targets FAILED")


def markdown_fragment(report):
    machine = report["machine"]
    out = [
        f"### Step time, ours vs. PyTorch reference ({report['date']})",
        "",
        f"Machine: {machine['cpus']} CPUs, {machine['cpu_model']}; load average {machine['load_start']} "
        f"at start, {machine['load_end']} at end. Reference: PyTorch {report['torch']} (eager). "
        f"{report['rounds']} interleaved rounds, first side alternating; threads {report['threads']}. "
        "Ratio = median over rounds of ours/reference ms per step.",
    ]
    for config_name, config in report["summary"].items():
        out += ["", f"**{config_name}**", "", "```sh", config["commands"]["ours"],
                config["commands"]["reference"], "```", ""]
        out += table_lines(config["rows"], markdown=True)
        out += [""] + [f"- {line}" for line in extra_lines(config["rows"]) + [peak_rss_line(config)]]
    if report["memory"]:
        memory = report["memory"]
        out += ["", "**memory**", "", "```sh", memory["commands"]["ours"], memory["commands"]["reference"], "```", ""]
        out += [f"- {line}" for line in memory_lines(memory)]
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def main(argv=None):
    args = parse_args(argv)
    check_executables(args)
    load_start = load_average()
    started = datetime.datetime.now().astimezone()

    runs = run_rounds(args)
    memory = run_memory(args) if args.memory else None
    summary = summarize(args, runs)

    all_pass = all(row["pass"] for config in summary.values() for row in config["rows"])
    report = {
        "date": started.isoformat(timespec="seconds"),
        "machine": {"cpus": usable_cpus(), "cpu_model": cpu_model(), "load_start": load_start,
                    "load_end": load_average(), "platform": platform.platform()},
        "torch": torch_version(runs),
        "rounds": args.rounds,
        "threads": args.threads,
        "options": recorded_options(args),
        "summary": summary,
        "memory": memory,
        "all_pass": all_pass,
        "runs": runs,
    }
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown_fragment(report))
    return 1 if args.check and not all_pass else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(2)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
