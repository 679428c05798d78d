"""The yardstick of `splitnas bench data`: torchvision's ImageFolder + DataLoader with the
transforms splitnas's image-folder loader applies, timed over one epoch (or --batches).

splitnas runs this script (built into the binary) once per round, interleaved with its own
loader, and reads the one JSON line it prints. It can also be run by hand:

    python reference_torchvision.py --folder DIR/train --image-size 224 --batch-size 64 --workers 2

Memory is the resident set of this process plus its DataLoader workers (read from /proc),
sampled after every batch; pages the workers share with their parent count twice, so the
figure is an upper bound.
"""

import argparse
import json
import os
import time

import torch
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def resident_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def loader_resident_bytes(loader_iterator):
    workers = getattr(loader_iterator, "_workers", [])
    return resident_bytes(os.getpid()) + sum(resident_bytes(worker.pid) for worker in workers)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", required=True, help="one sub-folder per class")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=4, help="batches in flight in all (DataLoader's prefetch_factor x workers)")
    parser.add_argument("--batches", type=int, default=0, help="stop after this many batches (0: one whole epoch)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    transform = transforms.Compose([
        transforms.RandomResizedCrop(args.image_size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
        transforms.RandomHorizontalFlip(),
        transforms.PILToTensor(),
    ])
    dataset = datasets.ImageFolder(args.folder, transform=transform)
    extra = {}
    if args.workers > 0:
        extra = {"prefetch_factor": max(1, args.prefetch // args.workers), "persistent_workers": False}
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers, drop_last=False, **extra)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255

    resident_start = resident_bytes(os.getpid())
    resident_peak = resident_start
    images = 0
    batches = 0
    started = time.perf_counter()
    iterator = iter(loader)
    for pixels, labels in iterator:
        # The same last step as splitnas: uint8 batch to normalised float.
        normalised = (pixels.float() - mean) / std
        images += normalised.shape[0]
        batches += 1
        resident_peak = max(resident_peak, loader_resident_bytes(iterator))
        if args.batches and batches >= args.batches:
            break
    seconds = time.perf_counter() - started
    del iterator
    resident_end = resident_bytes(os.getpid())
    print(json.dumps({
        "loader": "torchvision",
        "torchvision": torchvision.__version__,
        "images": images,
        "batches": batches,
        "seconds": seconds,
        "images_per_second": images / seconds,
        "resident_start_bytes": resident_start,
        "resident_peak_bytes": resident_peak,
        "resident_end_bytes": resident_end,
    }))


if __name__ == "__main__":
    main()
