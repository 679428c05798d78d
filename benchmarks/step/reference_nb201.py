#!/usr/bin/env python3
"""The plain-PyTorch yardstick for `splitnas bench step`: NB201 supernet steps in eager PyTorch.

It trains on one random batch, so it measures speed only. `splitnas bench step` takes the same
flags and prints JSON lines with the same keys; benchmarks/step/compare.py runs both.

Modes (one step each, timed as the median over --steps after --warmup):
  darts  a first-order architecture step (Adam on the alphas), then a weight step (SGD,
         gradient norm clipped at 5); every edge is the softmax(alpha)-weighted sum of its 5 ops.
  spos   a weight step on one single path (one op per edge, drawn uniformly).
  gm     the gradient-matching distance matrix of edge --gm-edge, averaged over --gm-batches
         repeats: each repeat draws a single-path context for the other edges, then for each op
         of the scored edge forces it, runs forward and backward, and flattens the gradients
         of the shared set (every parameter of the cells and reduction blocks except the
         scored edge's ops; not the stem or the head). Distance: 1 - cos, with 1e-6 added to
         the product of norms.

Reproducibility contract (splitnas and the test fixtures rely on it; change nothing here
without regenerating them):
  - torch.manual_seed(0), then the network is built (module and parameter order below fixes
    the initialisation draws), then the images (randn) and labels (randint) are drawn;
  - single paths come from one torch.Generator seeded with 1, one randint(0, 5, (6,)) per path,
    shared by spos and gm in the order the modes run; `splitnas bench step` replays these draws;
  - module attribute names fix the parameter names (stem.0, cells.I.edges.E.O.op.1, cells.I.a,
    cells.I.b, cells.I.down.1, head.0, fc, alphas) that the fixture generators map to ours.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
EDGES = [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]  # (to, from): the 6 edges of a cell
CLASSES = 10


class ReLUConvBN(nn.Module):
    """ReLU, conv, batch norm without running statistics. Search-cell ops are not affine and
    their conv has a bias; the reduction blocks' are affine with a bias-free conv."""

    def __init__(self, cin, cout, kernel, stride, padding, affine):
        super().__init__()
        self.op = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding, bias=not affine),
            nn.BatchNorm2d(cout, affine=affine, track_running_stats=False),
        )

    def forward(self, x):
        return self.op(x)


class Zero(nn.Module):
    def forward(self, x):
        return x.mul(0.0)  # a real multiply, as a naive supernet computes it


def make_op(name, c):
    return {
        "none": lambda: Zero(),
        "skip_connect": lambda: nn.Identity(),
        "nor_conv_1x1": lambda: ReLUConvBN(c, c, 1, 1, 0, affine=False),
        "nor_conv_3x3": lambda: ReLUConvBN(c, c, 3, 1, 1, affine=False),
        "avg_pool_3x3": lambda: nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
    }[name]()


class SearchCell(nn.Module):
    """Nodes 1..3 each sum their incoming edges; the cell's output is node 3."""

    def __init__(self, c):
        super().__init__()
        self.edges = nn.ModuleList(nn.ModuleList(make_op(name, c) for name in OPS) for _ in EDGES)

    def forward(self, x, weights=None, choice=None):
        """`choice`: one op index per edge (single path); otherwise `weights` [edge][op] mix all ops."""
        nodes = [x]
        for node in (1, 2, 3):
            total = 0
            for e, (to, frm) in enumerate(EDGES):
                if to != node:
                    continue
                if choice is not None:
                    total = total + self.edges[e][choice[e]](nodes[frm])
                else:
                    total = total + sum(w * op(nodes[frm]) for w, op in zip(weights[e], self.edges[e]))
            nodes.append(total)
        return nodes[3]


class ResBlock(nn.Module):
    """The reduction block between stages: stride-2 basic block with an avg-pool + 1x1 shortcut."""

    def __init__(self, cin, cout):
        super().__init__()
        self.a = ReLUConvBN(cin, cout, 3, 2, 1, affine=True)
        self.b = ReLUConvBN(cout, cout, 3, 1, 1, affine=True)
        self.down = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x):
        return self.down(x) + self.b(self.a(x))


