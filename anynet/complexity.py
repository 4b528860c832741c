"""Analytic complexity of a NetSpec: flops (multiply-adds), params, acts (docs/method.md §2).

Counts are sums over the layer descriptions of anynet.layers, the same ones `build` turns into
modules, so they equal the built network exactly. No torch. Fast: stems, stages and heads are
memoised on their plain parameters, and a stage counts its first block plus (depth-1) x its
repeated block, so a cached network costs a handful of dictionary look-ups.

Conventions (docs/method.md §2): conv flops k²·c_in·c_out·h'²/groups (+ c_out·h'² with bias);
BN and LayerNorm have 2·C params and no flops (normalisation, activations, pools, adds and
the SE multiply are not multiply-adds); SE is counted at 1x1; Linear flops = params =
in·out + out. acts = output elements of every conv, max-pool and linear.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from anynet import layers as L
from anynet.spec import NetSpec

stage_key = L.stage_key

# (flops, params, acts, bias_flops): bias_flops is the part of flops that is bias additions
Counts = tuple[int, int, int, int]
ZERO: Counts = (0, 0, 0, 0)


def _conv(c: L.Conv) -> Counts:
    hw = c.h_out * c.h_out
    weights = c.k * c.k * c.c_in * c.c_out // c.groups
    bias = c.c_out if c.bias else 0
    return weights * hw + bias * hw, weights + bias, c.c_out * hw, bias * hw


def _se(s: L.SE) -> Counts:
    # two 1x1 convs with bias on the pooled 1x1 map (docs/method.md §2)
    w = 2 * s.c * s.c_se
    return w + s.c_se + s.c, w + s.c_se + s.c, s.c_se + s.c, s.c_se + s.c


def _norm(n: L.BN | L.LayerNorm) -> Counts:
    return 0, 2 * n.c, 0, 0


def _max_pool(p: L.MaxPool) -> Counts:
    return 0, 0, p.c * p.h_out * p.h_out, 0


def _linear(f: L.Linear) -> Counts:
    n = f.c_in * f.c_out + f.c_out
    return n, n, f.c_out, f.c_out


def _nothing(_layer) -> Counts:
    return ZERO


# layer type -> its counts; a new layer type must be added here or counting fails loudly
LAYER_COUNTS = {
    L.Conv: _conv,
    L.SE: _se,
    L.BN: _norm,
    L.LayerNorm: _norm,
    L.MaxPool: _max_pool,
    L.Linear: _linear,
    L.Act: _nothing,
    L.GlobalAvgPool: _nothing,
}


def layer_counts(layer: L.Layer) -> Counts:
    """(flops, params, acts, bias_flops) of one layer description."""
    return LAYER_COUNTS[type(layer)](layer)


def sum_counts(layers) -> Counts:
    """Sum of (flops, params, acts, bias_flops) over layer descriptions."""
    f = p = a = b = 0
    for layer in layers:
        lf, lp, la, lb = LAYER_COUNTS[type(layer)](layer)
        f += lf
        p += lp
        a += la
        b += lb
    return f, p, a, b


@lru_cache(maxsize=4096)
def _stem(kind: str, width: int, in_channels: int, h: int) -> tuple[Counts, int]:
    layers, h_out = L.stem_layers(kind, width, in_channels, h)
    return sum_counts(layers), h_out


class BlockCounts(NamedTuple):
    """Counts of one block and its output size."""

    flops: int
    params: int
    acts: int
    bias_flops: int
    h_out: int


@lru_cache(maxsize=1 << 18)
def block_counts(*args) -> BlockCounts:
    """Memoised counts of `layers.block_layers(*args)` (same arguments)."""
    block = L.block_layers(*args)
    return BlockCounts(*sum_counts(block.layers), block.h_out)


@lru_cache(maxsize=1 << 17)
def _stage(*key) -> tuple[Counts, int]:
    blocks = L.stage_blocks(*key, make=block_counts)
    first, rest = blocks[0], blocks[-1]  # the rest are one repeated block
    n = len(blocks) - 1
    counts = (
        first[0] + n * rest[0],
        first[1] + n * rest[1],
        first[2] + n * rest[2],
        first[3] + n * rest[3],
    )
    return counts, rest.h_out


@lru_cache(maxsize=4096)
def _head(w_in: int, head_width: int, num_classes: int, h: int, final_norm: bool) -> Counts:
    return sum_counts(L.head_layers(w_in, head_width, num_classes, h, final_norm))


def counts(spec: NetSpec) -> Counts:
    """(flops, params, acts, bias_flops) of a whole network."""
    stem = spec.stem
    (f, p, a, b), h = _stem(stem.type, stem.width, spec.in_channels, spec.resolution)
    kind, se, w_in = spec.block, spec.se_ratio, stem.width
    for st in spec.stages:
        c, h = _stage(*stage_key(kind, w_in, st, se, h))
        f += c[0]
        p += c[1]
        a += c[2]
        b += c[3]
        w_in = st.width
    c = _head(w_in, spec.head_width, spec.num_classes, h, kind == "convnext")
    return f + c[0], p + c[1], a + c[2], b + c[3]


def complexity(spec: NetSpec) -> dict[str, int]:
    """{"flops", "params", "acts"} of a NetSpec, exactly as the built network (docs/method.md §2)."""
    f, p, a, _ = counts(spec)
    return {"flops": f, "params": p, "acts": a}


def bias_flops(spec: NetSpec) -> int:
    """The part of `flops` that is bias additions (FLOP counters usually leave it out)."""
    return counts(spec)[3]
