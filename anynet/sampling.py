"""Joint rejection sampling of whole networks from a design space (DDS §3, docs/method.md §4).

Every free value of a network is drawn from its distribution; a candidate that breaks a
constraint or whose complexity falls outside the bounds is rejected, and drawing goes on.
Rejection (never sorting or repairing) keeps the paper's distribution conditioned on the
constraints. "Shared" values are drawn once per network (DDS §3.2: one b, one g for all
stages). Draws are vectorised with numpy in fixed-size batches from one seeded Generator,
so a seed gives the same networks and the first k of n samples are the k a smaller request
gives. The exact complexity (anynet.complexity) decides every bound; a vectorised estimate
(docs/method.md §2 counted over whole batches) only skips candidates clearly outside them.
`Sample.params` holds the values as drawn (d1.., w1.., bot_mul1.., g1.. or groups1..; for
RegNets depth, w0, wa, wm, g, bot_mul and the resulting d1.., w1..); the spec holds the
network after the space's group-compatibility rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np

from anynet.complexity import complexity
from anynet.regnet import QUANTUM, adjust_widths_groups, regnet_spec
from anynet.spaces import DesignSpace
from anynet.spec import BOTTLENECK_BLOCKS, NetSpec

BOUND_KEYS = ("flops", "params", "acts")
EARLY = 1_000_000  # draws after which a hopeless default budget is given up
BATCH = 8192  # candidates per vectorised batch (fixed, so a seed reproduces its draws)
# The estimate only skips candidates more than SLACK (relative) outside a bound, so a
# small disagreement with the exact counter can never reject a network that fits.
SLACK = 0.02
REASONS = (
    "",
    "increasing_width",
    "increasing_depth",
    "group_compatibility",
    "num_stages",
    "regnet_valid",
    "invalid_network",
)
CODE = {r: i for i, r in enumerate(REASONS)}
STAGE_KEYS = ("depth", "width", "stride", "bottleneck_multiplier", "group_width")


class InfeasibleError(ValueError):
    """No (or too few) networks of the space meet its constraints and bounds."""


@dataclass(frozen=True)
class Sample:
    """One sampled network: its spec, its exact complexity and the values drawn for it."""

    spec: NetSpec
    complexity: dict
    params: dict


@dataclass
class SampleResult:
    """Samples plus the bookkeeping of the rejection sampler."""

    samples: list[Sample]
    draws: int
    acceptance: float
    constraint_rejects: dict[str, int] = field(default_factory=dict)
    bound_rejects: dict[str, int] = field(default_factory=dict)


def check_bounds(bounds) -> dict[str, tuple[float, float]]:
    """Validate complexity bounds {flops|params|acts: [lo, hi]}."""
    out: dict[str, tuple[float, float]] = {}
    for key, value in (bounds or {}).items():
        if key not in BOUND_KEYS:
            raise ValueError(f"bounds: unknown key {key!r}; known: {', '.join(BOUND_KEYS)}")
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"bounds.{key}: expected [lo, hi], got {value!r}") from None
        if not (math.isfinite(lo) and lo >= 0 and hi >= lo):
            raise ValueError(f"bounds.{key}: need 0 <= lo <= hi, got [{lo}, {hi}]")
        out[key] = (lo, hi)
    return out


def _py(x):
    """numpy scalar → int or float."""
    return int(x) if isinstance(x, (np.integer, int)) else float(x)


# --- candidates: (codes, estimate | None, build) per batch -------------------------------
# codes[i] = 0 if candidate i met the vectorised constraints, else its REASONS index;
# build(i) → (NetSpec | reason, params) makes the exact network with the regnet module.


def _anynet_batch(space: DesignSpace, rng: np.random.Generator, size: int, net: dict):
    k = int(space.stages)
    shared = {
        "bottleneck_multiplier": space.has("shared_bottleneck"),
        "group_width": space.has("shared_group_width"),
        "groups": space.has("shared_group_width"),
    }
    dr: dict[str, np.ndarray] = {}
    for name in ("depth", "width", "bottleneck_multiplier", "group_width", "groups"):
        if getattr(space, name) is None:
            continue
        dists = space.per_stage(name)
        if shared.get(name):  # DDS §3.2: one value for all stages
            dr[name] = np.repeat(dists[0].draw(rng, (size, 1)), k, axis=1)
        else:
            dr[name] = np.stack([d.draw(rng, size) for d in dists], axis=1)
    d, w, m = dr["depth"], dr["width"], dr["bottleneck_multiplier"].astype(np.float64)
    if "groups" in dr:  # NDS ResNeXt: number of groups → group width of the inner conv
        g = np.maximum(1, np.round(w * m).astype(np.int64) // dr["groups"])
    else:
        g = dr.get("group_width", np.ones_like(w))
    codes = np.zeros(size, dtype=np.int64)
    for constraint, arr in (("increasing_width", w), ("increasing_depth", d)):
        if space.has(constraint):
            bad = np.any(np.diff(arr, axis=1) < 0, axis=1)
            codes[bad & (codes == 0)] = CODE[constraint]
    strides = space.stage_strides(k)
    bottleneck = space.block in BOTTLENECK_BLOCKS
    wa, ga = w, g
    if bottleneck:  # the group rule, on the candidates still alive only
        alive = np.flatnonzero(codes == 0)
        wa, ga = w.copy(), np.array(g, copy=True)
        wa[alive], ga[alive], ok = group_rule(w[alive], m[alive], g[alive], space.rounding)
        codes[alive[~ok.all(axis=1)]] = CODE["group_compatibility"]
        if space.has("increasing_width"):
            bad = np.any(np.diff(wa[alive], axis=1) < 0, axis=1)
            codes[alive[bad & (codes[alive] == 0)]] = CODE["increasing_width"]
    ok = codes == 0  # estimate only the candidates that met the constraints
    est = _scatter(anynet_estimate(net, strides, d[ok], wa[ok], m[ok], ga[ok]), ok)

    def build(i: int):
        di, wi, mi, gi = d[i].tolist(), w[i].tolist(), m[i].tolist(), g[i].tolist()
        params: dict = {"depth": sum(di)}
        params.update({f"d{j + 1}": di[j] for j in range(k)})
        params.update({f"w{j + 1}": wi[j] for j in range(k)})
        params.update({f"bot_mul{j + 1}": mi[j] for j in range(k)})
        if "groups" in dr:
            params.update({f"groups{j + 1}": int(dr["groups"][i, j]) for j in range(k)})
        elif "group_width" in dr:
            params.update({f"g{j + 1}": gi[j] for j in range(k)})
        if shared["bottleneck_multiplier"]:  # one drawn value: also under its plain name
            params["bot_mul"] = mi[0]
        if shared["group_width"]:
            name = "groups" if "groups" in dr else "g"
            params[name] = params.get(f"{name}1", 1)
        if bottleneck:
            wi, gi = _compatible(wi, mi, gi, space.rounding)
            if wi is None:
                return "group_compatibility", params
            if space.has("increasing_width") and any(b < a for a, b in pairwise(wi)):
                return "increasing_width", params  # the rounding rule broke the order
        rows = zip(di, wi, strides, mi, gi, strict=True)
        stages = [dict(zip(STAGE_KEYS, row, strict=True)) for row in rows]
        return NetSpec.model_validate({**net, "stages": stages}), params

    return codes, est, build


def _compatible(w, m, g, rounding):
    """Group compatibility (docs/method.md §3): clamp g to the inner width; divisible widths."""
    inner = [int(round(wj * mj)) for wj, mj in zip(w, m, strict=True)]
    if rounding == "clamp":
        if min(inner) < 1:
            return None, None
        g = [min(gj, vj) for gj, vj in zip(g, inner, strict=True)]
        if any(vj % gj for vj, gj in zip(inner, g, strict=True)):
            return None, None
        return w, g
    try:
        return adjust_widths_groups(w, m, g, rounding)
    except ValueError:  # the torchvision rule refuses an inner width of 0
        return None, None


def _regnet_batch(space: DesignSpace, rng: np.random.Generator, size: int, net: dict):
    dep = space.depth.draw(rng, size)
    w0 = space.w0.draw(rng, size)
    wa = space.wa.draw(rng, size)
    wm = space.wm.draw(rng, size)
    gw = space.group_width.draw(rng, size)
    bm = space.bottleneck_multiplier.draw(rng, size).astype(np.float64)
    codes = np.zeros(size, dtype=np.int64)
    w0f = np.asarray(w0, np.float64)
    bad = (wm <= 1) | (wa < 0) | (w0f <= 0) | (w0f % QUANTUM != 0)
    codes[bad] = CODE["regnet_valid"]
    # Per-block quantised widths, docs/method.md §3 (regnet.quantized_block_widths, vectorised).
    j = np.arange(int(np.max(dep)), dtype=np.float64)[None, :]
    valid = j < dep[:, None]
    with np.errstate(all="ignore"):
        u = w0f[:, None] + np.asarray(wa, np.float64)[:, None] * j
        s = np.round(np.log(u / w0f[:, None]) / np.log(wm[:, None]))
        q = np.round(w0f[:, None] * np.power(wm[:, None], s) / QUANTUM) * QUANTUM
    starts = np.concatenate([np.ones((size, 1), bool), np.diff(q, axis=1) != 0], axis=1) & valid
    num_stages = starts.sum(axis=1)
    want = space.num_stages
    if want is not None:
        # pycls check_regnet_constraints: stage count = max exponent + 1 (none skipped) = k.
        max_s = np.where(valid, s, -1).max(axis=1)
        broke = (num_stages != max_s + 1) | (num_stages != want)
        codes[broke & (codes == 0)] = CODE["num_stages"]
    strides = None if space.strides is None else list(space.strides)
    ok = codes == 0
    est = regnet_estimate(
        net, space.rounding, strides, q[ok], valid[ok], starts[ok], bm[ok], gw[ok]
    )
    est = _scatter(est, ok)

    def build(i: int):
        params = {
            "depth": int(dep[i]),
            "w0": _py(w0[i]),
            "wa": _py(wa[i]),
            "wm": _py(wm[i]),
            "g": int(gw[i]),
            "bot_mul": float(bm[i]),
        }
        spec = regnet_spec(
            int(dep[i]),
            _py(w0[i]),
            float(wa[i]),
            float(wm[i]),
            int(gw[i]),
            float(bm[i]),
            se_ratio=net["se_ratio"],
            rounding=space.rounding,
            stem_width=net["stem"].width,
            resolution=net["resolution"],
            num_classes=net["num_classes"],
            stem_type=net["stem"].type,
            in_channels=net["in_channels"],
        )
        if strides is not None or net["block"] != spec.block or net["head_width"]:
            stages = tuple(
                st.model_copy(update={"stride": strides[j]}) if strides else st
                for j, st in enumerate(spec.stages)
            )
            spec = NetSpec(stages=stages, **net)
        for j, st in enumerate(spec.stages):
            params[f"d{j + 1}"] = st.depth
            params[f"w{j + 1}"] = st.width
        return spec, params

    return codes, est, build


def _scatter(est, ok):
    """Estimates of the rows in `ok` → full-length arrays (NaN elsewhere)."""
    if est is None:
        return None
    full = {}
    for key, v in est.items():
        full[key] = np.full(ok.shape, np.nan)
        full[key][ok] = v
    return full


# --- vectorised estimate (prefilter only; tests hold it to anynet.complexity) -----------
def group_rule(w, m, g, rounding):
    """adjust_widths_groups over arrays: (widths, group widths, ok) (docs/method.md §3)."""
    w = np.asarray(w, np.int64)
    g = np.asarray(g, np.int64)
    m = np.asarray(m, np.float64)
    with np.errstate(all="ignore"):
        if rounding == "clamp":
            v = np.round(w * m).astype(np.int64)
            g = np.minimum(g, np.maximum(v, 1))
            return w, g, (v >= 1) & (v % g == 0)
        if rounding == "pycls":
            v = np.floor(np.maximum(1.0, w * m)).astype(np.int64)
            g = np.minimum(g, v)
            whole = (m > 1) & (m == np.floor(m))
            q = np.where(whole, np.lcm(g, np.floor(m).astype(np.int64)), g)
            v = np.maximum(q, (np.round(v / q) * q).astype(np.int64))
            return np.floor(v / m).astype(np.int64), g, np.ones(w.shape, bool)
        v = np.floor(w * m).astype(np.int64)  # torchvision _make_divisible
        ok = v >= 1
        g = np.minimum(g, np.maximum(v, 1))
        nv = np.maximum(g, np.floor(v + g / 2).astype(np.int64) // g * g)
        nv = np.where(nv < 0.9 * v, nv + g, nv)
        return np.floor(nv / m).astype(np.int64), g, ok


def _conv(c_in, c_out, k, h, groups=1, bias=False):
    """(flops, params, acts) of a k×k conv with output side h (docs/method.md §2)."""
    p = k * k * c_in * c_out // groups + (c_out if bias else 0)
    return p * h * h, p, c_out * h * h


def _block(block, w_in, w, m, g, stride, h, se):
    """(flops, params, acts, h_out) of one block over arrays (docs/method.md §1-2)."""
    ho = (h - 1) // stride + 1
    parts = []
    if block in ("vanilla", "res_basic"):
        parts += [_conv(w_in, w, 3, ho), _conv(w, w, 3, ho)]
        bn = 4 * w
    else:
        wb = np.round(w * m).astype(np.int64)
        groups = np.maximum(1, wb // g)
        parts += [_conv(w_in, wb, 1, h), _conv(wb, wb, 3, ho, groups), _conv(wb, w, 1, ho)]
        bn = 4 * wb + 2 * w
        if se:
            w_se = np.round(w_in * se).astype(np.int64)
            parts += [_conv(wb, w_se, 1, 1, bias=True), _conv(w_se, wb, 1, 1, bias=True)]
    f, p, a = (sum(x[i] for x in parts) for i in range(3))
    if block in ("res_basic", "res_bottleneck"):
        proj = (w_in != w) | (stride != 1)
        pf, pp, pa = _conv(w_in, w, 1, ho)
        f, p, a = f + proj * pf, p + proj * (pp + 2 * w), a + proj * pa
    return f, p + bn, a, ho


def _stem_head(net):
    """(flops, params, acts, side after the stem) of the stem; None if not estimated."""
    stem, h, c = net["stem"], net["resolution"], net["in_channels"]
    if stem.type not in ("cifar", "simple", "resnet") or net["head_width"]:
        return None
    k, s = (3, 1) if stem.type == "cifar" else (3, 2) if stem.type == "simple" else (7, 2)
    h = (h - 1) // s + 1
    f, p, a = _conv(c, stem.width, k, h)
    p += 2 * stem.width
    if stem.type == "resnet":
        h = (h - 1) // 2 + 1
        a += stem.width * h * h
    return f, p, a, h


def _head(w_last, net):
    nc = net["num_classes"]
    return w_last * nc + nc, w_last * nc + nc, nc


def anynet_estimate(net, strides, d, w, m, g):
    """Estimated {flops, params, acts} arrays of a batch of AnyNet candidates."""
    sh = _stem_head(net)
    if sh is None or net["block"] not in ("vanilla", "res_basic", *BOTTLENECK_BLOCKS):
        return None
    f, p, a, h = (np.full(len(d), float(x)) for x in sh)
    h = h.astype(np.int64)
    w_in = np.full(len(d), net["stem"].width, np.int64)
    for j, s in enumerate(strides):
        args = (m[:, j], g[:, j])
        f1, p1, a1, h = _block(net["block"], w_in, w[:, j], *args, s, h, net["se_ratio"])
        f2, p2, a2, _ = _block(net["block"], w[:, j], w[:, j], *args, 1, h, net["se_ratio"])
        rest = d[:, j] - 1
        f, p, a = f + f1 + rest * f2, p + p1 + rest * p2, a + a1 + rest * a2
        w_in = w[:, j]
    hf, hp, ha = _head(w_in, net)
    return {"flops": f + hf, "params": p + hp, "acts": a + ha}


def regnet_estimate(net, rounding, strides, q, valid, starts, m, g):
    """Estimated {flops, params, acts} of a batch of RegNets from per-block widths q."""
    sh = _stem_head(net)
    if sh is None or net["block"] != "res_bottleneck" or rounding == "clamp":
        return None
    size = q.shape[0]
    f, p, a, h = (np.full(size, float(x)) for x in sh)
    h = h.astype(np.int64)
    qi = np.where(valid, q, 8).astype(np.int64)
    w, gg, _ = group_rule(qi, m[:, None], np.broadcast_to(g[:, None], qi.shape), rounding)
    stage = np.cumsum(starts, axis=1) - 1
    w_in = np.full(size, net["stem"].width, np.int64)
    last = w_in
    for j in range(q.shape[1]):
        s = np.where(starts[:, j], 2, 1)
        if strides is not None:
            s = np.where(
                starts[:, j], np.asarray(strides)[np.minimum(stage[:, j], len(strides) - 1)], 1
            )
        bf, bp, ba, ho = _block("res_bottleneck", w_in, w[:, j], m, gg[:, j], s, h, net["se_ratio"])
        on = valid[:, j]
        f, p, a = f + on * bf, p + on * bp, a + on * ba
        h = np.where(on, ho, h)
        last = np.where(on, w[:, j], last)
        w_in = last
    hf, hp, ha = _head(last, net)
    return {"flops": f + hf, "params": p + hp, "acts": a + ha}


# --- the sampler ------------------------------------------------------------------------
def sample(
    space: DesignSpace,
    n: int,
    seed: int,
    bounds: dict[str, tuple[float, float]] | None = None,
    resolution: int | None = None,
    num_classes: int | None = None,
    in_channels: int | None = None,
    max_draws: int | None = None,
    interrupt: Callable[[], bool] | None = None,
) -> SampleResult:
    """Draw n networks of `space` whose complexity lies in `bounds` (joint rejection).

    `interrupt` is asked before each batch; True stops sampling with InfeasibleError (a
    caller's time budget or a cancel).
    """
    if not isinstance(space, DesignSpace):
        raise ValueError(f"space: expected a DesignSpace, got {type(space).__name__}")
    if isinstance(n, bool) or int(n) != n or n < 1:
        raise ValueError(f"n: need an integer >= 1, got {n!r}")
    n = int(n)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: need an integer >= 0, got {seed!r}")
    limits = check_bounds(bounds)
    # Default budget: at least pycls' 1e6 attempts, 1e5 per network (DDS' AnyNetX_E in
    # 360-400 MF needs ~3e7 for 500), at most 1e8; without an explicit budget the sampler
    # also stops once 1e6 draws show that the budget cannot be enough (see below).
    projected = max_draws is None
    max_draws = int(max_draws) if max_draws is not None else min(10**8, max(EARLY, 10**5 * n))
    if max_draws < 1:
        raise ValueError(f"max_draws: need >= 1, got {max_draws}")
    net = {
        "stem": space.stem,
        "block": space.block,
        "se_ratio": space.se_ratio,
        "head_width": space.head_width,
        "num_classes": int(num_classes or space.num_classes),
        "in_channels": int(in_channels or space.in_channels),
        "resolution": int(resolution or space.resolution),
    }
    make = _anynet_batch if space.kind == "anynet" else _regnet_batch
    rng = np.random.default_rng(seed)
    samples: list[Sample] = []
    broke = np.zeros(len(REASONS), dtype=np.int64)
    missed = dict.fromkeys(BOUND_KEYS, 0)
    seen = {key: [math.inf, -math.inf] for key in BOUND_KEYS}
    draws = 0
    while len(samples) < n and draws < max_draws:
        if interrupt is not None and interrupt():
            raise InfeasibleError(
                f"space {space.name!r}: sampling interrupted after {draws} draws "
                f"({len(samples)} of {n} networks)"
            )
        codes, est, build = make(space, rng, BATCH, net)
        take = min(BATCH, max_draws - draws)
        codes = codes[:take]
        near = codes == 0
        if est is not None:
            for key, (lo, hi) in limits.items():
                near &= (est[key][:take] >= lo * (1 - SLACK)) & (
                    est[key][:take] <= hi * (1 + SLACK)
                )
        exact = {key: np.full(take, np.nan) for key in BOUND_KEYS}
        stop = take
        for i in np.flatnonzero(near):
            try:
                spec, params = build(int(i))
                cx = None if isinstance(spec, str) else complexity(spec)
            except ValueError:  # e.g. an SE width of 0: not a network of this space
                spec = "invalid_network"
            if isinstance(spec, str):
                codes[i] = CODE[spec]
                continue
            for key in BOUND_KEYS:
                exact[key][i] = cx[key]
            if all(lo <= cx[key] <= hi for key, (lo, hi) in limits.items()):
                samples.append(Sample(spec=spec, complexity=dict(cx), params=params))
                if len(samples) == n:
                    stop = int(i) + 1
                    break
        codes = codes[:stop]
        broke += np.bincount(codes, minlength=len(REASONS))
        met = codes == 0
        for key in BOUND_KEYS:
            v = exact[key][:stop]
            if est is not None:
                v = np.where(np.isnan(v), est[key][:stop], v)
            v = v[met]
            if v.size:
                seen[key] = [min(seen[key][0], float(v.min())), max(seen[key][1], float(v.max()))]
            if key in limits:
                lo, hi = limits[key]
                missed[key] += int(np.count_nonzero((v < lo) | (v > hi)))
        draws += stop
        got = len(samples)
        if projected and got < n and draws >= EARLY and (not got or draws * n / got > max_draws):
            break  # deterministic early stop: at this acceptance the budget cannot suffice
    broke_named = {REASONS[i]: int(c) for i, c in enumerate(broke) if i and c}
    if len(samples) < n:
        raise InfeasibleError(
            _explain(space, n, len(samples), draws, limits, broke_named, missed, seen)
        )
    return SampleResult(
        samples=samples,
        draws=draws,
        acceptance=len(samples) / draws,
        constraint_rejects=broke_named,
        bound_rejects={k: v for k, v in missed.items() if v},
    )


def _explain(space, n, got, draws, limits, broke, missed, seen) -> str:
    """The InfeasibleError message: which bound rejected most, what the space covers."""
    n_broke = sum(broke.values())
    met = draws - n_broke
    detail = ", ".join(f"{k} {v}" for k, v in sorted(broke.items(), key=lambda kv: -kv[1]))
    broke_text = f"{n_broke} draws broke constraints ({detail})" if broke else ""
    head = f"space {space.name!r}: "
    if met == 0:
        return head + f"no draw in {draws} met the constraints; {broke_text}"
    key = max(missed, key=missed.get) if any(missed.values()) else None
    bound = f"{key} bound [{limits[key][0]:.4g}, {limits[key][1]:.4g}]" if key else "bounds"
    found = f"only {got} of {n} networks" if got else "no network"
    parts = [head + f"{found} met the bounds in {draws} draws"]
    if key:
        valid = f"{missed[key]} of the {met} draws that met the constraints"
        parts.append(f"the {bound} rejected most ({valid})")
        if len(limits) > 1:
            parts.append("rejected per bound: " + ", ".join(f"{k} {missed[k]}" for k in limits))
    if broke_text:
        parts.append(broke_text)
    cover = ", ".join(f"{k} {seen[k][0]:.3g}–{seen[k][1]:.3g}" for k in BOUND_KEYS)
    parts.append(f"this space covers {cover}")
    if got:  # feasible but rare: say how many draws n would take at this acceptance
        parts.append(f"raise max_draws to about {n * draws / got:.2g} to get {n}")
    return "; ".join(parts)
