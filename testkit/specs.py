"""Small study specs shared by tests and benchmarks: tiny AnyNet spaces, and one slow to sample."""

from __future__ import annotations

import copy

# issue 4's space: AnyNetX_A, 2 stages of depth 1-2 and width 8-32 behind a 16-wide CIFAR stem
TINY_SPACE = {
    "preset": "AnyNetX_A",
    "stem": {"type": "cifar", "width": 16},
    "stages": 2,
    "depth": [1, 2],
    "width": [8, 32],
}
SMOKE_SPEC = {
    "name": "smoke",
    "dataset": {
        "name": "synthetic",
        "resolution": 16,
        "num_classes": 4,
        "train_size": 256,
        "val_size": 128,
    },
    "spaces": [TINY_SPACE, {**TINY_SPACE, "preset": "AnyNetX_E"}],
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


# two stages of depth 1-2, width 8-24 behind an 8-wide CIFAR stem (the API and e2e tests)
API_SPACE = {"stem": {"type": "cifar", "width": 8}, "stages": 2, "depth": [1, 2], "width": [8, 24]}
# the API tests' study: AnyNetX_A and AnyNetX_E, 5 networks each, two levels, 8 px synthetic data
API_SPEC = {
    "name": "api test",
    "dataset": {"name": "synthetic", "resolution": 8, "num_classes": 4, "train_size": 128},
    "spaces": [{"preset": "AnyNetX_A", **API_SPACE}, {"preset": "AnyNetX_E", **API_SPACE}],
    "samples": 5,
    "fidelities": [1, 2],
}

# A narrow 360-380 MF window on AnyNetX_D/E (docs/method.md §4): AnyNetX_E needs ~2e4
# draws per network there, so sampling these takes several seconds; storing them is quick
SLOW_SPEC = {
    "name": "slow to sample",
    "spaces": [{"preset": "AnyNetX_D"}, {"preset": "AnyNetX_E"}],
    "samples": 400,
    "complexity": {"flops": [360e6, 380e6]},
}
