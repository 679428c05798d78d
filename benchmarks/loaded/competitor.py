#!/usr/bin/env python3
"""The competing CPU-bound process of benchmarks/loaded/run.py: a 2-thread torch matmul loop.

It multiplies two 512x512 float32 matrices forever on 2 intra-op threads, as a second
PyTorch training on the same machine would keep 2 cores busy. Stop it with SIGTERM.
"""
import signal
import sys

import torch

torch.set_num_threads(2)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
a = torch.randn(512, 512)
b = torch.randn(512, 512)
print("competitor: 2-thread torch matmul loop running", flush=True)
while True:
    c = a @ b
    a, c = c / c.norm(), a
