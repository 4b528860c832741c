"""Export a RegNet or a NetSpec to pycls YAML, timm, torchvision or our JSON (docs/method.md §3).

An export is honest only if the target builds *the same network*: each export names the
group-compatibility rule its target applies and checks the stages the target will build
against ours (with the target's own code when it is importable, else with our copy of its
rule); where the target's rule would build another network, pycls and torchvision get the
stages written out and timm, which builds 4-stage RegNets only, a refusal saying why
(docs/method.md §3, "Exports").

(Past 400 lines on purpose: the three targets' rules, their checks against ours and the
reader of pycls configs back into a NetSpec are one round trip, tested as one.)
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from typing import Any

import yaml

from anynet.reference import ReferenceSpec
from anynet.reference.export import export_reference, render_reference
from anynet.regnet import QUANTUM, RegNetParams, adjust_widths_groups, regnet_spec, stages_of
from anynet.regnet_fit import recognise_regnet
from anynet.spec import BOTTLENECK_BLOCKS, NetSpec

FORMATS = ("pycls", "timm", "torchvision", "json")
_PYCLS_STEM = {"cifar": "res_stem_cifar", "simple": "simple_stem_in", "resnet": "res_stem_in"}
_PYCLS_BLOCK = {
    "vanilla": "vanilla_block",
    "res_basic": "res_basic_block",
    "res_bottleneck": "res_bottleneck_block",
    "res_bottleneck_linear": "res_bottleneck_linear_block",
}
_SPEC_KW = ("stem_width", "resolution", "num_classes", "stem_type", "in_channels")


_STAGE_KEYS = ("stage_depths", "stage_widths", "group_widths")


def _stages(spec: NetSpec) -> dict:
    return dict(
        zip(_STAGE_KEYS, (spec.stage_depths, spec.stage_widths, spec.group_widths), strict=True)
    )


def regnet_kw(spec: NetSpec) -> dict:
    """regnet_spec keyword arguments that reproduce the non-RegNet parts of `spec`."""
    values = (spec.stem.width, spec.resolution, spec.num_classes, spec.stem.type)
    return dict(zip(_SPEC_KW, (*values, spec.in_channels), strict=True))


def _pre_rule_widths(w: int, b: float, g: int, g_out: int, rounding: str) -> list[int]:
    """Multiples of 8 that the group rule turns into stage width w with group width g_out."""
    out = []
    for c in range(QUANTUM, 2 * w + QUANTUM, QUANTUM):
        try:
            if adjust_widths_groups([c], [b], [g], rounding) == ([w], [g_out]):
                out.append(c)
        except ValueError:  # an inner width of 0: no network
            continue
    return out


def as_regnet(spec: NetSpec, rounding: str) -> RegNetParams | None:
    """RegNet parameters that regenerate exactly `spec` under `rounding`, or None."""
    if (
        spec.block != "res_bottleneck"
        or spec.head_width
        or len(set(spec.bottleneck_multipliers)) != 1
        or any(s.stride != 2 for s in spec.stages)
    ):
        return None
    b = spec.stages[0].bottleneck_multiplier
    # The group rule may have moved widths (docs/method.md §3): fit the widths it maps onto ours.
    g = max(spec.group_widths)  # the requested g; smaller ones were clamped to inner widths
    allowed = [
        _pre_rule_widths(s.width, b, g, s.group_width, rounding)
        for s in spec.stages
        for _ in range(s.depth)
    ]
    if not all(allowed):
        return None
    found = recognise_regnet(spec.block_widths, allowed=allowed)
    if found is None:
        return None
    w0, wa, wm = found
    p = RegNetParams(
        depth=spec.depth, w0=w0, wa=wa, wm=wm, group_width=g, bottleneck_multiplier=b,
        se_ratio=spec.se_ratio, rounding=rounding,
    )  # fmt: skip
    return p if p.spec(**regnet_kw(spec)) == spec else None


def _resolve(target: RegNetParams | NetSpec, spec_kw: dict) -> tuple[RegNetParams | None, NetSpec]:
    if isinstance(target, RegNetParams):
        unknown = set(spec_kw) - set(_SPEC_KW)
        if unknown:
            raise ValueError(
                f"{sorted(unknown)[0]}: not a RegNet spec option ({', '.join(_SPEC_KW)})"
            )
        return target, target.spec(**spec_kw)
    if isinstance(target, NetSpec):
        if spec_kw:
            raise ValueError(f"{next(iter(spec_kw))}: a NetSpec export takes no spec options")
        return None, target
    raise ValueError(f"target: expected RegNetParams or NetSpec, got {type(target).__name__}")


# --- the rule each target applies ----------------------------------------------------------
# True inside `own_rules()`: the targets' rules are computed with dse's copies, importing
# neither torchvision nor timm (seconds cold): for asking which formats build a network
_OWN_RULES: contextvars.ContextVar[bool] = contextvars.ContextVar("own_rules", default=False)


@contextlib.contextmanager
def own_rules():
    """Within it, exports check the targets' rules with dse's copies (tested equal to theirs)."""
    token = _OWN_RULES.set(True)
    try:
        yield
    finally:
        _OWN_RULES.reset(token)


def torchvision_stages(p: RegNetParams) -> tuple[dict, str]:
    """Stages torchvision's BlockParams.from_init_params builds from p, and what computed them."""
    try:
        if _OWN_RULES.get():
            raise ImportError("own_rules")
        from torchvision.models.regnet import BlockParams
    except ImportError:
        tv = p.model_copy(update={"rounding": "torchvision"})
        return dict(
            zip(_STAGE_KEYS, tv.widths(), strict=True)
        ), "dse's copy of the torchvision rule"
    bp = BlockParams.from_init_params(**_tv_init_args(p))
    got = (list(bp.depths), list(bp.widths), list(bp.group_widths))
    return dict(zip(_STAGE_KEYS, got, strict=True)), "torchvision's BlockParams"


