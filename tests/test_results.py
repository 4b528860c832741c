"""search.analysis.results: a study's results from a trial frame (and from a store, cached)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from search.analysis import statistics as A
from search.analysis.results import results_for, study_results
from search.spec.study import StudySpec


def _net(depths, widths, b=1.0, g=8, se=0.0) -> dict:
    return {
        "stem": {"type": "simple", "width": 32},
        "block": "res_bottleneck",
        "stages": [
            {
                "depth": int(d),
                "width": int(w),
                "stride": 2,
                "bottleneck_multiplier": b,
                "group_width": g,
            }
            for d, w in zip(depths, widths, strict=True)
        ],
        "se_ratio": se,
        "num_classes": 10,
        "resolution": 32,
    }


def _frame(spaces=("AnyNetX_A", "AnyNetX_B"), n=40, seed=0, shift=0.03) -> pd.DataFrame:
    """Level 0 for every sample, level 1 for every third; statuses of every kind."""
    rng = np.random.default_rng(seed)
    rows = []
    for s_i, space in enumerate(spaces):
        for i in range(n):
            d = rng.integers(1, 5, 4)
            w = np.sort(rng.integers(1, 33, 4)) * 16 if i % 2 else rng.integers(1, 33, 4) * 16
            err = 0.4 - shift * s_i - 0.05 * (i % 2) + rng.normal(0, 0.02)
            status = "done"
            if i == 1:
                status = "diverged"
            elif i == 2:
                status = "failed"
            elif i == 3:
                status = "waiting"
            for level in (0, 1) if i % 3 == 0 else (0,):
                rows.append(
                    {
                        "trial_id": len(rows),
                        "space": space,
                        "sample": i,
                        "level": level,
                        "epochs": (1, 3)[level],
                        "status": status if level == 0 else "done",
                        "error": err - 0.05 * level if status == "done" or level else np.nan,
                        "flops": int((d * w**2).sum()),
                        "params": int((d * w).sum()),
                        "acts": int(w.sum()),
                        "depth": int(d.sum()),
                        "spec": _net(d, w),
                        "p_b": 1.0,
                        "p_g": 8,
                        **{f"p_d{j + 1}": int(d[j]) for j in range(4)},
                        **{f"p_w{j + 1}": int(w[j]) for j in range(4)},
                    }
                )
    return pd.DataFrame(rows)


def _spec(spaces=("AnyNetX_A", "AnyNetX_B"), fidelities=(1, 3)) -> StudySpec:
    return StudySpec(
        name="t", spaces=[{"preset": s} for s in spaces], samples=40, fidelities=list(fidelities)
    )


def test_results_are_json_and_counts_are_right():
    frame, spec = _frame(), _spec()
    r = study_results(frame, spec)
    json.dumps(r, allow_nan=False)  # no NaN or inf anywhere
    assert r["fidelity"] == {"level": 0, "epochs": 1, "levels": [1, 3]}
    assert list(r["spaces"]) == ["AnyNetX_A", "AnyNetX_B"]  # spec order
    a = r["spaces"]["AnyNetX_A"]
    assert a["name"] == "AnyNetX_A"
    assert (a["n"], a["n_diverged"], a["n_failed"], a["n_pending"]) == (38, 1, 1, 1)
    sel = frame[
        (frame.space == "AnyNetX_A") & (frame.level == 0) & frame.status.isin(["done", "diverged"])
    ]
    ref = A.summary(sel.error.to_numpy())
    assert a["mean"] == pytest.approx(ref["mean"]) and a["min"] == pytest.approx(ref["min"])
    assert a["max"] == 1.0  # the diverged trial counts as error 1.0
    assert a["edf"]["F"][-1] == pytest.approx(1.0) and not a["edf"]["subsampled"]
    assert set(a["edf"]) == {"x", "F", "band", "subsampled"}  # one EDF shape (issue 14)
    band = a["edf"]["band"]
    assert band["epsilon"] == pytest.approx(A.dkw_band(38))
    assert band["hi"][0] == pytest.approx(min(1.0, a["edf"]["F"][0] + band["epsilon"]))
    assert r["progress"]["AnyNetX_A"][0]["failed"] == 1
    assert r["progress"]["AnyNetX_A"][1]["total"] == 14


def test_ks_table_matches_analysis():
    frame, spec = _frame(), _spec()
    r = study_results(frame, spec)
    lvl0 = frame[(frame.level == 0) & frame.status.isin(["done", "diverged"])]
    ea, eb = (lvl0[lvl0.space == s].error.to_numpy() for s in ("AnyNetX_A", "AnyNetX_B"))
    (row,) = r["ks"]
    assert (row["D"], row["p"]) == pytest.approx(A.ks_test(ea, eb))
    assert row["q"] == pytest.approx(row["p"])  # one pair: nothing to adjust


def test_fidelity_is_epochs_and_rank_correlation_uses_both_levels():
    frame, spec = _frame(), _spec()
    r = study_results(frame, spec, fidelity=3)
    assert r["fidelity"]["level"] == 1 and r["spaces"]["AnyNetX_A"]["n"] == 14
    rc = {x["space"]: x for x in r["rank_correlation"]}
    # sample 3 is still waiting at level 0: only networks trained at both levels count
    assert rc["AnyNetX_A"]["n"] == 13 and rc["all"]["n"] == 26
    assert rc["all"]["from_epochs"] == 1 and rc["all"]["to_epochs"] == 3
    with pytest.raises(ValueError, match=r"fidelity: 2 epochs .*\[1, 3\]"):
        study_results(frame, spec, fidelity=2)
    with pytest.raises(ValueError, match="normalize"):
        study_results(frame, spec, normalize="latency")


def _uniform_flops(frame: pd.DataFrame, seed=1) -> pd.DataFrame:
    """Flops spread evenly over each space's own range (A: 0-100, B: 20-120 thousand)."""
    rng = np.random.default_rng(seed)
    f = frame.astype({"flops": float})
    for k, space in enumerate(("AnyNetX_A", "AnyNetX_B")):
        rows = f.space == space
        f.loc[rows, "flops"] = rng.uniform(20_000 * k, 100_000 + 20_000 * k, rows.sum())
    return f


