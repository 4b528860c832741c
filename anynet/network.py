"""A trainable network description: a NetSpec (one AnyNet) or a ReferenceSpec (a classic
network by name), and the one function that turns either into a module and its complexity.

Studies store a network as a plain dict; `network_spec` reads one back ({"reference": ...}
is a reference network, anything else a NetSpec). Workers fit it to their dataset with
`with_input` and train `network(spec)[0]`; search records `network(spec)[1]` or, without
torch, `network_complexity(spec)`.
"""

from __future__ import annotations

from typing import Any

from anynet.build import build
from anynet.complexity import complexity
from anynet.families import describe
from anynet.layers import Net
from anynet.reference import INPUT, ReferenceSpec
from anynet.spec import NetSpec

NetworkSpec = NetSpec | ReferenceSpec


def network_spec(data: dict | NetworkSpec) -> NetworkSpec:
    """Validate a network description: a dict with "reference" is a ReferenceSpec, else a
    NetSpec (pydantic.ValidationError, a ValueError, names the field on bad input)."""
    if isinstance(data, NetSpec | ReferenceSpec):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"net: expected a NetSpec or reference object, got {type(data).__name__}")
    if "reference" in data:
        return ReferenceSpec.model_validate(data)
    return NetSpec.model_validate(data)


def describe_network(spec: NetworkSpec | Net) -> Net:
    """The layer description (anynet.layers.Net) of a network description."""
    if isinstance(spec, Net):
        return spec
    if isinstance(spec, NetSpec):
        return describe(spec)
    if isinstance(spec, ReferenceSpec):
        return spec.net
    raise ValueError(f"spec: expected a NetSpec or a ReferenceSpec, got {type(spec).__name__}")


def with_input(spec: NetworkSpec, **inputs: Any) -> NetworkSpec:
    """The same network for another input (num_classes, in_channels, resolution), validated:
    a reference too small for its strides is a ValueError naming the least resolution."""
    unknown = set(inputs) - set(INPUT)
    if unknown:
        raise ValueError(f"{sorted(unknown)[0]}: not an input; inputs are {list(INPUT)}")
    changed = {k: v for k, v in inputs.items() if getattr(spec, k) != v}
    if not changed:
        return spec
    return type(spec).model_validate(spec.model_dump() | changed)


def network_complexity(spec: NetworkSpec | Net) -> dict[str, int]:
    """{"flops", "params", "acts"} of a network description, exactly (docs/method.md §2)."""
    return complexity(spec if isinstance(spec, NetSpec) else describe_network(spec))


def network(spec: NetworkSpec | Net, zero_init_final_bn: bool = False) -> tuple[Any, dict]:
    """(torch module, complexity) of a network description, both from one layer description.

    The module is initialised as every network of a study is (pycls, docs/method.md §1), so
    reference networks and sampled ones differ only in their architecture.
    """
    target = spec if isinstance(spec, NetSpec) else describe_network(spec)
    model = build(target, zero_init_final_bn)
    if isinstance(spec, ReferenceSpec):
        model.spec = spec
    return model, network_complexity(spec)
