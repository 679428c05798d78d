#!/usr/bin/env python3
"""Maintainer tool: prove that benchmarks/step/reference_nb201.py is equivalent to another copy of
the NB201 yardstick (the one it replaced), without timing anything.

    python benchmarks/step/check_reference.py PATH/TO/OTHER/reference_nb201.py

Both scripts' main() run in this process on small configurations, with their flags, under a
harness that replaces their `timed` (each step runs warmup + steps times, untimed) and their
`Supernet` (a subclass that records every forward). Seeds are shifted per configuration
through a stand-in for the scripts' `torch` (manual_seed and Generator().manual_seed get an
offset). Compared, bitwise: the parsed options (and the defaults), the JSON lines printed, the
parameters and buffers at construction (names, order, values) and the global RNG state after
it, every forward's single path and logits, and after every step all parameters, buffers,
gradients and the step's result (the gm distance matrix). Exit status 1 on any difference.
Nothing else in the repository needs this script.
"""
import argparse
import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path

import torch

OURS = Path(__file__).resolve().parent / "reference_nb201.py"

# (seed offset, flags): shapes, mode orders, scored edges and repeats vary.
CASES = [
    (0, "--channels 4 --cells 1 --batch 8 --image 8 --modes darts,spos,gm --gm-batches 2 --gm-edge 0 --print-matrix"),
    (7, "--channels 8 --cells 2 --batch 16 --image 16 --modes gm,spos,darts --gm-batches 3 --gm-edge 5"),
    (123, "--channels 4 --cells 2 --batch 4 --image 8 --modes spos,gm,darts --gm-edge 2 --print-matrix"),
    (0, "--channels 4 --cells 1 --batch 8 --image 16 --modes gm --gm-batches 3 --gm-edge 2 --print-matrix"),
]
COMMON = "--steps 2 --warmup 1 --threads 1 --device cpu"


class Stop(Exception):
    pass


class SeedShift:
    """Stands in for `torch` inside a script: seeds shifted by `offset`, all else is torch."""

    def __init__(self, offset):
        self.offset = offset

    def __getattr__(self, name):
        return getattr(torch, name)

    def manual_seed(self, seed):
        return torch.manual_seed(seed + self.offset)

    def Generator(self, *args, **kwargs):
        offset = self.offset

        class Seedable:
            def manual_seed(self, seed):
                return torch.Generator(*args, **kwargs).manual_seed(seed + offset)

        return Seedable()


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def state(net, grads):
    out = {f"param/{n}": p.detach().clone() for n, p in net.named_parameters()}
    out.update({f"buffer/{n}": b.detach().clone() for n, b in net.named_buffers()})
    if grads:
        out.update({f"grad/{n}": p.grad.clone() for n, p in net.named_parameters() if p.grad is not None})
    return out


def run(module, flags, offset):
    """Everything observable of one main() run, as a flat list of (label, value)."""
    trace, nets = [], []

    class Recording(module.Supernet):
        def __init__(self, *args):
            super().__init__(*args)
            nets.append(self)
            trace.append(("init", state(self, grads=False)))
            trace.append(("rng after init", torch.get_rng_state()))

        def forward(self, x, choice=None):
            logits = super().forward(x, choice)
            trace.append(("forward", (None if choice is None else list(choice), logits.detach().clone())))
            return logits

    def untimed(step, steps, warmup, sync):
        for i in range(warmup + steps):
            result = step()
            trace.append((f"step {i}", (result, state(nets[0], grads=True))))
        return 0.0

    saved = (module.Supernet, module.timed, module.torch, sys.argv)
    module.Supernet, module.timed, module.torch = Recording, untimed, SeedShift(offset)
    sys.argv = [module.__file__] + flags
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            module.main()
    finally:
        module.Supernet, module.timed, module.torch, sys.argv = saved
    trace.append(("stdout", [json.loads(line) for line in out.getvalue().splitlines()]))
    return trace


def options(module, flags):
    """The namespace main() parses from `flags` (main is stopped right after parsing)."""
    parse = argparse.ArgumentParser.parse_args
    seen = []

    def capture(self, args=None, namespace=None):
        seen.append(vars(parse(self, args, namespace)))
        raise Stop

    argparse.ArgumentParser.parse_args, saved_argv = capture, sys.argv
    sys.argv = [module.__file__] + flags
    try:
        module.main()
    except Stop:
        pass
    finally:
        argparse.ArgumentParser.parse_args, sys.argv = parse, saved_argv
    return seen[0]


def compare(a, b, where, stats):
    """Recursive bitwise comparison; returns a list of differences, updates the max |a-b|."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        stats["tensors"] += 1
        if a.dtype != b.dtype or a.shape != b.shape:
            return [f"{where}: {a.dtype}{list(a.shape)} vs {b.dtype}{list(b.shape)}"]
        if a.is_floating_point():
            stats["max"] = max(stats["max"], (a.double() - b.double()).abs().max().item() if a.numel() else 0.0)
        return [] if torch.equal(a, b) else [f"{where}: values differ"]
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return [f"{where}: keys {list(a)} vs {list(b)}"]
        return [d for k in a for d in compare(a[k], b[k], f"{where}/{k}", stats)]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in compare(x, y, f"{where}[{i}]", stats)]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("other", type=Path, help="the other reference_nb201.py (required; there is no default)")
    other_path = ap.parse_args().other.resolve()
    ours, other = load(OURS, "ours_reference"), load(other_path, "other_reference")
    print(f"ours:  {OURS}\nother: {other_path}")

    failures = []
    stats = {"tensors": 0, "max": 0.0}
    failures += compare(options(ours, []), options(other, []), "defaults", stats)
    print("defaults: " + ("identical" if not failures else "DIFFERENT"))
    for d in failures:
        print("   ", d)
    for offset, flags in CASES:
        argv = (flags + " " + COMMON).split()
        case = {"tensors": 0, "max": 0.0}
        diffs = compare(options(ours, argv), options(other, argv), "options", case)
        a, b = run(ours, argv, offset), run(other, argv, offset)
        diffs += compare([label for label, _ in a], [label for label, _ in b], "trace", case)
        if not diffs:
            diffs += [d for (label, x), (_, y) in zip(a, b) for d in compare(x, y, label, case)]
        forwards = [v[0] for label, v in a if label == "forward" and v[0] is not None]
        print(f"seed+{offset} {flags}: {len(a)} events, {len(forwards)} single-path forwards, "
              f"{case['tensors']} tensors, max |diff| {case['max']:.3g}, "
              + ("identical" if not diffs else f"{len(diffs)} DIFFERENCES"))
        for d in diffs[:10]:
            print("   ", d)
        failures += diffs
        stats["tensors"] += case["tensors"]
        stats["max"] = max(stats["max"], case["max"])
    print(f"{'EQUIVALENT' if not failures else 'NOT EQUIVALENT'}: {stats['tensors']} tensors compared, "
          f"max |diff| {stats['max']:.3g}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
