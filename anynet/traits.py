"""The block families and what each one is, in one table (docs/method.md §1; issue 22).

Every fact about a block family that more than one module reads lives here, once: the spec's
validation (anynet.spec), the builders (anynet.families), the design spaces and their
sampler (anynet.spaces), and the refine loop (search.refine) read this table and nothing
else. Adding a family means a row here and its builder in its own module (anynet.families
or anynet.families.classic); a new per-stage field also needs its field on StageSpec,
DesignSpace and SpaceSpec. How a family is built (its layers, activation, head) stays with
its builder (anynet.families.FamilyRules). No imports: anynet.spec derives BlockType from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class BlockTraits:
    """What one block family is, as the spec, spaces, sampler, builders and refine see it."""

    name: str
    # squeeze-excite: se_ratio applies; every other family refuses se_ratio > 0 (never
    # silently ignores it)
    se: bool = False
    # a grouped 3x3 on the inner width round(w·b): b and g both matter, the group rule
    # (anynet.rounding) applies, and a space must say its group widths (or groups)
    bottleneck: bool = False
    # per-stage fields only this family reads (StageSpec) and draws (DesignSpace); None
    # in every other family
    stage_fields: tuple[str, ...] = ()
    # b is a whole number (dense: DenseNet's bn_size, the bottleneck = b x growth rate)
    whole_multiplier: bool = False
    # a RegNet (DDS §3.3) can be made of it: one width, b and g per stage, nothing else
    # drawn, so refine offers an AnyNet space of it its RegNet form
    regnet_form: bool = False


# The table, in the order BlockType lists the families (the JSON schema's enum).
TRAITS: dict[str, BlockTraits] = {
    t.name: t
    for t in (
        BlockTraits("vanilla", regnet_form=True),
        BlockTraits("res_basic", regnet_form=True),
        BlockTraits("res_bottleneck", se=True, bottleneck=True, regnet_form=True),
        BlockTraits("res_bottleneck_linear", se=True, bottleneck=True, regnet_form=True),
        BlockTraits("convnext"),
        BlockTraits("mbconv", se=True, stage_fields=("kernel", "expansion")),
        BlockTraits("dense", whole_multiplier=True),
        BlockTraits("inception", stage_fields=("branches",)),
        BlockTraits("vgg"),
    )
}
BLOCK_NAMES = tuple(TRAITS)

# Views of the table, for the modules that test membership
BOTTLENECK_BLOCKS = tuple(n for n, t in TRAITS.items() if t.bottleneck)
SE_BLOCKS = tuple(n for n, t in TRAITS.items() if t.se)
NO_SE_BLOCKS = tuple(n for n, t in TRAITS.items() if not t.se)
REGNET_BLOCKS = tuple(n for n, t in TRAITS.items() if t.regnet_form)
# per-stage field → the one family that has it
FAMILY_FIELDS: dict[str, str] = {f: n for n, t in TRAITS.items() for f in t.stage_fields}
FAMILY_PER_STAGE = tuple(FAMILY_FIELDS)  # every family's per-stage fields, in table order


def traits(block: str) -> BlockTraits:
    """The row of a block family; ValueError naming `block` for an unknown one."""
    try:
        return TRAITS[block]
    except KeyError:
        raise ValueError(f"block: unknown block family {block!r}") from None


def no_se_message(block: str) -> str:
    """The one error for se_ratio > 0 on a family without SE (spec, spaces and builders)."""
    return f"se_ratio: the {block} block has no SE; use 0"
