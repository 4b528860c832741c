"""anynet: exact AnyNet / RegNet networks, their complexity, design spaces and exports.

Pure: specs in, modules and numbers out. Names are imported lazily so that `import anynet`
(and complexity, sampling) never pulls in torch; only `build` does.
"""

from __future__ import annotations

import importlib
import sys
import types

from anynet.spec import NetSpec, StageSpec, StemSpec

# public name -> module that defines it
_LAZY = {
    "build": "anynet.build",
    "complexity": "anynet.complexity",
    "regnet_spec": "anynet.regnet",
    "regnet_widths": "anynet.regnet",
    "fit_regnet": "anynet.regnet_fit",
    "RegNetParams": "anynet.regnet",
    "DesignSpace": "anynet.spaces",
    "SpaceSpec": "anynet.spaces",
    "get_space": "anynet.spaces",
    "PRESETS": "anynet.spaces",
    "sample": "anynet.sampling",
    "InfeasibleError": "anynet.sampling",
    "export": "anynet.export",
}

__all__ = ["NetSpec", "StageSpec", "StemSpec", *_LAZY]


class _Package(types.ModuleType):
    """Keeps `anynet.build` (and complexity, export) the function, not the submodule.

    Importing a submodule makes Python set it as an attribute of the package; where a
    function shares its module's name, store the function instead.
    """

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _LAZY.get(name) == value.__name__:
            value = getattr(value, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str):
    """Import a public name from its module on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'anynet' has no attribute {name!r}")
