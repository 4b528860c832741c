"""The layer table of a network: every layer with its module path, its description and its exact
counts (docs/method.md §2). Paths are the names of the built module's parameters
(anynet.blocks: stem.i, stages.s.i, head.i; a block's downsample.i, f.i, proj.i, activation;
a concatenation's branches.b.i), so a row and a state-dict key name the same layer. No torch.
"""

from __future__ import annotations

import dataclasses

from anynet import layers as L
from anynet.complexity import layer_counts


def _fields(layer) -> dict:
    """The layer's description as plain values (an SE's activation by its kind)."""
    out = {}
    for f in dataclasses.fields(layer):
        value = getattr(layer, f.name)
        out[f.name] = value.kind if isinstance(value, L.Act) else value
    return out


def _row(layer, path: str) -> dict:
    flops, params, acts, _ = layer_counts(layer)
    row = {"path": path, "layer": type(layer).__name__, **_fields(layer)}
    return row | {"flops": flops, "params": params, "acts": acts}


def _rows(nodes, prefix: str, rows: list) -> None:
    for i, node in enumerate(nodes):
        path = f"{prefix}.{i}"
        if isinstance(node, L.Block):
            _rows(node.downsample, f"{path}.downsample", rows)
            _rows(node.transform, f"{path}.f", rows)
            _rows(node.shortcut or (), f"{path}.proj", rows)
            if node.activation is not None:  # one module, not a Sequential
                rows.append(_row(node.activation, f"{path}.activation"))
        elif isinstance(node, L.Concat):
            for b, branch in enumerate(node.branches):
                _rows(branch, f"{path}.branches.{b}", rows)
        elif isinstance(node, L.Repeat):
            raise ValueError("layer table: a batch description (Repeat) is not one network")
        else:
            rows.append(_row(node, path))


def layer_table(net: L.Net) -> list[dict]:
    """One row per layer, in order: path, layer type, its fields, flops, params, acts."""
    rows: list[dict] = []
    _rows(net.stem, "stem", rows)
    for s, stage in enumerate(net.stages):
        _rows(stage, f"stages.{s}", rows)
    _rows(net.head, "head", rows)
    return rows


def part_table(net: L.Net) -> list[dict]:
    """One row per part (stem, each stage, head): its layers, output size and counts."""
    rows = []
    parts = [("stem", net.stem), *((f"stage {s + 1}", st) for s, st in enumerate(net.stages))]
    for name, nodes in (*parts, ("head", net.head)):
        table: list[dict] = []
        _rows(nodes, name, table)
        sized = [r["h_out"] for r in table if "h_out" in r]
        sums = {k: sum(r[k] for r in table) for k in ("flops", "params", "acts")}
        rows.append({"part": name, "layers": len(table), "size": sized[-1] if sized else None,
                     **sums})  # fmt: skip
    return rows
