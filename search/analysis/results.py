"""A study's results: the numbers docs/method.md §6 compares design spaces by, as one JSON-able dict.

`study_results` is a pure function of the store's trial frame and the study spec;
`results_for` reads both from a store (the API caches its answers: api.http.results_cache).
The statistics live in search.analysis.statistics, .normalize, .fits, .refinement and
.learning; this module assembles them as §6 says. `fidelity` is in epochs, None = the lowest
level (the only unbiased sample of each space, search.spec.fidelity). Trials counted: `done`
and `diverged` (error 1.0, also n_diverged); `failed`, `cancelled` and unfinished ones are
left out and counted (n_failed, n_cancelled, n_pending). api.http.schemas.Results is the
one definition of what `results_for` returns (`study_results` less `study_id` and
`failures`): every number finite or null, no key it does not name (the API validates each
answer; tests/test_results.py checks key for key).
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from anynet.regnet_fit import REGNET_RANGES
from search.analysis import statistics as A
from search.analysis.fits import efits, fit_winners
from search.analysis.markers import reference_markers
from search.analysis.normalize import Normalisation, ks_refusal, normalise
from search.analysis.suggestions import benjamini_hochberg, refinement_suggestions
from search.jsonable import Ready as _Ready
from search.jsonable import json_safe as _jsonable
from search.refine import annotate
from search.spec.learning import not_learned_spaces, space_learning
from search.spec.reproducibility import mixed_setting
from search.store.studies import StudyNotFound

NORMALIZE = ("flops", "params", "acts")
PLOT_POINTS = 500  # EDF step points sent per space; statistics always use every trial
PLOT_DECIMALS = 6  # plotted values are rounded (halves the JSON); statistics are not
TOP_K = 1  # winners per space fitted (DDS §3.3); each fit costs ~0.2 s cold, see benchmarks
COMPLEXITY_COLUMNS = ("flops", "params", "acts", "depth")
IMBALANCE_REPS = 199  # permutations of the within-bin complexity test (a diagnostic)
_STAGE = re.compile(r"^p_(d|w|bot_mul|g|groups)(\d+)$")


def _floats(values, decimals: int | None = None) -> list:
    """A float list with NaN and infinities as None (JSON has neither), optionally rounded."""
    a = np.asarray(values, dtype=np.float64)
    if decimals is not None:
        a = np.round(a, decimals)
    if np.all(np.isfinite(a)):
        return _Ready(a.tolist())
    out = a.astype(object)
    out[~np.isfinite(a)] = None
    return _Ready(out.tolist())


def _num(v):
    """One JSON-safe number (None for NaN/inf/None)."""
    if v is None:
        return None
    v = float(v)
    return v if np.isfinite(v) else None


def _level_of(spec, fidelity) -> int:
    levels = list(spec.fidelities)
    if fidelity is None:
        return 0
    if fidelity not in levels:
        raise ValueError(f"fidelity: {fidelity} epochs is not a level of this study; {levels}")
    return levels.index(fidelity)


def _space_info(spec) -> dict[str, dict]:
    """Per space name: its flag constraints and what must match to compare constraints."""
    out = {}
    for i, (name, s) in enumerate(zip(spec.space_names(), spec.spaces, strict=True)):
        try:
            ds = s.resolve()
        except Exception:  # a spec that validated once always resolves; stay defined anyway
            out[name] = {"constraints": set(), "base": ("unknown", i)}
            continue
        flags = {c for c in ds.constraints if isinstance(c, str)}
        # RegNet by construction (DDS §3.3): one b, one g drawn (narrow stages may build a
        # smaller g: docs/method.md §4), w_{i+1} >= w_i (wm > 1)
        if ds.kind == "regnet":
            flags |= {"shared_bottleneck", "shared_group_width", "increasing_width", "regnet"}
        stages = ds.stages or ds.num_stages
        base = (ds.block, ds.se_ratio > 0, ds.stem.type, stages, ds.resolution)
        out[name] = {"constraints": flags, "base": base}
    return out


def _satisfies(xs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Which networks meet each flag constraint, from their sampled per-stage values."""
    per: dict[str, list[tuple[int, np.ndarray]]] = {}
    for col, x in xs.items():
        m = _STAGE.match(col)
        if m:
            per.setdefault(m.group(1), []).append((int(m.group(2)), x))

    def matrix(key):
        return np.column_stack([x for _, x in sorted(per[key], key=lambda t: t[0])])

    out = {}
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no stage recorded
        if "bot_mul" in per:
            v = matrix("bot_mul")
            out["shared_bottleneck"] = np.nanmax(v, 1) == np.nanmin(v, 1)
        g = "g" if "g" in per else "groups" if "groups" in per else None
        if g:
            v = matrix(g)
            out["shared_group_width"] = np.nanmax(v, 1) == np.nanmin(v, 1)
        for key, name in (("w", "increasing_width"), ("d", "increasing_depth")):
            if key in per:
                diff = np.diff(matrix(key), axis=1)
                out[name] = ~np.any(diff < 0, axis=1)  # NaN (absent stage) never breaks it
    return out


