"""The preset design spaces as a catalogue: family, one-line description, parameter ranges.

What the study form (GET /api/presets) shows for each entry of anynet.spaces.PRESETS; the
sources of the ranges are in anynet.spaces and anynet.spaces.families (docs/method.md §4).
"""

from __future__ import annotations

from anynet.spaces import FAMILY_PER_STAGE, PER_STAGE, PRESETS, Choice, DesignSpace, support

# (family, description) per preset; tests hold this table and PRESETS to the same names
_DDS = "DDS §3.2: 4 free stages, log-uniform d ≤ 16, w ≤ 1024 (÷8), b ∈ {1,2,4}, g ≤ 32"
_STEPS = {
    "A": "",
    "B": "; shared bottleneck b",
    "C": "; shared b and group width g",
    "D": "; shared b, g; widths increase",
    "E": "; shared b, g; widths and depths increase",
}
INFO: dict[str, tuple[str, str]] = {
    **{f"AnyNetX_{k}": ("AnyNetX", f"{_DDS}{v}") for k, v in _STEPS.items()},
    **{f"AnyNetY_{k}": ("AnyNetY", f"AnyNetX_{k} with SE 1/4{v}") for k, v in _STEPS.items()},
    "RegNetX": ("RegNet", "DDS §3.3: d < 64, w0, wa < 256, 1.5 ≤ wm ≤ 3; 4 stages"),
    "RegNetY": ("RegNet", "RegNetX with SE 1/4"),
    "RegNetX_pycls": ("RegNet", "pycls' REGNET_SAMPLER (DDS §4): d 12–28, wm 2–3, b = 1"),
    "RegNetY_pycls": ("RegNet", "RegNetX_pycls with SE 1/4"),
    "Vanilla": ("NDS CIFAR", "NDS §3: 3 stages of VGG-like blocks, 32 px, 10 classes"),
    "ResNet": ("NDS CIFAR", "NDS §3: 3 stages of basic residual blocks, 32 px, 10 classes"),
    "ResNeXt_A": ("NDS CIFAR", "NDS §3: ResNeXt blocks, widths 16–256, 1–4 groups"),
    "ResNeXt_B": ("NDS CIFAR", "NDS §3: ResNeXt blocks, widths 64–1024, 1–16 groups"),
    "EfficientNet": ("EfficientNet", "B0's 7 mbconv stages, MnasNet's kernels, widths, t"),
    "DenseNet": ("DenseNet", "DenseNet-BC's 4 dense stages, growth 12–48"),
    "Inception": ("Inception", "GoogLeNet's inception stages 3–5, branch weights 1–4"),
    "VGG": ("VGG", "VGG-BN's 5 stages of 1–2 vanilla blocks, widths ½–2x VGG's"),
}
RANGE_FIELDS = (*PER_STAGE, *FAMILY_PER_STAGE, "w0", "wa", "wm")


def dist_range(dist) -> dict:
    """{"kind", "lo", "hi"} of a distribution (and "values" for a choice)."""
    lo, hi = support(dist)
    out = {"kind": dist.kind, "lo": lo, "hi": hi}
    if isinstance(dist, Choice):
        out["values"] = list(dist.values)
    return out


def parameters(space: DesignSpace) -> dict[str, dict | list[dict]]:
    """Each drawn parameter's range: one for all stages, or a list with one per stage."""
    out: dict[str, dict | list[dict]] = {}
    for field in RANGE_FIELDS:
        value = getattr(space, field)
        if value is None:
            continue
        out[field] = (
            [dist_range(d) for d in value] if isinstance(value, tuple) else dist_range(value)
        )
    return out


def catalog() -> list[dict]:
    """Every preset: name, family, description, kind, block, stages, input and ranges."""
    rows = []
    for name, space in PRESETS.items():
        family, description = INFO[name]
        rows.append({
            "name": name,
            "family": family,
            "description": description,
            "kind": space.kind,
            "block": space.block,
            "stages": space.stages if space.kind == "anynet" else space.num_stages,
            "stem": space.stem.model_dump(mode="json"),
            "se_ratio": space.se_ratio,
            "resolution": space.resolution,
            "num_classes": space.num_classes,
            "constraints": [c if isinstance(c, str) else dict(c) for c in space.constraints],
            "parameters": parameters(space),
        })  # fmt: skip
    return rows