def timm_stages(p: RegNetParams) -> tuple[dict, str]:
    """Stages timm's RegNet builds from p's RegNetCfg, and what computed them."""
    ratio = _timm_min_ratio(p.rounding)
    try:
        if _OWN_RULES.get():
            raise ImportError("own_rules")
        from timm.models.regnet import adjust_widths_groups_comp, generate_regnet
    except ImportError:
        return dict(
            zip(_STAGE_KEYS, p.widths(), strict=True)
        ), f"dse's copy of the {p.rounding} rule"
    widths, n, groups = generate_regnet(p.wa, p.w0, p.wm, p.depth, p.group_width)
    depths, stage_widths = stages_of(widths)  # timm: torch.unique; widths never decrease
    ws, gs = adjust_widths_groups_comp(stage_widths, [p.bottleneck_multiplier] * n, groups, ratio)
    return dict(zip(_STAGE_KEYS, (depths, ws, gs), strict=True)), "timm's regnet functions"


def _timm_min_ratio(rounding: str) -> float:
    # timm: group_min_ratio=0 → quantize_float (pycls); 0.9 → make_divisible (torchvision).
    return 0.0 if rounding == "pycls" else 0.9


def _tv_init_args(p: RegNetParams) -> dict:
    return {
        "depth": p.depth,
        "w_0": p.w0,
        "w_a": p.wa,
        "w_m": p.wm,
        "group_width": p.group_width,
        "bottleneck_multiplier": p.bottleneck_multiplier,
        "se_ratio": p.se_ratio or None,
    }