def _numeric_columns(rows: pd.DataFrame) -> dict[str, np.ndarray]:
    """Every sampled parameter (p_*) and complexity column as float arrays, converted once."""
    out = {}
    for c in [c for c in rows.columns if c.startswith("p_")] + list(COMPLEXITY_COLUMNS):
        if c in rows and rows[c].dtype != bool:
            x = pd.to_numeric(rows[c], errors="coerce").to_numpy(np.float64)
            if np.isfinite(x).any():
                out[c] = x
    return out


def _edf_payload(e: np.ndarray, w, n_eff: float) -> dict:
    x, f = A.edf(e, w)
    eps = A.dkw_band(n_eff)
    subsampled = x.size > PLOT_POINTS
    if subsampled:  # plotted points only; every statistic above used all trials
        idx = np.unique(np.linspace(0, x.size - 1, PLOT_POINTS).round().astype(int))
        x, f = x[idx], f[idx]
    return {
        "x": _floats(x, PLOT_DECIMALS),
        "F": _floats(f, PLOT_DECIMALS),
        "band": {
            "lo": _floats(np.clip(f - eps, 0, 1), PLOT_DECIMALS),
            "hi": _floats(np.clip(f + eps, 0, 1), PLOT_DECIMALS),
            "epsilon": _num(eps),
            "alpha": A.ALPHA,
        },
        "subsampled": subsampled,
    }


def _identify(fit: dict | None, counted: pd.DataFrame, idx: np.ndarray) -> None:
    """Name the fitted network by space, sample and trial_id (its `index` is positional)."""
    if fit is not None:
        row = counted.iloc[int(idx[fit.pop("index")])]
        fit |= {"space": str(row["space"]), "sample": int(row["sample"])}
        fit["trial_id"] = int(row["trial_id"])


