"""RegNet fits of a study's networks (DDS §3.3): e_fit of every one, and the winners' RegNet.

DDS Fig. 8 plots e_fit (how far a network's per-block widths are from the nearest RegNet)
against error for every network of a space; the best networks have low e_fit, which is what
led DDS to the RegNet space. `efits` gives that number for every network with
anynet.regnet_fit.fit_many, memoised by widths so that a running study only fits its new
networks (exactly 0 for a RegNet, an upper bound otherwise). `fit_winners` fits the
lowest-error networks with fit_regnet, the global optimum, and gives the winner as
export-ready RegNet parameters. Both fits stay inside DDS §3.3's RegNet space
(REGNET_RANGES), so no fitted "RegNet" is one that space does not hold (docs/method.md §3).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from functools import lru_cache

import numpy as np

from anynet.regnet import RegNetParams
from anynet.regnet_fit import REGNET_RANGES, fit_many, fit_regnet
from anynet.spec import NetSpec
from search.analysis.statistics import as_errors

_EFIT: OrderedDict[tuple[int, ...], float] = OrderedDict()  # e_fit by block widths
_EFIT_SIZE = 200_000
_LOCK = threading.Lock()


def net_of(value):
    """The NetSpec of a frame's `spec` cell (dict or JSON text), or None if it is not one."""
    try:
        return (
            NetSpec.from_dict(value) if isinstance(value, dict) else NetSpec.from_json(str(value))
        )
    except ValueError:
        return None


def _block_widths(value) -> tuple[int, ...] | None:
    """Per-block widths of a spec cell: read from a dict's stages (no validation: it is ~20x
    cheaper, and the fit needs only widths), else from the parsed NetSpec; None if neither."""
    if isinstance(value, dict):
        try:
            widths = tuple(int(s["width"]) for s in value["stages"] for _ in range(int(s["depth"])))
        except (KeyError, TypeError, ValueError):
            widths = None
        if widths and min(widths) > 0:
            return widths
    net = net_of(value)
    return tuple(net.block_widths) if net is not None else None


def efits(spec_values: list) -> np.ndarray:
    """e_fit of every network (NaN where the spec cell is not a network), DDS §3.3 / Fig. 8."""
    widths = [_block_widths(value) for value in spec_values]
    with _LOCK:
        todo = list(dict.fromkeys(w for w in widths if w is not None and w not in _EFIT))
    fitted = dict(zip(todo, (f[3] for f in fit_many(todo)), strict=True)) if todo else {}
    with _LOCK:
        _EFIT.update(fitted)
        out = np.array([np.nan if w is None else _EFIT.get(w, fitted.get(w)) for w in widths])
        for w in widths:
            if w is not None and w in _EFIT:
                _EFIT.move_to_end(w)
        while len(_EFIT) > _EFIT_SIZE:
            _EFIT.popitem(last=False)
    return out.astype(np.float64)


def clear_cache() -> None:
    """Forget memoised fits (benchmarks measure the cold cost)."""
    with _LOCK:
        _EFIT.clear()
    _fit.cache_clear()


@lru_cache(maxsize=4096)
def _fit(widths: tuple[int, ...]) -> tuple[int, float, float, float]:
    """fit_regnet inside the RegNet space, memoised by widths (a pure function, ~0.2 s)."""
    return fit_regnet(list(widths), ranges=REGNET_RANGES)


def fit_top_regnet(block_widths_list, errors, k: int = 3) -> dict | None:
    """Fit a RegNet (DDS §3.3) to each of the k lowest-error networks; the best fit wins.

    Returns {index, error, depth, w0, wa, wm, e_fit, mean_e_fit, k} (index into the list,
    so the caller can take group width, bottleneck and SE from that network), or None.
    """
    e = as_errors(errors)
    if len(block_widths_list) != e.size:
        raise ValueError(f"block_widths_list: {len(block_widths_list)} networks, {e.size} errors")
    fits = []
    for i in np.argsort(e, kind="stable")[: max(0, int(k))]:
        widths = tuple(int(w) for w in block_widths_list[i])
        if widths:
            fits.append((int(i), widths, _fit(widths)))
    if not fits:
        return None
    i, widths, (w0, wa, wm, e_fit) = min(fits, key=lambda f: (f[2][3], e[f[0]]))
    return {
        "index": i,
        "error": float(e[i]),
        "depth": len(widths),
        "w0": int(w0),
        "wa": float(wa),
        "wm": float(wm),
        "e_fit": float(e_fit),
        "mean_e_fit": float(np.mean([f[2][3] for f in fits])),
        "k": len(fits),
    }


def _regnet_params(value, fit: dict) -> dict:
    """Export-ready RegNet params of a fitted network (g, b, se taken from the network)."""
    out = {k: fit[k] for k in ("depth", "w0", "wa", "wm")}
    net = net_of(value)
    out["group_width"] = int(Counter(net.group_widths).most_common(1)[0][0])
    out["bottleneck_multiplier"] = float(Counter(net.bottleneck_multipliers).most_common(1)[0][0])
    out["se_ratio"] = float(net.se_ratio or 0.0)
    try:
        depths, widths, _ = RegNetParams(**out).widths()
        return {"params": out, "stage_depths": depths, "stage_widths": widths, "block": net.block}
    except ValueError as e:
        return {"params": out, "invalid": " ".join(str(e).split()), "block": net.block}


def fit_winners(spec_values: list, errors: np.ndarray, k: int) -> dict | None:
    """The RegNet fit of the k lowest-error networks that have a readable NetSpec."""
    order, widths = [], []
    for i in np.argsort(errors, kind="stable"):
        if len(order) == k:
            break
        net = net_of(spec_values[i])
        if net is not None:
            order.append(int(i))
            widths.append(net.block_widths)
    fit = fit_top_regnet(widths, errors[order], k)
    if fit is None:
        return None
    j = int(order[fit["index"]])
    return fit | {"index": j} | _regnet_params(spec_values[j], fit)
