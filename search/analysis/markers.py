"""Reference markers of a study's results: each reference network's error at one level and
where it falls in each space's EDF (docs/method.md §6, reference markers).

Per reference and level: the mean error over its seeds (done and diverged trials; a diverged
one counts as error 1.0, as in the spaces), its band (min–max over the seeds), the standard
deviation (ddof 1), the seeds counted and pending, and its complexity. Per space: the
percentile, the fraction of the space's networks at that level whose error is above the
reference's mean error (with NDS normalisation the weighted fraction, over the networks
inside the range); "resnet20 beats 62% of AnyNetX_E" reads percentile 0.62. A refine child's
seeds copied from its parent (search.store.reference_reuse) count as trained and are counted
apart as n_reused, with a line saying so (`reused`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from search.analysis import statistics as A
from search.store.reference_reuse import REUSED_PREFIX, REUSED_WORKER

COUNTED = ("done", "diverged")


def percentile(error: float | None, errors: np.ndarray, weights=None) -> float | None:
    """The (weighted) fraction of `errors` strictly above `error`; None when either is missing."""
    e = np.asarray(errors, dtype=np.float64).ravel()
    if error is None or not np.isfinite(error) or e.size == 0:
        return None
    w = np.full(e.size, 1.0) if weights is None else np.asarray(weights, dtype=np.float64)
    total = float(w.sum())
    if total <= 0:
        return None
    return float(w[e > error].sum() / total)


def beats_text(label: str, share: float | None, space: str) -> str:
    """'resnet20 beats 62% of AnyNetX_E' (or why there is no percentile yet)."""
    if share is None:
        return f"{label}: no percentile in {space} yet"
    return f"{label} beats {share:.0%} of {space}"


def reference_markers(refs: pd.DataFrame, spec, level: int, spaces: dict) -> dict:
    """Per reference label: its error at `level`, band, complexity and percentile per space.

    `refs` is the trial frame's reference rows (one per label, seed and level); `spaces`
    maps each space name to (its errors at this level, their weights or None).
    """
    out = {}
    here = refs[refs["level"] == level] if len(refs) else refs
    for label in spec.reference_labels():
        rows = here[here["reference"] == label] if len(here) else here
        status = rows["status"] if len(rows) else pd.Series([], dtype=object)
        counted = rows[status.isin(COUNTED)] if len(rows) else rows
        raw = counted["error"].to_numpy(np.float64) if len(counted) else np.zeros(0)
        raw = np.where(counted["status"].to_numpy() == "diverged", np.nan, raw) if len(raw) else raw
        e = A.as_errors(raw)
        mean = float(e.mean()) if e.size else None
        sd = float(e.std(ddof=1)) if e.size > 1 else None
        first = rows.iloc[0] if len(rows) else None
        marker = {
            "name": label,
            "n": int(e.size),
            "seeds": spec.reference_seeds,
            "n_diverged": int((status == "diverged").sum()),
            "n_failed": int((status == "failed").sum()),
            "n_pending": int(status.isin(["waiting", "running"]).sum()),
            "errors": [float(x) for x in e],
            "mean": mean,
            "sd": sd,
            "lo": float(e.min()) if e.size else None,
            "hi": float(e.max()) if e.size else None,
            "band": "min-max over seeds",
            "flops": int(first["flops"]) if first is not None else None,
            "params": int(first["params"]) if first is not None else None,
            "acts": int(first["acts"]) if first is not None else None,
            "percentile": {},
            "text": {},
            **_reused(counted),
        }
        for space, (errors, weights) in spaces.items():
            share = percentile(mean, errors, weights)
            marker["percentile"][space] = share
            marker["text"][space] = beats_text(label, share, space)
        out[label] = marker
    return out


def _reused(counted: pd.DataFrame) -> dict:
    """How many counted seeds a refine child copied from its parent."""
    if not len(counted) or "worker" not in counted:
        return {"n_reused": 0, "reused": None}
    reused = counted[counted["worker"] == REUSED_WORKER]
    if not len(reused):
        return {"n_reused": 0, "reused": None}
    studies = sorted({str(r).removeprefix(REUSED_PREFIX).split()[0] for r in reused["reason"]})
    text = (
        f"{len(reused)} of {len(counted)} seeds reused from study {', '.join(studies)} "
        "(the same network, data and recipe: not trained again)"
    )
    return {"n_reused": int(len(reused)), "reused": text}