def test_normalised_results_follow_nds():
    # NDS §4: equal bins over the overlap of the spaces' complexity (as many, up to 40, as
    # leave 3 networks of each space a bin), networks outside it left out and counted,
    # every bin of a space weighing the same
    frame, spec = _uniform_flops(_frame(n=400)), _spec()
    r = study_results(frame, spec, normalize="flops")
    json.dumps(r, allow_nan=False)
    lvl0 = frame[(frame.level == 0) & frame.status.isin(["done", "diverged"])]
    lo = max(lvl0[lvl0.space == s].flops.min() for s in ("AnyNetX_A", "AnyNetX_B"))
    hi = min(lvl0[lvl0.space == s].flops.max() for s in ("AnyNetX_A", "AnyNetX_B"))
    assert r["bins"] == 34 and r["bins_auto"] and r["complexity_range"] == pytest.approx([lo, hi])
    for name in ("AnyNetX_A", "AnyNetX_B"):
        sel = lvl0[lvl0.space == name]
        inside = sel[(sel.flops >= lo) & (sel.flops <= hi)]
        row = r["spaces"][name]
        assert row["n"] == len(inside) and row["n_outside"] == len(sel) - len(inside) > 0
        assert row["n_eff"] < row["n"]
        w = A.normalized_weights(inside.flops.to_numpy(), 34, (lo, hi))
        assert row["mean"] == pytest.approx(A.summary(inside.error.to_numpy(), w)["mean"])
    assert "left out" in r["warnings"][0] and r["ks"][0]["test"] == "stratified permutation KS"
    assert r["ks"][0]["adjusted"] and r["ks"][0]["refused"] is None
    assert 0 < r["ks"][0]["imbalance_p"] <= 1
    # 40 bins leave a space fewer than 3 networks in some bin: the EDFs stand, the
    # KS test is refused with the reason and the count that would do
    given = study_results(frame, spec, normalize="flops", bins=40)
    assert given["bins"] == 40 and not given["bins_auto"] and given["ks"][0]["p"] is None
    assert "needs 3 of each space in every bin" in given["ks"][0]["refused"]
    assert "34 bins leave every space at least 3" in given["ks"][0]["refused"]
    assert any("no KS p for AnyNetX_A vs AnyNetX_B" in w for w in given["warnings"])
    narrow = study_results(frame, spec, normalize="flops", bins=10, c_range=(40e3, 80e3))
    assert narrow["bins"] == 10 and narrow["complexity_range"] == [40e3, 80e3]
    assert narrow["spaces"]["AnyNetX_A"]["n"] < r["spaces"]["AnyNetX_A"]["n"]


