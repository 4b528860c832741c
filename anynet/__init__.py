"""anynet: exact networks (AnyNet, RegNet, reference networks), their complexity, design
spaces, the sampler and exports. Pure: descriptions in, modules and numbers out.

`import anynet` does not import torch: `anynet.build` imports it when first called.
Public API beyond these names: anynet.layers (the layer language), anynet.families (its
block families), anynet.complexity.{counts, bias_flops, layer_counts, node_counts,
anynet_counts}, anynet.export.{export_dict, spec_from_pycls} (read a pycls config back),
anynet.network.{describe_network, with_input, network_complexity} (a NetSpec or a reference),
anynet.scaling.{compound, widen, widen_regnet} (the scaling rules `scale` searches).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from anynet.build import build
from anynet.complexity import complexity
from anynet.export import export
from anynet.layers import Net
from anynet.network import NetworkSpec, network, network_spec
from anynet.reference import REFERENCES, ReferenceSpec, reference
from anynet.regnet import RegNetParams, regnet_spec, regnet_widths
from anynet.regnet_fit import fit_regnet
from anynet.rounding import Rounding
from anynet.scaling import scale
from anynet.spaces import PRESETS, DesignSpace, get_space
from anynet.spaces.sampling import InfeasibleError, sample
from anynet.spec import NetSpec, StageSpec, StemSpec

__all__ = [
    "PRESETS",
    "REFERENCES",
    "DesignSpace",
    "InfeasibleError",
    "Net",
    "NetSpec",
    "NetworkSpec",
    "ReferenceSpec",
    "RegNetParams",
    "Rounding",
    "StageSpec",
    "StemSpec",
    "build",
    "complexity",
    "export",
    "fit_regnet",
    "get_space",
    "network",
    "network_spec",
    "reference",
    "regnet_spec",
    "regnet_widths",
    "sample",
    "scale",
]

# Module paths from before anynet's spaces/, reference/ and families/ packages (2026-12):
# `import anynet.sampling` and `from anynet.candidates import ...` load the module's new home.
MOVED = {
    "anynet.sampling": "anynet.spaces.sampling",
    "anynet.candidates": "anynet.spaces.candidates",
    "anynet.family_spaces": "anynet.spaces.families",
    "anynet.preset_catalog": "anynet.spaces.catalog",
    "anynet.classic_families": "anynet.families.classic",
    "anynet.reference_torchvision": "anynet.reference.torchvision",
    "anynet.reference_papers": "anynet.reference.papers",
    "anynet.reference_export": "anynet.reference.export",
}


class _MovedLoader(importlib.abc.Loader):
    """Loads an old module path as the module at its new one (the same module object)."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec):
        return importlib.import_module(self.new)

    def exec_module(self, module) -> None:
        pass  # already executed under its new name


class _MovedFinder(importlib.abc.MetaPathFinder):
    """Finds the old module paths of MOVED."""

    def find_spec(self, name, path=None, target=None):
        new = MOVED.get(name)
        return importlib.util.spec_from_loader(name, _MovedLoader(new)) if new else None


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedFinder())
