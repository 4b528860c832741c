"""build(spec): the torch module of a NetSpec or a Net, from the descriptions complexity counts.

This module imports torch only when `build` is called, so `import anynet` stays torch-free;
the modules themselves live in anynet.blocks.
"""

from __future__ import annotations

from anynet.families import describe
from anynet.layers import Net
from anynet.spec import NetSpec


def build(spec: NetSpec | Net, zero_init_final_bn: bool = False):
    """The torch module (anynet.blocks.AnyNet) of a NetSpec or Net, pycls-initialised.

    Its parameters equal complexity(spec)["params"]. zero_init_final_bn: see
    anynet.blocks.init_weights.
    """
    if isinstance(spec, NetSpec):
        net = describe(spec)
    elif isinstance(spec, Net):
        net, spec = spec, None
    else:
        raise ValueError(f"spec: expected a NetSpec or a Net, got {type(spec).__name__}")
    from anynet.blocks import AnyNet, init_weights  # torch, on first use

    model = AnyNet(net, spec)
    init_weights(model, zero_init_final_bn)
    return model
