"""A refine child reuses its parent's finished reference runs instead of training them again.

A refine child (search.refine) has its parent's dataset, recipe, fidelities and seed, so
each of its reference trials (label, seed k, level) trains the very network the parent
trained with the same data, recipe, epochs and seed (study seed + k): a second training
would only repeat it. `reuse_parent_references` copies the parent's finished result (done
or diverged, the attempt that counts) onto the child's waiting reference trial, Optuna
state included, once the child's trials are stored and before it runs. The copy says where
it came from: `worker` is "reused", `reason` names the parent study and trial, and the
results count them (search.analysis.markers: n_reused). A reference whose network,
recipe, data, epochs or seed differ from the parent's trains as usual.
"""

from __future__ import annotations

from optuna.trial import TrialState
from sqlalchemy import select, update

from search.spec.status import TrialStatus
from search.store.models import TrialRow, utcnow
from search.store.studies import StudyNotFound

REUSED_WORKER = "reused"
REUSED_PREFIX = "reused from study"  # a reused trial's reason starts with this
FINISHED = (TrialStatus.DONE.value, TrialStatus.DIVERGED.value)
# what a copy takes from the parent's trial: the training's outcome and its record
COPIED = ("status", "error", "test_error", "last_val_error", "epochs_done", "seconds",
          "images_per_s", "chance_error", "val_size", "not_learned", "recipe", "threads",
          "device", "history", "started_at", "finished_at")  # fmt: skip


def same_training(parent_spec, child_spec) -> bool:
    """True when a reference trial of the child trains as the parent's did: data, recipe, seed."""
    return (
        parent_spec.dataset == child_spec.dataset
        and parent_spec.recipe == child_spec.recipe
        and parent_spec.seed == child_spec.seed
        and parent_spec.limits == child_spec.limits
    )


def reuse_parent_references(db, studies, study_id: int) -> int:
    """Copy the parent's finished reference results onto the child's waiting ones; how many."""
    record = studies.get(study_id)
    if record.parent_id is None:
        return 0
    try:
        parent = studies.get(record.parent_id)
    except StudyNotFound:  # deleted since: nothing to reuse
        return 0
    if not same_training(parent.spec, record.spec):
        return 0
    key = (TrialRow.reference, TrialRow.sample, TrialRow.level, TrialRow.epochs)
    with db.read() as session:
        theirs = {
            (r.reference, r.sample, r.level, r.epochs): r
            for r in session.scalars(
                select(TrialRow).where(
                    TrialRow.study_id == parent.id,
                    TrialRow.reference.is_not(None),
                    TrialRow.retried_as.is_(None),
                    TrialRow.status.in_(FINISHED),
                )
            )
        }
        ours = session.execute(
            select(TrialRow.trial_id, TrialRow.net, *key).where(
                TrialRow.study_id == study_id,
                TrialRow.reference.is_not(None),
                TrialRow.status == TrialStatus.WAITING.value,
            )
        ).all()
    n = 0
    for trial_id, net, *k in ours:
        found = theirs.get(tuple(k))
        if found is None or found.net != net:  # another network: it trains
            continue
        done = found.status == TrialStatus.DONE.value
        state = TrialState.COMPLETE if done else TrialState.FAIL
        if not db.optuna.set_trial_state_values(trial_id, state, [found.error] if done else None):
            continue
        why = f"{REUSED_PREFIX} {parent.id} trial {found.trial_id} (same network, data, recipe)"
        if found.reason:
            why += f": {found.reason}"
        values = {c: getattr(found, c) for c in COPIED}
        with db.write() as session, session.begin():
            session.execute(
                update(TrialRow)
                .where(TrialRow.trial_id == trial_id, TrialRow.status == TrialStatus.WAITING.value)
                .values(**values, worker=REUSED_WORKER, reason=why, updated_at=utcnow())
            )
        n += 1
    return n
