"""The study store: Optuna's RDB storage is the trial engine; our tables index it for queries.

One database URL (`--db` / $DSE_DB, default sqlite:///dse.db) holds both (`db`). `Store` is
the one object callers hold; it wires the collaborators of this package, each owning one
seam, and forwards the calls the API, the CLI and the workers make:

- `studies`   Studies         studies      create (begin), read, cancel, fail
- `creation`  StudyCreation   creation     sample and store a study's trials
- `lifecycle` TrialLifecycle  trial_life   claim, heartbeat, report, finish, release
- `promotion` Promotion       promotion    promote complete fidelity levels
- `recovery`  Recovery        recovery     lost workers, crash windows, dead creations
- `reads`     Reads           reads        progress, pages, the trial frame, speeds (no writes)
- `writer`    TrialWriter     trial_writer every new trial, Optuna's and ours at once
Our tables are `models` (+ `migrations`); what a worker hands back is `outcome`; the Optuna
internals this relies on sit in `optuna_rdb`.
"""

from __future__ import annotations

import pandas as pd

from search.spec.status import StudyStatus, TrialStatus
from search.spec.study import StudySpec
from search.store.creation import CreationBudget, CreationFailed, StudyCreation
from search.store.db import (
    DB_ENV,
    DEFAULT_URL,
    TRANSIENT_ERRORS,
    Database,
    default_url,
    normalize_url,
)
from search.store.models import Claim, StudyRecord
from search.store.outcome import TrialOutcome
from search.store.promotion import Promotion
from search.store.reads import Reads
from search.store.recovery import Recovery
from search.store.studies import Studies, StudyNotFound
from search.store.trial_life import TrialLifecycle
from search.store.trial_writer import TrialWriter

__all__ = [
    "DB_ENV",
    "DEFAULT_URL",
    "TRANSIENT_ERRORS",
    "Claim",
    "CreationBudget",
    "CreationFailed",
    "Store",
    "StudyNotFound",
    "StudyRecord",
    "StudyStatus",
    "TrialOutcome",
    "TrialStatus",
    "default_url",
    "normalize_url",
]