# --- formats -------------------------------------------------------------------------------
def _pycls(regnet: RegNetParams | None, spec: NetSpec) -> dict:
    if spec.stem.type not in _PYCLS_STEM:
        raise ValueError(f"stem.type: pycls has no {spec.stem.type!r} stem")
    if spec.block not in _PYCLS_BLOCK:
        raise ValueError(f"block: pycls has no {spec.block!r} block")
    if spec.in_channels != 3:
        raise ValueError(f"in_channels: pycls stems take 3 channels, not {spec.in_channels}")
    if spec.se_ratio and spec.block not in BOTTLENECK_BLOCKS:
        raise ValueError(f"se_ratio: pycls applies SE only in bottleneck blocks, not {spec.block}")
    given = regnet is not None
    if regnet is None:
        regnet = as_regnet(spec, "pycls")
    elif regnet.rounding != "pycls":
        same = regnet.model_copy(update={"rounding": "pycls"})
        regnet = same if same.spec(**regnet_kw(spec)) == spec else None
    se = {"SE_ON": bool(spec.se_ratio), "SE_R": float(spec.se_ratio or 0.25)}
    common = {"TRAIN": {"IM_SIZE": spec.resolution}, "TEST": {"IM_SIZE": spec.resolution}}
    if regnet is not None:
        model = {"TYPE": "regnet", "NUM_CLASSES": spec.num_classes}
        cfg = {
            "STEM_TYPE": _PYCLS_STEM[spec.stem.type],
            "STEM_W": spec.stem.width,
            "BLOCK_TYPE": "res_bottleneck_block",
            "STRIDE": 2,
            "DEPTH": regnet.depth,
            "W0": regnet.w0,
            "WA": regnet.wa,
            "WM": regnet.wm,
            "GROUP_W": regnet.group_width,
            "BOT_MUL": regnet.bottleneck_multiplier,
            **se,
        }
        config = {"MODEL": model, "REGNET": cfg, **common}
        note = "pycls builds these RegNet parameters with the pycls rule: the same network"
    else:
        model = {"TYPE": "anynet", "NUM_CLASSES": spec.num_classes}
        cfg = {
            "STEM_TYPE": _PYCLS_STEM[spec.stem.type],
            "STEM_W": spec.stem.width,
            "BLOCK_TYPE": _PYCLS_BLOCK[spec.block],
            "DEPTHS": spec.stage_depths,
            "WIDTHS": spec.stage_widths,
            "STRIDES": [s.stride for s in spec.stages],
            "BOT_MULS": spec.bottleneck_multipliers,
            "GROUP_WS": spec.group_widths,
            **se,
        }
        if spec.block not in BOTTLENECK_BLOCKS:  # pycls 0.1.1's basic/vanilla blocks refuse b, g
            del cfg["BOT_MULS"], cfg["GROUP_WS"]
        if spec.head_width:  # a key pycls 0.1.1 (the package index's) refuses: only when used
            cfg["HEAD_W"] = spec.head_width
        config = {"MODEL": model, "ANYNET": cfg, **common}
        note = "pycls builds the explicit stages as given: the same network"
        if spec.head_width or spec.block == "res_bottleneck_linear":
            note += " (needs a pycls newer than 0.1.1: ANYNET.HEAD_W, linear bottlenecks)"
        if given:
            note += " (the pycls rule would give a different network from the RegNet parameters)"
    return {"rule": "pycls", "note": note, "config": config}


def _timm(regnet: RegNetParams | None, spec: NetSpec) -> dict:
    if spec.block != "res_bottleneck":
        raise ValueError(f"block: timm's RegNet builds res_bottleneck blocks, not {spec.block}")
    if spec.stem.type != "simple":
        raise ValueError(
            f"stem.type: timm's RegNet has only the simple stem, not {spec.stem.type!r}"
        )
    if len(spec.stages) != 4:
        raise ValueError(
            f"stages: timm's RegNet builds exactly 4 stages (RegNet.__init__ asserts 4 stage "
            f"configs and forward_features runs s1 to s4), this network has {len(spec.stages)}; "
            "pycls, torchvision and json build any number"
        )
    if regnet is None:
        regnet = as_regnet(spec, "pycls") or as_regnet(spec, "torchvision")
        if regnet is None:
            raise ValueError(
                "target: timm builds only RegNets, and no RegNet parameters regenerate this network"
            )
    got, checked = timm_stages(regnet)
    if got != _stages(spec):
        raise ValueError(
            f"rounding: timm would build stage widths {got['stage_widths']} from these parameters, "
            f"not {spec.stage_widths} ({checked})"
        )
    cfg = {
        "depth": regnet.depth,
        "w0": regnet.w0,
        "wa": regnet.wa,
        "wm": regnet.wm,
        "group_size": regnet.group_width,
        "bottle_ratio": regnet.bottleneck_multiplier,
        "se_ratio": spec.se_ratio,
        "group_min_ratio": _timm_min_ratio(regnet.rounding),
        "stem_width": spec.stem.width,
    }
    note = (
        f"timm applies the {regnet.rounding} rule (group_min_ratio={cfg['group_min_ratio']}); "
        f"same network, checked with {checked}"
    )
    config = {"cfg": cfg, "num_classes": spec.num_classes, "in_chans": spec.in_channels}
    return {"rule": regnet.rounding, "note": note, "config": config}