def test_normalisation_errors_name_the_bin_and_the_space():
    frame, spec = _uniform_flops(_frame(n=200)), _spec()
    with pytest.raises(
        ValueError, match=r"bins: space AnyNetX_\w has no network in bin \d+ of 500"
    ):
        study_results(frame, spec, normalize="flops", bins=500)
    frame.loc[frame.space == "AnyNetX_B", "flops"] += 10**9
    with pytest.raises(ValueError, match="range: the spaces' flops do not overlap"):
        study_results(frame, spec, normalize="flops")
    with pytest.raises(ValueError, match="range: need finite lo < hi"):
        study_results(frame, spec, normalize="flops", c_range=(5, 5))
    with pytest.raises(ValueError, match="bins: need a whole number"):
        study_results(frame, spec, normalize="flops", bins=0)


def test_bad_inputs_give_defined_results():
    spec = _spec()
    empty = _frame().iloc[:0]
    r = study_results(empty, spec)
    json.dumps(r, allow_nan=False)
    assert r["spaces"]["AnyNetX_A"]["n"] == 0 and r["spaces"]["AnyNetX_A"]["mean"] is None
    assert r["ks"][0]["D"] is None and r["regnet"]["overall"] is None
    one = _frame().iloc[:1]
    r = study_results(one, spec)
    assert r["spaces"]["AnyNetX_A"]["n"] == 1 and r["spaces"]["AnyNetX_A"]["edf"]["F"] == [1.0]
    flat = _frame()
    flat["error"] = np.where(flat.status == "done", 0.25, np.nan)
    r = study_results(flat, spec, normalize="params", bins=2)
    json.dumps(r, allow_nan=False)
    assert r["spaces"]["AnyNetX_A"]["q1"] == 0.25 and r["rank_correlation"][0]["spearman"] is None


def test_regnet_fit_of_the_winner_is_export_ready():
    from anynet.regnet import regnet_spec

    frame = _frame()
    winner = regnet_spec(13, 24, 36.44, 2.49, 8, resolution=32, num_classes=10).to_dict()
    i = frame.index[(frame.space == "AnyNetX_B") & (frame["sample"] == 0) & (frame.level == 0)]
    frame.loc[i[0], "error"] = 0.01
    frame.at[i[0], "spec"] = winner
    r = study_results(frame, _spec())
    best = r["regnet"]["overall"]
    assert best["space"] == "AnyNetX_B" and best["e_fit"] == pytest.approx(0.0, abs=1e-9)
    assert best["sample"] == 0 and best["trial_id"] == frame.loc[i[0], "trial_id"]
    assert r["regnet"]["AnyNetX_B"]["trial_id"] == best["trial_id"]
    assert set(best["params"]) == {
        "depth",
        "w0",
        "wa",
        "wm",
        "group_width",
        "bottleneck_multiplier",
        "se_ratio",
    }
    assert best["params"]["group_width"] == 8 and best["stage_depths"] == [1, 1, 4, 7]
    assert best["stage_widths"] == [24, 56, 152, 368]  # RegNetX-200MF (docs/method.md §3)