class Supernet(nn.Module):
    """Stem, 3 stages of `n` search cells at widths c, 2c, 4c with a ResBlock between stages,
    head (BN, ReLU, global average), linear classifier; the alphas are shared by all cells."""

    def __init__(self, c, n, classes):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers = []
        for stage, width in enumerate((c, 2 * c, 4 * c)):
            if stage > 0:
                layers.append(ResBlock(width // 2, width))
            layers.extend(SearchCell(width) for _ in range(n))
        self.cells = nn.ModuleList(layers)
        self.head = nn.Sequential(nn.BatchNorm2d(4 * c), nn.ReLU())
        self.fc = nn.Linear(4 * c, classes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(OPS)))

    def weights(self):
        """Every parameter but the alphas, in registration order."""
        return [p for name, p in self.named_parameters() if name != "alphas"]

    def forward(self, x, choice=None):
        mix = F.softmax(self.alphas, dim=-1) if choice is None else None
        x = self.stem(x)
        for layer in self.cells:
            x = layer(x, mix, choice) if isinstance(layer, SearchCell) else layer(x)
        return self.fc(self.head(x).mean(dim=(2, 3)))


def sample_path(gen):
    """One op per edge, uniform, from `gen` (the draws splitnas replays)."""
    return [int(i) for i in torch.randint(0, len(OPS), (len(EDGES),), generator=gen)]


def gm_distances(net, x, y, edge, repeats, gen):
    """Mean gradient-matching distance matrix [op, op] of `edge`, and the contexts as drawn."""
    own = {id(p) for layer in net.cells if isinstance(layer, SearchCell) for p in layer.edges[edge].parameters()}
    shared = [p for layer in net.cells for p in layer.parameters() if id(p) not in own]
    total = torch.zeros(len(OPS), len(OPS), device=x.device)
    contexts = []
    for _ in range(repeats):
        context = sample_path(gen)
        contexts.append(list(context))
        grads = []
        for op in range(len(OPS)):
            context[edge] = op
            net.zero_grad()
            F.cross_entropy(net(x, context), y).backward()
            grads.append(torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in shared]))
        g = torch.stack(grads)
        norms = g.norm(dim=1)
        total += 1 - (g @ g.t()) / (norms[:, None] * norms[None, :] + 1e-6)
    return total / repeats, contexts


def timed(step, steps, warmup, sync):
    """Median wall time of `steps` calls in ms, after `warmup` untimed calls."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        sync()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, default=16, help="C: channels of the first stage")
    ap.add_argument("--cells", type=int, default=5, help="N: cells per stage")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--image", type=int, default=32, help="side of the square random images")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per mode (the median is printed)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before them")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--gm-batches", type=int, default=1, help="gm repeats averaged into one matrix")
    ap.add_argument("--gm-edge", type=int, default=0, help="the edge gm scores")
    ap.add_argument("--modes", default="darts,spos,gm", help="comma list, run in this order")
    ap.add_argument("--print-matrix", action="store_true", help="after gm, print one more distance matrix")
    return ap.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)

    torch.manual_seed(0)
    net = Supernet(a.channels, a.cells, CLASSES).to(device)
    x = torch.randn(a.batch, 3, a.image, a.image).to(device)
    y = torch.randint(0, CLASSES, (a.batch,)).to(device)
    weight_opt = torch.optim.SGD(net.weights(), lr=0.025, momentum=0.9, weight_decay=5e-4)
    alpha_opt = torch.optim.Adam([net.alphas], lr=3e-4, betas=(0.5, 0.999), weight_decay=1e-3)
    paths = torch.Generator().manual_seed(1)

    def weight_step(choice=None):
        weight_opt.zero_grad()
        F.cross_entropy(net(x, choice), y).backward()
        nn.utils.clip_grad_norm_(net.weights(), 5.0)
        weight_opt.step()

    def darts_step():
        alpha_opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        alpha_opt.step()
        weight_step()

    def gm_step():
        return gm_distances(net, x, y, a.gm_edge, a.gm_batches, paths)[0]

    steps = {"darts": darts_step, "spos": lambda: weight_step(sample_path(paths)), "gm": gm_step}
    for mode in a.modes.split(","):
        ms = timed(steps[mode], a.steps, a.warmup, sync)
        record = {"mode": mode, "ms_per_step": round(ms, 2), "steps": a.steps, "channels": a.channels,
                  "cells": a.cells, "batch": a.batch, "image": a.image, "threads": torch.get_num_threads(),
                  "device": a.device, "torch": torch.__version__}
        print(json.dumps(record), flush=True)
        if mode == "gm" and a.print_matrix:
            matrix = [[round(v, 6) for v in row] for row in gm_step().tolist()]
            print(json.dumps({"gm_distances": matrix}), flush=True)


if __name__ == "__main__":
    main()