def _torchvision(regnet: RegNetParams | None, spec: NetSpec) -> dict:
    if spec.block != "res_bottleneck":
        raise ValueError(
            f"block: torchvision's RegNet builds res_bottleneck blocks, not {spec.block}"
        )
    if spec.stem.type != "simple":
        raise ValueError(
            f"stem.type: torchvision's RegNet has only the simple stem, not {spec.stem.type!r}"
        )
    if spec.in_channels != 3:
        raise ValueError(
            f"in_channels: torchvision's RegNet stem takes 3 channels, not {spec.in_channels}"
        )
    if spec.head_width:
        raise ValueError("head_width: torchvision's RegNet has no 1x1 conv head")
    if regnet is None:
        regnet = as_regnet(spec, "torchvision")
    if regnet is not None:
        got, checked = torchvision_stages(regnet)
        if got == _stages(spec):
            config = {"from_init_params": _tv_init_args(regnet)}
            note = f"torchvision applies the torchvision rule: the same network ({checked})"
            return _tv_result(config, spec, True, note)
        note = (
            f"torchvision's rule would build stage widths {got['stage_widths']} from these "
            f"{regnet.rounding}-rounded RegNet parameters, not {spec.stage_widths} ({checked}); "
            "exported as explicit BlockParams, which torchvision builds as given"
        )
    else:
        note = "not a torchvision-rounded RegNet: exported as explicit BlockParams, built as given"
    block_params = {
        "depths": spec.stage_depths,
        "widths": spec.stage_widths,
        "group_widths": spec.group_widths,
        "bottleneck_multipliers": spec.bottleneck_multipliers,
        "strides": [s.stride for s in spec.stages],
        "se_ratio": spec.se_ratio or None,
    }
    return _tv_result({"block_params": block_params}, spec, False, note)


def _tv_result(config: dict, spec: NetSpec, rule_agrees: bool, note: str) -> dict:
    config = {**config, "num_classes": spec.num_classes, "stem_width": spec.stem.width}
    return {
        "rule": "torchvision",
        "rule_agrees": rule_agrees,
        "note": note,
        "config": config,
    }


def _json(regnet: RegNetParams | None, spec: NetSpec) -> dict:
    rule = regnet.rounding if regnet is not None else None
    note = "our own format: the NetSpec is the network; regnet holds the parameters it came from"
    config = {
        "spec": spec.to_dict(),
        "regnet": regnet.model_dump() if regnet else None,
        "rule": rule,
    }
    return {"rule": rule, "note": note, "config": config}


_FORMATS = {"pycls": _pycls, "timm": _timm, "torchvision": _torchvision, "json": _json}


def export_dict(target: RegNetParams | NetSpec | ReferenceSpec, fmt: str, **spec_kw: Any) -> dict:
    """Structured export: format, rule the target applies, note, config, stages.

    Every export builds the same network (the module docstring says how), so the result
    does not say so per export. A reference network exports by name
    (anynet.reference.export).
    """
    if isinstance(target, ReferenceSpec):
        return export_reference(target, fmt)
    if fmt not in _FORMATS:
        raise ValueError(f"format: must be one of {', '.join(FORMATS)}, got {fmt!r}")
    regnet, spec = _resolve(target, spec_kw)
    out = _FORMATS[fmt](regnet, spec)
    return {"format": fmt, **out, **_stages(spec)}


