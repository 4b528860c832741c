"""A server's creation of a study: stored `creating`, sampled in a Creator child, awaited briefly.

The use case behind POST /api/studies and POST /api/studies/{id}/refine (api/http maps its
outcome and errors to HTTP). `dse study create` does not use it: it samples in its own process
(Store.create_study), with no server to keep responsive and no one else's creations to bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from search.analysis.results import results_for
from search.creator import Creator, CreatorBusy
from search.refine import NotApplicable, child_spec, find, parse_id
from search.spec.status import StudyStatus
from search.spec.study import StudySpec
from search.store.creation import CreationFailed
from search.store.models import StudyRecord
from search.store.studies import ChildExists


@dataclass(frozen=True)
class Created:
    """What a creation came to: the study, and `outcome` — `created` (sampled and stored within
    the wait), `creating` (still sampling in its child), or `exists` (a child of the parent
    already tries this suggestion: that child, untouched)."""

    study: StudyRecord
    outcome: Literal["created", "creating", "exists"]


def create_study(
    store,
    creator: Creator,
    spec: StudySpec,
    wait: float,
    parent_id: int | None = None,
    suggestion: dict | None = None,
) -> Created:
    """Store `spec` as a `creating` study, start sampling it in a `creator` child and wait up to
    `wait` seconds for it; `parent_id` and `suggestion` make it a refine-loop child.

    Blocks (database and the wait): call it off an event loop. CreatorBusy when `creator`
    runs as many creations as it may; CreationFailed (a ValueError naming the space) when the
    creation failed within the wait. Neither leaves anything stored.
    """
    if creator.busy():
        raise CreatorBusy("too many studies are being created; try again in a few seconds")
    try:
        study_id = store.begin_study(spec, parent_id, suggestion)
    except ChildExists as e:  # a concurrent refine request created it first: idempotent
        return Created(store.get_study(e.study_id), "exists")
    try:  # starting a child may wait for the forkserver
        job = creator.submit(study_id)
    except CreatorBusy:
        store.discard_study(study_id)
        raise
    finished = creator.wait(job, wait)
    study = store.get_study(study_id)
    if finished and study.status == StudyStatus.FAILED:
        store.discard_study(study_id)
        raise CreationFailed(study.reason or "creation failed")
    return Created(study, "created" if finished else "creating")


def refine_plan(
    store, parent_id: int, sid: str, results: dict | None = None
) -> tuple[StudySpec, dict]:
    """The child spec and lineage record of refining study `parent_id` by suggestion `sid`.

    `results` are the parent's results the suggestion is read from (default: its lowest
    fidelity, not normalised, read from `store`). NotApplicable when the parent is still
    being created, failed, or has no finished trials; UnknownSuggestion / NotApplicable as
    refine.find.
    """
    parent = store.get_study(parent_id)
    if parent.status == StudyStatus.CREATING:
        raise NotApplicable(f"study: {parent_id} is still being created; refine it once it runs")
    if parent.status == StudyStatus.FAILED:
        raise NotApplicable(f"study: {parent_id} failed ({parent.reason}); it has no results")
    parse_id(sid)
    if results is None:
        results = results_for(store, parent_id)
    rows = results.get("refinement") or []
    if not rows:
        raise NotApplicable(
            f"study: {parent_id} has no finished trials yet, so nothing to refine; retry later"
        )
    row = find(rows, sid, parent.spec)
    spec = child_spec(parent.spec, row)
    record = {
        "id": sid,
        "text": row.get("text", ""),
        "space": parse_id(sid)[1],
        "refined": spec.space_names()[0],
    }
    return spec, record
