"""Does single-path training of the ProxylessNAS space learn at the CPU example's budget?

A plain-PyTorch probe with the official building blocks (`ofa.utils.layers`, MIT Han Lab),
independent of splitnas: the layout of examples/proxylessnas-gm.toml (width 0.5, 28 px, stem
stride 2, first strides 1,2,2,1,2,1, feature mix 256) on the embedded Fashion-MNIST subset,
trained with the example's weight optimizer (SGD 0.1 Nesterov, weight decay 4e-5, gradient
clip 5, batch 32, constant learning rate) under one of three sampling modes:

- `fixed`: one architecture, drawn once (a stand-alone network);
- `single-path`: a uniform path per step, as RSPS and ProxylessNAS's warm-up train
  (`zero` allowed on the 15 blocks with a shortcut);
- `stage-first-fixed`: as `single-path`, but the first block of each stage (the 6 blocks
  without a shortcut) always takes 3x3_MBConv6.

Prints a JSON line: the mean training loss per 100 steps and the validation accuracy over
the first 500 validation images, averaged over 5 sampled paths, with BatchNorm on batch
statistics (as splitnas evaluates a supernet).

    python benchmarks/proxylessnas-supernet/probe.py MODE [--steps N] [--seed S]

Needs torch and the `ofa` package on the path (`cargo xtask setup` installs it into
<venv>/reference-packages; this script adds that directory when given `--ofa DIR`).
"""

import argparse
import gzip
import json
import os
import random
import sys
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OPTIONS = [(3, 3), (3, 6), (5, 3), (5, 6), (7, 3), (7, 6)]  # (kernel, expand); index 6 is `zero`
ZERO = len(OPTIONS)


def read_idx(path):
    data = gzip.open(path).read()
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * data[3]).reshape(dims)


def make_divisible(value, divisor=8):
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class SinglePathSupernet(nn.Module):
    def __init__(self, layers, width=0.5):
        super().__init__()
        ConvLayer, MBConvLayer = layers.ConvLayer, layers.MBConvLayer
        stem = make_divisible(32 * width)
        first = make_divisible(16 * width)
        self.stem = ConvLayer(3, stem, 3, 2, act_func="relu6")
        self.first = MBConvLayer(stem, first, 3, 1, expand_ratio=1)
        self.blocks, self.has_shortcut = nn.ModuleList(), []
        channels = first
        for stage_width, stride, count in zip((24, 40, 80, 96, 192, 320), (1, 2, 2, 1, 2, 1), (4, 4, 4, 4, 4, 1)):
            out = make_divisible(stage_width * width)
            for index in range(count):
                block_stride = stride if index == 0 else 1
                self.blocks.append(nn.ModuleList([MBConvLayer(channels, out, k, block_stride, expand_ratio=e) for k, e in OPTIONS]))
                self.has_shortcut.append(index > 0)
                channels = out
        self.feature_mix = ConvLayer(channels, 256, 1, act_func="relu6")
        self.classifier = nn.Linear(256, 10)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = 1e-3

    def forward(self, x, path):
        x = self.first(self.stem(x))
        for options, shortcut, choice in zip(self.blocks, self.has_shortcut, path):
            if choice == ZERO:
                continue
            out = options[choice](x)
            x = x + out if shortcut else out
        return self.classifier(self.feature_mix(x).mean((2, 3)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["fixed", "single-path", "stage-first-fixed"])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "../../data/fashion-mnist-subset"))
    parser.add_argument("--ofa", help="a directory holding the `ofa` package")
    args = parser.parse_args()
    if args.ofa:
        sys.path.insert(0, args.ofa)
    # ofa's package imports a data loader that needs modules torch 2.x no longer has.
    sys.modules["ofa.utils.my_dataloader"] = types.ModuleType("ofa.utils.my_dataloader")
    from ofa.utils import layers

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    images = torch.tensor(read_idx(os.path.join(args.data, "train-images-idx3-ubyte.gz"))).float().div(255)
    images = images.sub(0.2860).div(0.3530).unsqueeze(1).repeat(1, 3, 1, 1)
    labels = torch.tensor(read_idx(os.path.join(args.data, "train-labels-idx1-ubyte.gz"))).long()
    train_x, train_y, valid_x, valid_y = images[:3000], labels[:3000], images[3000:3500], labels[3000:3500]

    net = SinglePathSupernet(layers)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=4e-5)
    fixed = [rng.randrange(len(OPTIONS)) for _ in net.blocks]

    def sample():
        if args.mode == "fixed":
            return fixed
        return [rng.randrange(ZERO + 1) if shortcut else (1 if args.mode == "stage-first-fixed" else rng.randrange(ZERO)) for shortcut in net.has_shortcut]

    losses, window = [], []
    for step in range(args.steps):
        batch = torch.randint(0, len(train_x), (32,))
        loss = F.cross_entropy(net(train_x[batch], sample()), train_y[batch])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        optimizer.step()
        window.append(loss.item())
        if len(window) == 100:
            losses.append(round(sum(window) / len(window), 3))
            window = []
    with torch.no_grad():  # batch statistics: the network stays in training mode
        accuracy = np.mean([(net(valid_x, sample()).argmax(1) == valid_y).float().mean().item() for _ in range(5)])
    print(json.dumps({"mode": args.mode, "steps": args.steps, "seed": args.seed, "loss_per_100_steps": losses, "valid_accuracy": round(float(accuracy), 4)}))


if __name__ == "__main__":
    main()