class Store:
    """Studies and trials in one database: Optuna's storage plus the dse tables."""

    def __init__(
        self, url: str | None = None, heartbeat_interval: int = 10, create: bool = True
    ) -> None:
        """create=False: only an existing database (a SQLite file is never made empty)."""
        self.db = Database(url, heartbeat_interval, create)
        self.url, self.sqlite, self.optuna = self.db.url, self.db.sqlite, self.db.optuna
        self.studies = Studies(self.db)
        self.writer = TrialWriter(self.db)
        self.creation = StudyCreation(self.db, self.studies, self.writer)
        self.promotion = Promotion(self.db, self.studies, self.writer)
        self.lifecycle = TrialLifecycle(self.db, self.studies, self.promotion)
        self.recovery = Recovery(self.db, self.studies, self.writer, self.promotion, self.lifecycle)
        self.reads = Reads(self.db, self.studies)

    def close(self) -> None:
        """Release every pooled connection."""
        self.db.close()

    # --- studies ----------------------------------------------------------------------

    def create_study(
        self,
        spec: StudySpec | dict,
        budget: CreationBudget | None = None,
        parent_id: int | None = None,
        suggestion: dict | None = None,
    ) -> int:
        """Sample every network of every space, store the study, enqueue level 0; its id.

        Synchronous (the CLI, tests): on failure nothing is stored and ValueError says why.
        """
        study_id = self.studies.begin(spec, parent_id, suggestion)
        try:
            self.creation.fill(study_id, budget or CreationBudget.from_env())
        except BaseException:  # CreationFailed (a ValueError naming the space) or worse
            self.studies.discard(study_id)
            raise
        return study_id

    def begin_study(
        self, spec: StudySpec | dict, parent_id: int | None = None, suggestion: dict | None = None
    ) -> int:
        """Store a validated spec as a `creating` study (fill_study samples it); its id.

        `parent_id` and `suggestion` record a refine-loop child's lineage (search.refine).
        """
        return self.studies.begin(spec, parent_id, suggestion)

    def lineage(self, study_id: int) -> list[dict]:
        """The study's ancestors, root first ([{id, name}])."""
        return self.studies.lineage(study_id)

    def children(self, study_id: int) -> list[dict]:
        """The studies that refine this one ([{id, name, status, suggestion}])."""
        return self.studies.children(study_id)

    def child_trying(self, study_id: int, suggestion_id: str) -> int | None:
        """The child of the study that tries this suggestion (not failed), if any."""
        return self.studies.child_trying(study_id, suggestion_id)

    def family(self, study: StudyRecord) -> dict:
        """A study's place in the refine loop: parent, suggestion, lineage and children."""
        lineage = self.lineage(study.id)
        return {
            "parent": lineage[-1] if lineage else None,
            "suggestion": study.suggestion,
            "lineage": lineage,
            "children": self.children(study.id),
        }

    def fill_study(self, study_id: int, budget: CreationBudget | None = None) -> StudyStatus:
        """Sample and store a `creating` study's trials (CreationFailed: it is failed)."""
        return self.creation.fill(study_id, budget)

    def discard_study(self, study_id: int) -> None:
        """Remove a study and its trials entirely."""
        self.studies.discard(study_id)

    def list_studies(self) -> list[StudyRecord]:
        """Every study, newest first."""
        return self.studies.list()

    def count_studies(self) -> int:
        """How many studies there are."""
        return self.studies.count()

    def get_study(self, study_id: int) -> StudyRecord:
        """One study; StudyNotFound if there is none with this id."""
        return self.studies.get(study_id)

    def cancel_study(self, study_id: int) -> bool:
        """Cancel a study: waiting trials are cancelled, running ones stop at their next epoch."""
        return self.studies.cancel(study_id)

    # --- the trial life cycle (workers) -----------------------------------------------

    def claim(self, worker: str, study_ids: list[int] | None = None) -> Claim | None:
        """Pop one waiting trial of a running study for `worker` (atomic through Optuna)."""
        return self.lifecycle.claim(worker, study_ids)

    def heartbeat(self, claim: Claim) -> None:
        """Record that the worker of `claim` is alive."""
        self.lifecycle.heartbeat(claim)

    def report_epoch(self, claim: Claim, metrics: dict) -> bool:
        """Store one epoch's metrics; False when the trial should stop (cancelled or lost)."""
        return self.lifecycle.report_epoch(claim, metrics)

    def finish(self, claim: Claim, outcome: TrialOutcome) -> bool:
        """Record how a trial ended, once: False if the trial is no longer this worker's."""
        return self.lifecycle.finish(claim, outcome)

    def release(self, claim: Claim) -> bool:
        """Hand a trial back untrained (worker stopping): it becomes WAITING again."""
        return self.lifecycle.release(claim)

    # --- recovery and promotion --------------------------------------------------------

    def reap_stale(self) -> list[int]:
        """Fail and retry trials of lost workers (and reap dead creations); the failed ids."""
        return self.recovery.reap_stale()

    def reap_creating(self, grace_seconds: float | None = None) -> list[int]:
        """Fail `creating` studies whose creation died; the ids failed."""
        if grace_seconds is None:
            return self.recovery.reap_creating()
        return self.recovery.reap_creating(grace_seconds)

    def settle(self, study_id: int) -> int:
        """Promote every completed level; mark the study done when nothing is left."""
        return self.promotion.settle(study_id)

    def idle(self, study_ids: list[int] | None = None) -> bool:
        """True when no running study has a waiting or running trial (after settling them)."""
        for study_id in self.reads.running_studies(study_ids):
            self.promotion.settle(study_id)
        return not self.reads.has_unfinished(study_ids)

    # --- reads ------------------------------------------------------------------------

    def progress(self, study_id: int) -> dict:
        """Trial counts per space and fidelity level (waiting, running, done, failed, …)."""
        return self.reads.progress(study_id)

    def trials(self, study_id: int, **filters) -> list[dict]:
        """One page of trials in enqueue order (offset, limit, space, level, status, …)."""
        return self.reads.trials(study_id, **filters)

    def count(self, study_id: int, **filters) -> int:
        """How many trials match (the same filters as `trials`)."""
        return self.reads.count(study_id, **filters)

    def trial_frame(self, study_id: int) -> pd.DataFrame:
        """One row per trial (retried attempts left out): what the analysis reads."""
        return self.reads.trial_frame(study_id)

    def version(self, study_id: int) -> str:
        """A token that changes whenever any trial (or the study) changes."""
        return self.reads.version(study_id)

    def finished_speeds(self, most: int) -> tuple[list[tuple], dict[int, dict]]:
        """The latest `most` done trials' (net, images/s, study id), newest first; their specs."""
        return self.reads.finished_speeds(most)