def export(target: RegNetParams | NetSpec | ReferenceSpec, fmt: str, **spec_kw: Any) -> str:
    """Export text the target reads (YAML, Python or JSON) building the same network."""
    return render(export_dict(target, fmt, **spec_kw))


# --- text ------------------------------------------------------------------------------------
def _kwargs(kw: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


def render(out: dict) -> str:
    """The text of a structured export (export_dict's result)."""
    if "reference" in out:
        return render_reference(out)
    fmt, config = out["format"], out["config"]
    head = (
        f"# {out['note']}\n# stage depths {out['stage_depths']}, widths {out['stage_widths']}, "
        f"group widths {out['group_widths']}\n"
    )
    if fmt == "json":
        return json.dumps(config, indent=2) + "\n"
    if fmt == "pycls":
        import yaml

        return head + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    if fmt == "timm":
        kw = {"num_classes": config["num_classes"], "in_chans": config["in_chans"]}
        return (
            head
            + "from timm.models.regnet import RegNet, RegNetCfg\n\n"
            + f"cfg = RegNetCfg({_kwargs(config['cfg'])})\nmodel = RegNet(cfg, {_kwargs(kw)})\n"
        )
    kw = {"num_classes": config["num_classes"], "stem_width": config["stem_width"]}
    if "from_init_params" in config:
        params = f"BlockParams.from_init_params({_kwargs(config['from_init_params'])})"
    else:
        params = f"BlockParams({_kwargs(config['block_params'])})"
    return (
        head
        + "from torchvision.models.regnet import BlockParams, RegNet\n\n"
        + f"block_params = {params}\n"
        + f"model = RegNet(block_params, {_kwargs(kw)})\n"
    )


def spec_from_pycls(text: str) -> NetSpec:
    """Read a pycls YAML config (as export writes it) back into the NetSpec pycls builds."""
    cfg = yaml.safe_load(text)
    if not isinstance(cfg, dict) or "MODEL" not in cfg:
        raise ValueError("pycls: expected a YAML mapping with a MODEL section")
    kind = str(cfg["MODEL"].get("TYPE", "")).lower()
    num_classes = int(cfg["MODEL"].get("NUM_CLASSES", 1000))
    resolution = int(cfg.get("TRAIN", {}).get("IM_SIZE", 224))
    stems = {v: k for k, v in _PYCLS_STEM.items()}
    blocks = {v: k for k, v in _PYCLS_BLOCK.items()}
    if kind == "regnet":
        r = cfg["REGNET"]
        se = float(r.get("SE_R", 0.25)) if r.get("SE_ON") else 0.0
        return regnet_spec(
            int(r["DEPTH"]),
            r["W0"],
            r["WA"],
            r["WM"],
            int(r["GROUP_W"]),
            bottleneck_multiplier=float(r.get("BOT_MUL", 1.0)),
            se_ratio=se,
            rounding="pycls",
            stem_width=int(r.get("STEM_W", 32)),
            resolution=resolution,
            num_classes=num_classes,
            stem_type=stems[r.get("STEM_TYPE", "simple_stem_in")],
        )
    if kind == "anynet":
        a = cfg["ANYNET"]
        stages = [
            {"depth": d, "width": w, "stride": s}
            for d, w, s in zip(a["DEPTHS"], a["WIDTHS"], a["STRIDES"], strict=True)
        ]
        for stage, b, g in zip(stages, a.get("BOT_MULS", []), a.get("GROUP_WS", []), strict=False):
            stage.update(bottleneck_multiplier=b, group_width=g)  # absent: the blocks ignore them
        return NetSpec.from_dict(
            {
                "stem": {"type": stems[a["STEM_TYPE"]], "width": a["STEM_W"]},
                "block": blocks[a["BLOCK_TYPE"]],
                "stages": stages,
                "se_ratio": float(a.get("SE_R", 0.25)) if a.get("SE_ON") else 0.0,
                "head_width": int(a.get("HEAD_W", 0)),
                "num_classes": num_classes,
                "resolution": resolution,
            }
        )
    raise ValueError(f"MODEL.TYPE: expected regnet or anynet, got {kind!r}")