def test_e_fit_of_every_network_is_dds_fig8():
    from anynet.regnet import regnet_spec
    from anynet.regnet_fit import fit_many

    frame = _frame()
    i = frame.index[(frame.space == "AnyNetX_B") & (frame["sample"] == 0) & (frame.level == 0)]
    frame.at[i[0], "spec"] = regnet_spec(13, 24, 36.44, 2.49, 8).to_dict()  # a RegNet
    r = study_results(frame, _spec())
    assert r["e_fit"]["ranges"] == {"w0": [8, 248], "wa": [0.0, 255.9], "wm": [1.5, 3.0]}
    lvl0 = frame[(frame.level == 0) & frame.status.isin(["done", "diverged"])]
    for name in ("AnyNetX_A", "AnyNetX_B"):
        f = r["e_fit"]["spaces"][name]
        sel = lvl0[lvl0.space == name]
        assert f["n"] == len(f["x"]) == len(f["error"]) == r["spaces"][name]["n"] == len(sel)
        widths = [[st["width"] for st in net["stages"] for _ in range(st["depth"])]
                  for net in sel.spec]  # fmt: skip
        expect = [fit[3] for fit in fit_many(widths)]
        assert f["x"] == pytest.approx(expect, abs=1e-6)
        assert f["best"]["lo"] <= f["best"]["median"] <= f["best"]["hi"]
    assert min(r["e_fit"]["spaces"]["AnyNetX_B"]["x"]) == 0.0  # the RegNet fits exactly
    fit = r["regnet"]["AnyNetX_A"]  # the winner's exact fit stays inside the RegNet space
    assert 1.5 <= fit["wm"] <= 3.0 and 8 <= fit["w0"] <= 248


def test_page_suggestion_and_ks_table_agree():
    # the step C → D is judged once: the refinement row is the KS table's row (issue 11)
    frame = _frame(spaces=("AnyNetX_C", "AnyNetX_D", "AnyNetX_E"), n=60)
    r = study_results(frame, _spec(spaces=("AnyNetX_C", "AnyNetX_D", "AnyNetX_E")))
    (ks,) = [k for k in r["ks"] if (k["a"], k["b"]) == ("AnyNetX_C", "AnyNetX_D")]
    (row,) = [
        x for x in r["refinement"] if x["space"] == "AnyNetX_C" and x.get("with") == "AnyNetX_D"
    ]
    assert (row["D"], row["p"], row["q"]) == (ks["D"], ks["p"], ks["q"])
    assert "3 pairwise space comparisons" in row["text"]
    norm = study_results(
        frame.astype({"flops": float}).assign(flops=lambda f: f["sample"] % 5),
        _spec(spaces=("AnyNetX_C", "AnyNetX_D", "AnyNetX_E")),
        normalize="flops",
        bins=5,
    )
    (ks,) = [k for k in norm["ks"] if (k["a"], k["b"]) == ("AnyNetX_C", "AnyNetX_D")]
    assert ks["test"] == "stratified permutation KS"
    (row,) = [
        x for x in norm["refinement"] if x["space"] == "AnyNetX_C" and x.get("with") == "AnyNetX_D"
    ]
    assert (row["p"], row["q"]) == (ks["p"], ks["q"])


def test_refinement_and_parameter_ranges_present():
    r = study_results(_frame(n=120), _spec())
    rows = r["refinement"]
    ab = [
        x for x in rows if x["space"] == "AnyNetX_A" and x.get("constraint") == "shared_bottleneck"
    ]
    assert ab and ab[0]["evidence"] == "spaces" and ab[0]["with"] == "AnyNetX_B"
    inc = [
        x for x in rows if x["space"] == "AnyNetX_A" and x.get("constraint") == "increasing_width"
    ]
    assert inc[0]["evidence"] == "subset" and inc[0]["verdict"] == "better"
    params = r["params"]
    assert {"p_d1", "p_w4", "flops", "depth"} <= set(params)
    assert params["p_w1"]["log"] and not params["p_d1"]["log"]  # widths span 16-512
    depth = params["depth"]["spaces"]["AnyNetX_A"]
    assert len(depth["x"]) == len(depth["error"]) == 118
    lo, hi = depth["best"]["lo"], depth["best"]["hi"]
    assert lo <= depth["best"]["median"] <= hi


