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
