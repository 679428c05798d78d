#!/usr/bin/env python3
"""Makes the embedded default dataset: a stratified Fashion-MNIST subset.

    apt-get update && apt-get install -y dataset-fashion-mnist
    python3 data/make_fashion_mnist_subset.py [SOURCE_DIR]

SOURCE_DIR defaults to /usr/share/datasets/fashion-mnist (where Debian's package puts
the four IDX .gz files). Writes data/fashion-mnist-subset/{train,t10k}-{images-idx3,
labels-idx1}-ubyte.gz: the first 600 training and the first 100 test images of each of
the 10 classes, in their original file order.

Deterministic with no random generator: Fashion-MNIST's files are already in a shuffled
order, so "the first k of each class" is a fair sample, and it needs nothing but the
standard library (no numpy version can change the selection). The gzip streams carry no
file name and a zero timestamp, so the bytes are the same on every run with the same zlib.
"""

import gzip
import hashlib
import os
import struct
import sys

TRAIN_PER_CLASS = 600
TEST_PER_CLASS = 100
CLASSES = 10

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "fashion-mnist-subset")


def read_idx(path, expected_magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, count = struct.unpack(">II", data[:8])
    if magic != expected_magic:
        sys.exit(f"{path}: magic {magic:#010x}, expected {expected_magic:#010x}")
    dims = [count]
    offset = 8
    for _ in range((magic & 0xFF) - 1):
        dims.append(struct.unpack(">I", data[offset:offset + 4])[0])
        offset += 4
    return dims, data[offset:]


def write_idx(path, magic, dims, payload):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    with open(path, "wb") as raw:
        # filename="" and mtime=0: no name or time in the gzip header, so reruns are identical.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(header + payload)


def subset(source_dir, prefix, per_class):
    image_dims, images = read_idx(os.path.join(source_dir, f"{prefix}-images-idx3-ubyte.gz"), 0x803)
    label_dims, labels = read_idx(os.path.join(source_dir, f"{prefix}-labels-idx1-ubyte.gz"), 0x801)
    if image_dims[0] != label_dims[0]:
        sys.exit(f"{prefix}: {image_dims[0]} images but {label_dims[0]} labels")
    image_size = image_dims[1] * image_dims[2]
    taken = [0] * CLASSES
    chosen = []
    for index, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            chosen.append(index)
    if taken != [per_class] * CLASSES:
        sys.exit(f"{prefix}: not enough images per class: {taken}")
    chosen_images = b"".join(images[i * image_size:(i + 1) * image_size] for i in chosen)
    chosen_labels = bytes(labels[i] for i in chosen)
    write_idx(os.path.join(OUT_DIR, f"{prefix}-images-idx3-ubyte.gz"), 0x803,
              [len(chosen), image_dims[1], image_dims[2]], chosen_images)
    write_idx(os.path.join(OUT_DIR, f"{prefix}-labels-idx1-ubyte.gz"), 0x801,
              [len(chosen)], chosen_labels)


def main():
    source_dir = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    os.makedirs(OUT_DIR, exist_ok=True)
    subset(source_dir, "train", TRAIN_PER_CLASS)
    subset(source_dir, "t10k", TEST_PER_CLASS)
    for name in sorted(os.listdir(OUT_DIR)):
        with open(os.path.join(OUT_DIR, name), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        print(f"{digest}  {name}")


if __name__ == "__main__":
    main()