BODY_KEYS = [
    "study", "fidelity", "normalize", "bins", "bins_auto", "complexity_range", "warnings",
    "spaces", "ks", "vs_parent", "params", "e_fit", "rank_correlation", "regnet",
    "regnet_top_k", "refinement", "progress", "not_learned", "references",
]  # fmt: skip
SPACE_KEYS = [
    "name", "n", "n_diverged", "min", "q1", "median", "q3", "mean", "max", "n_eff",
    "n_outside", "n_done", "n_not_learned", "chance_error", "n_failed", "n_cancelled",
    "n_pending", "edf", "random_search", "regnet",
]  # fmt: skip


def test_body_order_and_the_test_against_a_refine_parent():
    # a golden check of the body as clients read it: its keys in order, and a refine child's
    # test against its parent joining the KS table (one Benjamini–Hochberg over both rows)
    from search.analysis.suggestions import benjamini_hochberg

    refined = "AnyNetX_A (refined)"
    frame = _frame(spaces=("AnyNetX_A", refined), n=60, seed=3)
    theirs = _frame(spaces=("AnyNetX_A",), n=60, seed=5)
    parent = {"study_id": 7, "space": "AnyNetX_A", "refined": refined, "frame": theirs}
    r = study_results(frame, _spec(spaces=("AnyNetX_A",)), parent=parent)
    json.dumps(r, allow_nan=False)
    assert list(r) == BODY_KEYS and list(r["spaces"]) == ["AnyNetX_A", refined]
    assert all(list(row) == SPACE_KEYS for row in r["spaces"].values())
    assert list(r["regnet"]) == ["AnyNetX_A", refined, "overall"]
    pair, vs = r["ks"]
    assert list(pair) == ["a", "b", "D", "p", "test", "q"] and r["vs_parent"] == vs
    assert (vs["a"], vs["b"], vs["parent"]) == (refined, "parent 7: AnyNetX_A", 7)
    level0 = frame.level == 0
    mine = frame[(frame.space == refined) & level0 & frame.status.isin(["done", "diverged"])]
    ref = theirs[(theirs.level == 0) & theirs.status.isin(["done", "diverged"])]
    mine_e, ref_e = (np.where(f.status == "diverged", np.nan, f.error) for f in (mine, ref))
    assert (vs["D"], vs["p"]) == pytest.approx(A.ks_test(mine_e, ref_e))
    q = benjamini_hochberg([pair["p"], vs["p"]])
    assert [pair["q"], vs["q"]] == pytest.approx(q.tolist())
    assert r["warnings"] == []
    # normalised, with the parent's networks outside the child's range: no test, a note
    # first among the warnings
    far = parent | {"frame": theirs.assign(params=theirs["params"] + 10**7)}
    norm = study_results(frame, _spec(spaces=("AnyNetX_A",)), normalize="params", parent=far)
    assert norm["vs_parent"] is None and len(norm["ks"]) == 1
    assert norm["warnings"][0].startswith("vs parent: no normalised test (range: ")
    assert norm["warnings"][1:] == [
        f"normalize: 3 networks outside the params range [960, 4576] are left out ({refined} 3)"
    ]


# --- the body: api/http/schemas.py's Results is its one definition -------------------------
# keys a body may leave out (the model's default stands): a refine child's test against its
# parent, a fit that cannot be built; the results' progress rows count no not_learned (the
# study's progress does)
CONDITIONAL = {("KsTest", "parent"), ("RegNetFit", "invalid"), ("LevelCounts", "not_learned")}