def _pick_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (space, sample, level): the most final status wins (retries, repeats)."""
    rank = {"done": 0, "diverged": 1, "failed": 2, "cancelled": 3, "running": 4, "waiting": 5}
    f = frame.assign(_rank=frame["status"].map(rank).fillna(6))
    f = f.sort_values(["_rank", "trial_id"], kind="stable")
    return f.drop_duplicates(["space", "sample", "level"]).sort_values("trial_id", kind="stable")


def _normalisation(counted, by_space, normalize, bins, c_range):
    """NDS normalisation of every space over one range (search.analysis.normalize), or None."""
    if not normalize:
        return None
    groups = {n: counted[normalize].to_numpy(np.float64)[i] for n, i in by_space.items()}
    return normalise(groups, normalize, bins, c_range)


def _best(x, draws) -> dict:
    lo, med, hi = A.best_range(x, draws)
    return {"lo": _num(lo), "median": _num(med), "hi": _num(hi)}


def study_results(
    frame, spec, fidelity=None, normalize=None, bins=None, c_range=None, top_k=TOP_K, parent=None
) -> dict:
    """EDFs, statistics, KS table, parameter data, e_fit, rank correlation, RegNet fits.

    `parent` (a refine child's: {study_id, space, refined, frame}) adds the test of the
    refined space against the parent's original space to the KS table (`vs_parent`).
    """
    if normalize not in (None, *NORMALIZE):
        raise ValueError(f"normalize: {normalize!r} is not one of none, {', '.join(NORMALIZE)}")
    level = _level_of(spec, fidelity)
    names = list(spec.space_names())
    frame = _pick_rows(frame) if len(frame) else frame
    frame, refs = _split_references(frame)
    names += sorted(set(frame["space"]) - set(names)) if len(frame) else []
    info = _space_info(spec)
    lv = _level_trials(frame, names, level, normalize, bins, c_range)
    per = _space_results(lv, names, info, top_k)
    ks, vs_parent, notes = _ks_table(lv, names, spec, level, normalize, bins, c_range, parent)
    pairwise = {(k["a"], k["b"]): k for k in ks}
    overall = _overall_fit(lv, names, top_k)
    notes += _level_notes(lv, normalize, ks)
    norm = lv.norm
    return _jsonable(
        {
            "study": spec.name,
            "fidelity": {
                "level": level,
                "epochs": spec.fidelities[level],
                "levels": list(spec.fidelities),
            },
            "normalize": normalize,
            "bins": norm.bins if norm else None,
            "bins_auto": norm.auto if norm else None,
            "complexity_range": list(norm.c_range) if norm else None,
            "warnings": notes,
            "spaces": per.rows,
            "ks": ks,
            "vs_parent": vs_parent,
            "params": per.params,
            "e_fit": {"ranges": _efit_ranges(), "spaces": per.e_fit},
            "rank_correlation": _rank_correlations(frame, spec, names),
            "regnet": {**per.fits, "overall": overall},
            "regnet_top_k": top_k,
            "refinement": annotate(refinement_suggestions(per.refine_in, pairwise=pairwise), spec),
            "progress": _progress(frame, spec, names),
            "not_learned": not_learned_spaces(per.rows, spec.fidelities[level]),
            "references": reference_markers(refs, spec, level, per.marked),
        }
    )


@dataclass(frozen=True)
class _Level:
    """The trials of the level shown that the statistics count, read once for every space."""

    here: pd.DataFrame  # every trial of the level, whatever its status
    counted: pd.DataFrame  # its done and diverged trials
    errors: np.ndarray  # counted's errors, NaN where diverged
    by_space: dict[str, np.ndarray]  # positions in counted of each space's (inside the range)
    norm: Normalisation | None  # NDS normalisation (search.analysis.normalize), or None
    weights: dict[str, np.ndarray | None]  # NDS weights of each space's networks
    bin_of: dict[str, np.ndarray | None]  # complexity bin of each space's networks
    numeric: dict[str, np.ndarray]  # sampled parameters and complexity columns, as floats
    specs: list | None  # counted's network specs (None: the frame has none)
    efit: np.ndarray  # e_fit of every counted network (DDS Fig. 8)


def _level_trials(frame, names, level, normalize, bins, c_range) -> _Level:
    """The counted trials of one level, by space, normalised when asked (NDS §4)."""
    here = frame[frame["level"] == level] if len(frame) else frame
    counted = here[here["status"].isin(["done", "diverged"])] if len(here) else here
    err_all = counted["error"].to_numpy(np.float64) if len(counted) else np.zeros(0)
    err_all = np.where(counted["status"].to_numpy() == "diverged", np.nan, err_all)
    by_space = {n: np.flatnonzero(counted["space"].to_numpy() == n) for n in names}
    norm = _normalisation(counted, by_space, normalize, bins, c_range)
    if norm is not None:  # NDS: networks outside the range are left out (and counted)
        by_space = {n: i[norm.inside[n]] for n, i in by_space.items()}
    weights = {n: norm.weights[n] if norm else None for n in names}
    bin_of = {n: norm.bin_of[n] if norm else None for n in names}
    numeric = _numeric_columns(counted)
    specs = counted["spec"].tolist() if "spec" in counted else None
    efit = efits(specs) if specs is not None else np.full(len(counted), np.nan)
    return _Level(here, counted, err_all, by_space, norm, weights, bin_of, numeric, specs, efit)


@dataclass
class _Spaces:
    """What study_results gives per space, each keyed by space name in the spec's order."""

    rows: dict[str, dict] = field(default_factory=dict)  # summary, counts, EDF, RegNet fit
    params: dict[str, dict] = field(default_factory=dict)  # per parameter: its data per space
    e_fit: dict[str, dict] = field(default_factory=dict)  # e_fit vs error (DDS Fig. 8)
    refine_in: dict[str, dict] = field(default_factory=dict)  # refinement_suggestions' input
    fits: dict[str, dict | None] = field(default_factory=dict)  # the winners' RegNet fit
    marked: dict[str, tuple] = field(default_factory=dict)  # (errors, weights) for markers


def _space_results(lv: _Level, names: list[str], info: dict, top_k: int) -> _Spaces:
    """Every space's row, parameter data, e_fit, refinement input and RegNet fit."""
    out = _Spaces()
    for n in names:
        idx, w = lv.by_space[n], lv.weights[n]
        e = A.as_errors(lv.errors[idx])
        out.marked[n] = (e, w)
        row = _space_row(lv, n, lv.errors[idx], w)
        draws = A.bootstrap_best_draws(e) if e.size else np.zeros(0, dtype=np.int64)
        xs = {c: x[idx] for c, x in lv.numeric.items() if np.isfinite(x[idx]).any()}
        errors = _floats(e, PLOT_DECIMALS)
        for c, x in xs.items():
            entry = out.params.setdefault(c, {"log": True, "spaces": {}})
            entry["log"] &= bool(np.nanmin(x) > 0 and np.nanmax(x) >= 20 * np.nanmin(x))
            entry["spaces"][n] = {
                "x": _floats(x, PLOT_DECIMALS),
                "error": errors,
                "best": _best(x, draws),
            }
        if np.isfinite(lv.efit[idx]).any():  # DDS Fig. 8: e_fit vs error, best e_fit's band
            e_fit = lv.efit[idx]
            out.e_fit[n] = {
                "x": _floats(e_fit, PLOT_DECIMALS),
                "error": errors,
                "best": _best(e_fit, draws),
                "n": int(np.isfinite(e_fit).sum()),
            }
        out.refine_in[n] = info.get(n, {}) | {
            "errors": e,
            "weights": w,
            "bins": lv.bin_of[n],
            "complexity": lv.norm.complexity.get(n) if lv.norm else None,
            "satisfies": _satisfies(xs),
            "params": {c[2:] if c.startswith("p_") else c: x for c, x in xs.items()},
        }
        out.fits[n] = _winner_fit(lv, idx, top_k)
        out.rows[n] = row | {"regnet": out.fits[n]}
    return out


def _space_row(lv: _Level, n: str, e_raw: np.ndarray, w) -> dict:
    """A space's row: error summary, trials by status, EDF with its band, random search."""
    e = A.as_errors(e_raw)
    st = lv.here[lv.here["space"] == n]["status"].value_counts() if len(lv.here) else {}
    n_eff = A.effective_n(w) if w is not None else float(e.size)
    row = {"name": n, **A.summary(e_raw, w), "n_eff": n_eff}
    return row | {
        "n_outside": lv.norm.outside[n] if lv.norm else 0,
        "n_done": int(st.get("done", 0)),
        **space_learning(lv.here, n),  # n_not_learned, chance_error
        "n_failed": int(st.get("failed", 0)),
        "n_cancelled": int(st.get("cancelled", 0)),
        "n_pending": int(st.get("waiting", 0) + st.get("running", 0)),
        "edf": _edf_payload(e, w, n_eff),
        "random_search": {
            "m": list(A.DEFAULT_M),
            "expected_min": _floats(A.random_search_efficiency(e, w)),
        },
    }


def _winner_fit(lv: _Level, idx: np.ndarray, top_k: int) -> dict | None:
    """The RegNet fit of the best networks among `idx` (DDS §3.3), named; None without any."""
    if lv.specs is None or not len(idx):
        return None
    fit = fit_winners([lv.specs[i] for i in idx], A.as_errors(lv.errors[idx]), top_k)
    _identify(fit, lv.counted, idx)
    return fit


def _ks_table(lv: _Level, names, spec, level, normalize, bins, c_range, parent):
    """(KS rows between spaces, the row against a refine child's parent or None, its notes)."""
    ks = _pairwise(names, lv.errors, lv.by_space, lv.norm)
    if parent is None:
        return ks, None, []
    vs_parent, note = _vs_parent(parent, lv.counted, lv.errors, spec.fidelities[level], level,
                                 normalize, bins, c_range, len(ks))  # fmt: skip
    if vs_parent is not None:
        ks.append(vs_parent)  # one more test: Benjamini–Hochberg over all of them
        for row, q in zip(ks, benjamini_hochberg([k["p"] for k in ks]), strict=True):
            row["q"] = q
    return ks, vs_parent, [note] if note else []


def _overall_fit(lv: _Level, names: list[str], top_k: int) -> dict | None:
    """The RegNet fit of the best networks of all spaces together."""
    counted_idx = np.sort(np.concatenate([lv.by_space[n] for n in names])) if names else []
    return _winner_fit(lv, counted_idx, top_k)


def _level_notes(lv: _Level, normalize, ks: list[dict]) -> list[str]:
    """Warnings of the level: mixed precisions or threads, networks outside the range, the KS table's."""
    notes = []
    if mixed := mixed_precisions(lv.here):
        notes.append(mixed)
    if mixed := mixed_threads(lv.here):
        notes.append(mixed)
    norm = lv.norm
    if norm is not None and sum(norm.outside.values()):
        left = ", ".join(f"{n} {k}" for n, k in norm.outside.items() if k)
        notes.append(
            f"normalize: {sum(norm.outside.values())} networks outside the {normalize} range"
            f" [{norm.c_range[0]:.4g}, {norm.c_range[1]:.4g}] are left out ({left})"
        )
    return notes + _ks_notes(ks, normalize)


def _split_references(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the spaces' trials, the reference networks' trials): references join no space."""
    if not len(frame) or "reference" not in frame:
        return frame, frame.iloc[0:0]
    is_ref = frame["reference"].notna().to_numpy()
    return frame[~is_ref], frame[is_ref]


def _efit_ranges() -> dict:
    return {k: list(v) for k, v in REGNET_RANGES.items()}


def _pairwise(names, err_all, by_space, norm) -> list[dict]:
    """KS test of every pair of spaces, Benjamini–Hochberg adjusted (docs/method.md §6)."""
    ks = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            ea, eb = err_all[by_space[a]], err_all[by_space[b]]
            ks.append(_pair_test(a, b, ea, eb, norm, len(ks)))
    for row, q in zip(ks, benjamini_hochberg([k["p"] for k in ks]), strict=True):
        row["q"] = q  # pairwise tests are many: Benjamini–Hochberg adjusted
    return ks


def _pair_test(a: str, b: str, ea, eb, norm, seed: int) -> dict:
    """One KS row {a, b, D, p, test, …}: two-sample KS, or normalised (`norm`, errors of the
    networks inside its range) the within-bin test on residuals of an error-vs-complexity
    fit, refused where a bin holds too few networks of a space (docs/method.md §6)."""
    row = {"a": a, "b": b}
    if norm is None:
        d, p = A.ks_test(ea, eb)
        return row | {"D": d, "p": p, "test": "two-sample KS"}
    row |= {"test": "stratified permutation KS", "adjusted": False}
    refused = ks_refusal(norm, a, b)
    if refused is not None:  # D of the normalised EDFs, but no p to trust
        d = A.ks_statistic(ea, eb, norm.weights[a], norm.weights[b])
        return row | {"D": d, "p": math.nan, "refused": refused, "imbalance_p": None}
    ka, kb = norm.bin_of[a], norm.bin_of[b]
    ca, cb = norm.complexity.get(a), norm.complexity.get(b)
    if ca is None or cb is None:  # a space without networks: no test
        d, p = A.stratified_ks_test(ea, ka, eb, kb, seed=seed)
        return row | {"D": d, "p": p, "refused": None, "imbalance_p": None}
    d, p = A.stratified_ks_test(ea, ka, eb, kb, seed=seed, complexity_a=ca, complexity_b=cb)
    _, imbalance = A.stratified_ks_test(ca, ka, cb, kb, reps=IMBALANCE_REPS, seed=seed)
    return row | {"D": d, "p": p, "adjusted": True, "imbalance_p": imbalance, "refused": None}


def _ks_notes(ks: list[dict], key: str | None) -> list[str]:
    """Warnings of the normalised KS table: refused pairs, complexity imbalance inside bins."""
    notes = []
    for k in ks:
        if k.get("refused"):
            notes.append(f"normalize: no KS p for {k['a']} vs {k['b']}: {k['refused']}")
        elif k.get("imbalance_p") is not None and k["imbalance_p"] <= A.ALPHA:
            notes.append(
                f"normalize: inside bins, {k['a']} and {k['b']} differ in {key} (p ="
                f" {k['imbalance_p']:.2g}); their KS p permutes residuals of an error-vs-{key}"
                " fit within bins to allow for it (docs/method.md §6)"
            )
    return notes


def _vs_parent(parent, counted, err_all, epochs, level, normalize, bins, c_range, seed):
    """The refined space against the parent's original one at this level: one KS row, as
    between two spaces (NDS-normalised over their joint overlap when asked), and a note."""
    child = parent["refined"]
    theirs = parent["frame"]
    theirs = _split_references(_pick_rows(theirs) if len(theirs) else theirs)[0]
    if len(theirs):
        theirs = theirs[
            (theirs["space"] == parent["space"])
            & (theirs["level"] == level)
            & (theirs["epochs"] == epochs)
            & theirs["status"].isin(["done", "diverged"])
        ]
    label = f"parent {parent['study_id']}: {parent['space']}"
    mine = np.flatnonzero(counted["space"].to_numpy() == child) if len(counted) else np.zeros(0)
    if not len(theirs) or not len(mine):
        return None, None
    ea = err_all[mine]
    eb = theirs["error"].to_numpy(np.float64)
    eb = np.where(theirs["status"].to_numpy() == "diverged", np.nan, eb)
    norm = None
    if normalize:
        groups = {
            child: counted[normalize].to_numpy(np.float64)[mine],
            label: theirs[normalize].to_numpy(np.float64),
        }
        try:
            norm = normalise(groups, normalize, bins, c_range)
        except ValueError as e:  # e.g. a bin the parent's space does not reach
            return None, f"vs parent: no normalised test ({e})"
        ea, eb = ea[norm.inside[child]], eb[norm.inside[label]]
    row = _pair_test(child, label, ea, eb, norm, seed)
    return row | {"parent": parent["study_id"]}, None


def _rank_correlations(frame: pd.DataFrame, spec, names: list[str]) -> list[dict]:
    """Spearman and Kendall between consecutive levels, per space and pooled (docs/design.md)."""
    out = []
    if not len(frame):
        return out
    f = frame[frame["status"].isin(["done", "diverged"])]
    f = f.assign(e=np.where(f["status"] == "diverged", np.nan, f["error"]))
    for lo in range(len(spec.fidelities) - 1):
        a = f[f["level"] == lo][["space", "sample", "e"]]
        b = f[f["level"] == lo + 1][["space", "sample", "e"]]
        both = a.merge(b, on=["space", "sample"], suffixes=("_lo", "_hi"))
        for n in [*names, None]:
            sel = both if n is None else both[both["space"] == n]
            rho, tau = A.rank_correlation(sel["e_lo"].to_numpy(), sel["e_hi"].to_numpy())
            out.append(
                {
                    "space": n or "all",
                    "from_epochs": spec.fidelities[lo],
                    "to_epochs": spec.fidelities[lo + 1],
                    "n": len(sel),
                    "spearman": rho,
                    "kendall": tau,
                }
            )
    return out


def _progress(frame: pd.DataFrame, spec, names: list[str]) -> dict:
    """Trial counts per space and level by status."""
    counts = frame.groupby(["space", "level", "status"]).size() if len(frame) else {}
    statuses = ("waiting", "running", "done", "diverged", "failed", "cancelled")
    out = {}
    for n in names:
        out[n] = []
        for level, epochs in enumerate(spec.fidelities):
            c = {s: int(counts.get((n, level, s), 0)) for s in statuses}
            out[n].append({"level": level, "epochs": epochs, **c, "total": sum(c.values())})
    return out


def _done_counts(trials: pd.DataFrame, column: str) -> dict:
    """How many done trials of a level ran with each value of `column` (unknown ones left out)."""
    if not len(trials) or column not in trials:
        return {}
    done = trials[(trials["status"] == "done") & trials[column].notna()]
    return {value: int(n) for value, n in done[column].value_counts().items()}


def mixed_precisions(trials: pd.DataFrame) -> str | None:
    """A warning when the done trials of one level ran in more than one precision."""
    counts = _done_counts(trials, "precision")
    if len(counts) < 2:
        return None
    parts = ", ".join(f"{n} in {p}" for p, n in sorted(counts.items()))
    return (
        f"precision: this level's trials ran in more than one precision ({parts}); "
        "bf16 and fp32 errors of one network can differ by more than a change of seed "
        "(docs/method.md §5)"
    )


def mixed_threads(trials: pd.DataFrame) -> str | None:
    """A warning when the done trials of one level ran with more than one thread count."""
    counts = {int(t): n for t, n in _done_counts(trials, "threads").items()}
    return mixed_setting(counts, "threads", "this level's trials")


def results_for(store, study_id: int, fidelity=None, normalize=None, bins=None, c_range=None):
    """study_results of a study in a store (the API caches them: api.http.results_cache)."""
    c_range = tuple(c_range) if c_range is not None else None
    study = store.get_study(study_id)
    spec = study.spec
    parent = _parent_of(store, study)
    body = study_results(
        store.trial_frame(study_id), spec, fidelity, normalize, bins, c_range, parent=parent
    )
    body["study_id"] = study_id
    body["failures"] = store.studies.failures(study_id)  # why trials failed, commonest first
    return body


def _parent_of(store, study) -> dict | None:
    """A refine child's parent as study_results takes it (None: not a child, or gone)."""
    tried = study.suggestion or {}
    if study.parent_id is None or not tried.get("space") or not tried.get("refined"):
        return None
    try:
        frame = store.trial_frame(study.parent_id)
    except StudyNotFound:
        return None
    return {
        "study_id": study.parent_id,
        "space": tried["space"],
        "refined": tried["refined"],
        "frame": frame,
    }
