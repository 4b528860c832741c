"""Small study specs shared by tests and benchmarks: two tiny AnyNet spaces on synthetic data."""

from __future__ import annotations

import copy

SMOKE_SPEC = {
    "name": "smoke",
    "dataset": {
        "name": "synthetic",
        "resolution": 16,
        "num_classes": 4,
        "train_size": 256,
        "val_size": 128,
    },
    "spaces": [
        {
            "preset": "AnyNetX_A",
            "stem": {"type": "cifar", "width": 16},
            "stages": 2,
            "depth": [1, 2],
            "width": [8, 32],
        },
        {
            "preset": "AnyNetX_E",
            "stem": {"type": "cifar", "width": 16},
            "stages": 2,
            "depth": [1, 2],
            "width": [8, 32],
        },
    ],
    "samples": 20,
    "complexity": {"flops": [0, 2e7]},
    "fidelities": [1],
    "recipe": {"batch_size": 64, "lr": 0.1},
    "seed": 0,
}


def smoke_spec(**changes) -> dict:
    """A fresh copy of the smoke spec (issue 4's tiny study), with top-level keys replaced."""
    spec = copy.deepcopy(SMOKE_SPEC)
    spec.update(changes)
    return spec