def _typed(body: dict):
    """The body validated into the API's Results, as the API does (results_cache.py): no extra
    key (`_Exact` forbids them), every required one, and the same JSON back."""
    from api.http.schemas import Results

    typed = Results.model_validate(body)
    back = typed.model_dump(mode="json", by_alias=True, exclude_unset=True)
    assert back == json.loads(json.dumps(body, allow_nan=False))
    return typed


def _fields_set(node, found: dict) -> None:
    """(model, field) → whether any body gave it, over every model inside `node`."""
    from pydantic import BaseModel

    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            key = (type(node).__name__, name)
            found[key] = found.get(key, False) or name in node.model_fields_set
            _fields_set(getattr(node, name), found)
    elif isinstance(node, dict):
        for value in node.values():
            _fields_set(value, found)
    elif isinstance(node, list):
        for value in node:
            _fields_set(value, found)


def test_results_body_is_exactly_the_typed_model():
    found: dict = {}
    frame, spec = _frame(n=60), _spec()
    for normalize in (None, "flops"):  # the KS rows differ: two-sample, or stratified
        body = study_results(frame, spec, normalize=normalize)
        assert {"study_id", "failures"}.isdisjoint(body)  # results_for adds them
        _fields_set(_typed(body | {"study_id": 1, "failures": []}), found)
    never = {key for key, given in found.items() if not given}
    assert never <= CONDITIONAL, never - CONDITIONAL  # no model field the results never give


# --- a real SQLite store and the `dse edf` command -----------------------------------------


def _finished_study(url, smoke_spec, samples=8):
    """A study whose trials were all reported: errors by a known law, one diverged."""
    from search.store import Store, TrialOutcome

    smoke_spec["samples"] = samples
    store = Store(url)
    study_id = store.create_study(smoke_spec)
    k = 0
    while (claim := store.claim("w")) is not None:
        status = "diverged" if k == 3 else "done"
        err = 0.3 + 0.01 * claim.sample + (0.05 if claim.space == "AnyNetX_A" else 0.0)
        result = TrialOutcome(status, err if status == "done" else None, seconds=1.0)
        assert store.finish(claim, result)
        k += 1
    return store, study_id


def test_results_from_a_real_store(sqlite_url, smoke_spec):
    store, study_id = _finished_study(sqlite_url, smoke_spec)
    r = results_for(store, study_id)
    assert _typed(r).study_id == study_id  # the whole body, failures included
    assert list(r["spaces"]) == ["AnyNetX_A", "AnyNetX_E"]
    spaces = r["spaces"].values()
    assert sum(s["n"] for s in spaces) == 16 and sum(s["n_diverged"] for s in spaces) == 1
    assert r["regnet"]["overall"]["params"]["depth"] >= 2
    store.close()


