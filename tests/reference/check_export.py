#!/usr/bin/env python3
"""Loads a network splitnas exported (model.safetensors + model.json) into its reference
PyTorch class, strictly, and compares its evaluation-mode logits on a fixed batch with the
logits splitnas computed on the same batch.

    python check_export.py MODEL_JSON BATCH_SAFETENSORS

BATCH_SAFETENSORS holds `input` (normalised images) and `logits` (splitnas's). Prints one JSON
line: {"reference": ..., "max_abs_difference": ..., "max_abs_logit": ...}; exits non-zero if the
state_dict does not load strictly. Needs torch and safetensors, and the reference package on
PYTHONPATH (NAS-Bench-201: `pip install --no-deps --target DIR xautodl==1.0.0`; DARTS's
NetworkCIFAR, which has no package, is rendered in darts/model.py beside this script).
"""
import importlib
import json
import os
import sys

import torch
from safetensors.torch import load_file


def build(description):
    reference = description["reference"]
    arguments = dict(description["constructor"])
    if reference == "xautodl.models.cell_infers.tiny_network.TinyNetwork":
        from xautodl.models.cell_searchs.genotypes import Structure

        from xautodl.models.cell_infers.tiny_network import TinyNetwork

        model = TinyNetwork(arguments["C"], arguments["N"], Structure.str2structure(arguments["genotype"]), arguments["num_classes"])
        channels = description["data"]["input_channels"]
        if channels != 3:  # the reference stem hard-codes RGB (model.json's notes say so)
            model.stem[0] = torch.nn.Conv2d(channels, arguments["C"], 3, padding=1, bias=False)
        return model, lambda output: output[1]
    if reference == "model.NetworkCIFAR":
        # DARTS has no package: its cnn/model.py, rendered module for module, sits beside this script.
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "darts"))
        model_module = importlib.import_module("model")
        arguments["genotype"] = eval(arguments["genotype"], {"Genotype": model_module.Genotype, "range": range})
        model = model_module.NetworkCIFAR(**arguments)
        channels = description["data"]["input_channels"]
        if channels != 3:
            model.stem[0] = torch.nn.Conv2d(channels, 3 * arguments["C"], 3, padding=1, bias=False)
        return model, lambda output: output[0]
    module_name, _, class_name = reference.rpartition(".")
    model = getattr(importlib.import_module(module_name), class_name)(**arguments)
    return model, lambda output: output[0] if isinstance(output, tuple) else output


def main():
    model_json, batch_path = sys.argv[1], sys.argv[2]
    with open(model_json) as handle:
        description = json.load(handle)
    if description.get("names") != "reference":
        sys.exit(f"{model_json}: exported under splitnas' own names, no reference class to load into")
    model, logits_of = build(description)
    weights = load_file(os.path.join(os.path.dirname(model_json), description["weights"]))
    model.load_state_dict(weights, strict=True)
    model.eval()
    batch = load_file(batch_path)
    with torch.no_grad():
        logits = logits_of(model(batch["input"]))
    difference = (logits - batch["logits"]).abs().max().item()
    print(json.dumps({"reference": description["reference"], "max_abs_difference": difference, "max_abs_logit": batch["logits"].abs().max().item()}))


if __name__ == "__main__":
    main()
