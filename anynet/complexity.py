"""Analytic complexity: flops (multiply-adds), params, acts of a NetSpec or Net (docs/method.md §2).

Counts are sums over the layer descriptions (anynet.layers), the same ones `build` turns into
modules, so they equal the built network exactly; what each layer counts is §2. No torch.
One network: NetSpec stems, stages and heads are memoised on their plain values, and a stage
counts its first block plus (depth-1) x its repeated block, so a cached network costs a
handful of dictionary look-ups. A batch (`anynet_counts` with numpy arrays, as the sampler
calls it) walks the same descriptions with one value per candidate.

Public API: `complexity`, `counts`, `bias_flops` (the bias-addition part of flops, which FLOP
counters leave out), `layer_counts` (one layer), `node_counts` and `anynet_counts` (batches).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from anynet import families as F
from anynet import layers as L
from anynet.spec import NetSpec

stage_key = F.stage_key

# (flops, params, acts, bias_flops): bias_flops is the part of flops that is bias additions
Counts = tuple[int, int, int, int]
ZERO: Counts = (0, 0, 0, 0)


def _conv(c: L.Conv) -> Counts:
    hw = c.h_out * c.h_out
    weights = c.k * c.k * c.c_in * c.c_out // c.groups
    if not c.bias:
        return weights * hw, weights, c.c_out * hw, 0
    return (weights + c.c_out) * hw, weights + c.c_out, c.c_out * hw, c.c_out * hw


def _se(s: L.SE) -> Counts:
    # two 1x1 convs with bias on the pooled 1x1 map (docs/method.md §2)
    n = 2 * s.c * s.c_se + s.c_se + s.c
    return n, n, s.c_se + s.c, s.c_se + s.c


def _norm(n: L.BN | L.LayerNorm) -> Counts:
    return 0, 2 * n.c, 0, 0


def _pool(p: L.MaxPool | L.AvgPool | L.AdaptiveAvgPool) -> Counts:
    return 0, 0, p.c * p.h_out * p.h_out, 0


def _linear(f: L.Linear) -> Counts:
    bias = f.c_out if f.bias else 0
    n = f.c_in * f.c_out + bias
    return n, n, f.c_out, bias


def _nothing(_layer) -> Counts:
    return ZERO


# layer type -> its counts; a new layer type must be added here or counting fails loudly
LAYER_COUNTS = {
    L.Conv: _conv,
    L.SE: _se,
    L.BN: _norm,
    L.LayerNorm: _norm,
    L.MaxPool: _pool,
    L.AvgPool: _pool,
    L.AdaptiveAvgPool: _pool,
    L.Linear: _linear,
    L.LayerScale: lambda s: (0, s.c, 0, 0),
    L.Act: _nothing,
    L.GlobalAvgPool: _nothing,
    L.Flatten: _nothing,
    L.Dropout: _nothing,
    L.DropPath: _nothing,
    L.ZeroPadShortcut: _nothing,  # a strided view and zeros: no multiply-adds (He et al. §4.2)
}
# layer type -> the size that must be >= 1 for it to exist (checked on a batch; one
# network raises instead, anynet.layers.need)
LAYER_SIZE = {
    L.Conv: lambda c: c.c_out,
    L.MaxPool: lambda p: p.h_out,
    L.AvgPool: lambda p: p.h_out,
    L.SE: lambda s: s.c_se,
    L.Linear: lambda f: f.c_in,
}


def layer_counts(layer: L.Layer) -> Counts:
    """(flops, params, acts, bias_flops) of one layer description."""
    return LAYER_COUNTS[type(layer)](layer)


def _add(acc: list, terms) -> None:
    """acc += terms, elementwise; in place once acc holds its own arrays, zeros skipped."""
    for i, x in enumerate(terms):
        if not (isinstance(x, int) and x == 0):
            acc[i] += x


def _walk(nodes, acc: list, sizes: list) -> None:
    """Add the counts of nodes to acc, and the sizes that must be >= 1 to `sizes`."""
    for node in nodes:
        kind = type(node)
        count = LAYER_COUNTS.get(kind)
        if count is not None:
            _add(acc, count(node))
            size = LAYER_SIZE.get(kind)
            if size is not None:
                sizes.append(size(node))
        elif kind is L.Block:
            _walk(node.layers, acc, sizes)
        elif kind is L.Concat:
            for branch in node.branches:
                _walk(branch, acc, sizes)
        elif kind is L.Repeat:
            sub: list = [0, 0, 0, 0]
            inner: list = []
            _walk(node.nodes, sub, inner)
            t = node.times
            _add(acc, [x * t for x in sub])
            sizes.append(_all_positive(inner) | (t == 0))  # absent nodes need nothing
        else:
            raise TypeError(f"node_counts: not a layer description: {node!r}")


def _all_positive(sizes: list):
    """Whether every size is >= 1 (each distinct array compared once)."""
    ok = True
    for value in {id(v): v for v in sizes}.values():
        ok = ok & (value >= 1)
    return ok


def node_counts(nodes) -> tuple:
    """(flops, params, acts, bias_flops, ok) of nodes; ints, or arrays over a batch.

    ok is False for a candidate of a batch with a size below 1 somewhere (not a network).
    """
    acc: list = [0, 0, 0, 0]
    sizes: list = []
    _walk(nodes, acc, sizes)
    return (*acc, _all_positive(sizes))


def sum_counts(nodes) -> Counts:
    """Sum of (flops, params, acts, bias_flops) over the nodes of one network."""
    return node_counts(nodes)[:4]


def anynet_counts(
    stem, stem_width, in_channels, resolution, block, se_ratio, stages, head_width, num_classes
) -> tuple:
    """(flops, params, acts, bias_flops, ok) of AnyNets given by their parts (families.Stage).

    With numpy arrays in the stages (one value per candidate) this counts a whole batch from
    the same descriptions `describe` walks (docs/method.md §2); the sampler calls it.
    """
    net = F.describe_anynet(
        stem, stem_width, in_channels, resolution, block, se_ratio, stages, head_width, num_classes
    )
    return node_counts(net.nodes)


@lru_cache(maxsize=4096)
def _stem(kind: str, width: int, in_channels: int, h: int) -> tuple[Counts, int]:
    layers, h_out = F.stem_layers(kind, width, in_channels, h)
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
    """Memoised counts of `families.block_layers(*args)` (same arguments)."""
    block = F.block_layers(*args)
    return BlockCounts(*sum_counts(block.layers), block.h_out)


@lru_cache(maxsize=1 << 17)
def _stage(*key) -> tuple[Counts, int, int]:
    """(counts, h_out, w_out) of a stage given by families.stage_key."""
    whole = F.rules(key[0]).stage
    if whole is not None:  # a family whose blocks differ within a stage (dense)
        nodes, w_out, h_out = whole(*key[1:])
        return sum_counts(nodes), h_out, w_out
    blocks = F.stage_blocks(*key, make=block_counts)
    first, rest = blocks[0], blocks[-1]  # the rest are one repeated block
    n = len(blocks) - 1
    counts = (
        first[0] + n * rest[0],
        first[1] + n * rest[1],
        first[2] + n * rest[2],
        first[3] + n * rest[3],
    )
    return counts, rest.h_out, key[2].width


@lru_cache(maxsize=4096)
def _head(w_in: int, head_width: int, num_classes: int, h: int, kind: str) -> Counts:
    family = F.rules(kind)
    layers = F.head_layers(
        w_in, head_width, num_classes, h, family.final_norm, family.act, family.norm_act
    )
    return sum_counts(layers)


def counts(spec: NetSpec | L.Net) -> Counts:
    """(flops, params, acts, bias_flops) of a whole network."""
    if isinstance(spec, L.Net):
        return sum_counts(spec.nodes)
    stem = spec.stem
    (f, p, a, b), h = _stem(stem.type, stem.width, spec.in_channels, spec.resolution)
    kind, se, w_in = spec.block, spec.se_ratio, stem.width
    for st in spec.stages:
        c, h, w_in = _stage(*stage_key(kind, w_in, st, se, h))
        f += c[0]
        p += c[1]
        a += c[2]
        b += c[3]
    c = _head(w_in, spec.head_width, spec.num_classes, h, kind)
    return f + c[0], p + c[1], a + c[2], b + c[3]


def complexity(spec: NetSpec | L.Net) -> dict[str, int]:
    """{"flops", "params", "acts"} of a NetSpec or Net, exactly as built (docs/method.md §2)."""
    f, p, a, _ = counts(spec)
    return {"flops": f, "params": p, "acts": a}


def bias_flops(spec: NetSpec | L.Net) -> int:
    """The part of `flops` that is bias additions (FLOP counters usually leave it out)."""
    return counts(spec)[3]