def test_cli_edf_table_json_png(sqlite_url, smoke_spec, capsys, tmp_path):
    from api.cli import main

    store, study_id = _finished_study(sqlite_url, smoke_spec)
    store.close()
    assert main(["edf", str(study_id), "--db", sqlite_url]) == 0
    out = capsys.readouterr().out
    assert "AnyNetX_A" in out and "KS tests" in out and "as a RegNet" in out
    assert "e_fit, distance to the nearest RegNet" in out
    # bins left out: chosen from the data (every space at least 3 networks a bin)
    argv = ["edf", "smoke", "--db", sqlite_url, "--json", "--normalize", "flops"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["study_id"] == study_id and doc["normalize"] == "flops"
    assert doc["bins_auto"] and doc["bins"] >= 1
    assert set(doc["e_fit"]["spaces"]) == {"AnyNetX_A", "AnyNetX_E"}
    lo, hi = doc["complexity_range"]
    argv = ["edf", "smoke", "--db", sqlite_url, "--normalize", "flops", "--bins", "1"]
    assert main([*argv, "--range", f"{lo}:{hi}"]) == 0
    assert "normalised by flops (1 bins over" in capsys.readouterr().out
    assert main([*argv[:-2], "--bins", "500"]) == 2
    assert "has no network in bin" in capsys.readouterr().err
    assert main(["edf", "smoke", "--db", sqlite_url, "--bins", "5"]) == 2
    assert "give --normalize too" in capsys.readouterr().err
    png = tmp_path / "edf.png"
    assert main(["edf", str(study_id), "--db", sqlite_url, "--png", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["edf", "999", "--db", sqlite_url]) == 2
    assert main(["edf", str(study_id), "--db", sqlite_url, "--fidelity", "7"]) == 2
    err = capsys.readouterr().err
    assert "study 999" in err and "fidelity: 7 epochs" in err


def test_unreadable_spec_cells_are_skipped_by_the_fit():
    frame = _frame()
    best = frame.index[(frame.level == 0) & (frame.status == "done")][0]
    frame.loc[best, "error"] = 0.0
    frame.at[best, "spec"] = "not a network"
    r = study_results(frame, _spec())
    fit = r["regnet"][frame.loc[best, "space"]]
    assert fit is not None and fit["error"] > 0.0  # the next-best readable network


def test_cli_edf_before_any_trial_finished(sqlite_url, smoke_spec, capsys, tmp_path):
    from api.cli import main
    from search.store import Store

    smoke_spec["samples"] = 2
    study_id = Store(sqlite_url).create_study(smoke_spec)
    assert main(["edf", str(study_id), "--db", sqlite_url]) == 0
    assert "pending" in capsys.readouterr().out
    png = tmp_path / "empty.png"
    assert main(["edf", str(study_id), "--db", sqlite_url, "--png", str(png)]) == 0
    assert png.stat().st_size > 0


def test_refinement_evidence_reads_the_widths_as_built():
    # Issue 21: the within-space evidence reads the sampler's records (p_w1..), which are
    # the built network's values; drawn widths that increase need not increase as built.
    from anynet.spaces import get_space
    from anynet.spaces.candidates import anynet_batch, count_batches
    from search.analysis.results import _satisfies

    space = get_space("AnyNetX_A")
    net = {k: getattr(space, k) for k in ("stem", "block", "se_ratio", "head_width")}
    net |= {k: getattr(space, k) for k in ("num_classes", "in_channels", "resolution")}
    batch = anynet_batch(space, np.random.default_rng(0), 2000, net)
    count_batches(net, [batch])
    specs, params = zip(*(batch.spec(i) for i in batch.rows.tolist()), strict=True)
    xs = {f"p_{k}": np.array([p[k] for p in params], np.float64) for k in params[0]}
    got = _satisfies(xs)
    built = np.array([s.stage_widths == sorted(s.stage_widths) for s in specs])
    drawn = np.all(np.diff(batch.drawn["width"][batch.rows], axis=1) >= 0, axis=1)
    assert np.array_equal(got["increasing_width"], built)
    assert np.count_nonzero(drawn != built) > 0  # the rule reorders some networks' widths
    shared = np.array([len(set(s.group_widths)) == 1 for s in specs])
    assert np.array_equal(got["shared_group_width"], shared)


def test_edf_table_text_is_pinned():
    # every section of `dse edf`'s text, on a hand-written body: the exact lines users read
    from api.cli.edf import table

    def space(name, n, mean, outside):
        edf = {"band": {"epsilon": 0.2}}
        return {"name": name, "n": n, "n_not_learned": 1, "n_diverged": 0, "n_failed": 2,
                "n_pending": 3, "min": 0.1, "mean": mean, "median": None, "edf": edf,
                "n_outside": outside}  # fmt: skip

    best = {"lo": 0.01, "median": 0.02, "hi": None}
    body = {
        "study_id": 4, "study": "t", "normalize": "flops", "bins": 3, "bins_auto": True,
        "complexity_range": [1e6, 2.5e7],
        "fidelity": {"level": 1, "epochs": 3, "levels": [1, 3]},
        "spaces": {"A": space("A", 12, 0.25, 1), "AnyNetX_B": space("AnyNetX_B", 7, None, 0)},
        "failures": [{"trials": 2, "reason": "boom"}],
        "ks": [
            {"a": "A", "b": "AnyNetX_B", "D": 0.5, "p": 0.01234, "q": 0.02, "adjusted": True,
             "test": "stratified permutation KS"},
            {"a": "A", "b": "C", "D": None, "p": None, "refused": "too few"},
        ],
        "e_fit": {"spaces": {"A": {"best": best, "n": 3, "x": [0.3, None, 0.1, 0.2]}}},
        "references": {
            "r20": {"name": "r20", "flops": 4.1e7, "params": 2.7e5, "mean": 0.5, "lo": 0.4,
                    "hi": 0.6, "n": 2, "seeds": 3, "n_pending": 1, "text": {"A": "beats A"},
                    "reused": "2 seeds reused"},
            "r56": {"name": "r56", "flops": None, "params": None, "mean": None,
                    "n_pending": 3},
        },
        "rank_correlation": [
            {"space": "all", "n": 5, "from_epochs": 1, "to_epochs": 3, "spearman": 0.5,
             "kendall": None},
            {"space": "A", "n": 5, "from_epochs": 1, "to_epochs": 3, "spearman": 1,
             "kendall": 1},
        ],
        "regnet": {"overall": {"space": "A", "error": 0.1, "e_fit": 0.05, "params": {
            "depth": 13, "w0": 24, "wa": 36.44, "wm": 2.49, "group_width": 8,
            "bottleneck_multiplier": 1.0, "se_ratio": 0.0}}},
        "refinement": [
            {"verdict": "better", "text": "X is better", "applies": True, "id": "range:A:w 1"},
            {"verdict": "worse", "text": "Y is worse"},
            {"verdict": "no difference", "text": "Z"},
        ],
        "warnings": ["w1"],
        "not_learned": [{"text": "nl"}],
    }  # fmt: skip
    assert table(body).split("\n") == [
        "study 4 't': 3 epochs (level 1 of [1, 3]), normalised by flops (3 bins chosen from"
        " the data over [1e+06, 2.5e+07])",
        "",
        "space       n  at chance  diverged  failed  pending     min    mean  median  DKW ±"
        "  outside",
        "A          12          1         0       2        3  0.1000  0.2500       -  0.200"
        "        1",
        "AnyNetX_B   7          1         0       2        3  0.1000       -       -  0.200"
        "        0",
        "",
        "failed trials:",
        "      2 x boom",
        "",
        "KS tests (stratified permutation KS; D, p, Benjamini–Hochberg q over the pairs):",
        "  (p: residuals of an error-vs-complexity fit permuted within bins)",
        "  A vs AnyNetX_B: D=0.500 p=0.0123 q=0.02",
        "  A vs C: D=- p refused: too few",
        "",
        "e_fit, distance to the nearest RegNet (DDS Fig. 8; --png draws it):",
        "  A: best networks' e_fit 0.020 (95% bootstrap [0.010, -]), all 3: median 0.200",
        "",
        "reference networks (mean error over seeds, band min–max; beats = the share of a"
        " space's networks with a higher error):",
        "  r20 (41 MF, 0.27 M params): error 0.5000 [0.4000, 0.6000] over 2 of 3 seeds (1 pending)",
        "    beats A",
        "    2 seeds reused",
        "  r56 (- MF, - M params): no finished seed yet (3 pending)",
        "",
        "rank correlation between levels (networks trained at both):",
        "  1 → 3 epochs: n=5 Spearman 0.500 Kendall -",
        "",
        "best network (A, error 0.1000) as a RegNet: depth=13 w0=24 wa=36.44 wm=2.49"
        " group_width=8 b=1 se=0, e_fit=0.050",
        "",
        "what the data say (q < 0.05; 2 findings, --json for all):",
        "  - X is better",
        "    try it: dse study refine 4 'range:A:w 1'",
        "  - Y is worse",
        "warning: w1",
        "warning: nl",
    ]
