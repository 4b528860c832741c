"""Filling a `creating` study: sample every space within a budget, store the trials in bulk.

A study is sampled space by space (anynet.spaces.sampling, joint rejection; docs/method.md §4),
each space from its own seed stream (`space_seed`), then its level-0 trials are stored in round-robin order A0, B0, A1, … (so spaces fill
evenly) in chunks, each chunk one transaction (search.store.trial_writer). Progress is written
to the study after each space and chunk, and a heartbeat thread touches it every few
seconds meanwhile, so a reaper can tell a live creation from one whose process died
(search.store.recovery). The budget bounds the time and the draws one creation may take
(issue 15: one POST may not hold the service); a cancel stops sampling at the sampler's
next batch. On any failure the study ends `failed` with the reason, its trials removed.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from anynet.network import network_complexity
from anynet.spaces.sampling import sample
from search.spec import fidelity
from search.spec.environ import env_number
from search.spec.reference import one_line
from search.spec.status import StudyStatus
from search.store import trial_params
from search.store.beats import Beats
from search.store.db import Database
from search.store.models import CreationProgress, new_trial_values
from search.store.reference_reuse import reuse_parent_references
from search.store.studies import Studies
from search.store.trial_writer import StudyClosed, TrialWriter

CHUNK = 1000  # trials per transaction: a cancel or a reader never waits long behind one
HEARTBEAT_SECONDS = 5.0  # how often a live creation touches its study
CANCEL_POLL_SECONDS = 0.5  # how often sampling asks the database whether it was cancelled


@dataclass(frozen=True)
class CreationBudget:
    """What one study's creation may spend: wall seconds and rejection-sampler draws."""

    seconds: float = 120.0
    draws: int = 1_000_000_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CreationBudget:
        """From $DSE_CREATE_SECONDS and $DSE_CREATE_DRAWS (the operator's settings)."""
        env = os.environ if env is None else env
        base = cls()
        seconds = env_number("DSE_CREATE_SECONDS", float, "seconds", base.seconds, env)
        if not 0 < seconds < 1e6:
            raise ValueError(
                f"DSE_CREATE_SECONDS: must be in (0, 1e6), got {env['DSE_CREATE_SECONDS']}"
            )
        draws = env_number("DSE_CREATE_DRAWS", int, "an integer", base.draws, env)
        if draws < 1:
            raise ValueError(f"DSE_CREATE_DRAWS: must be at least 1, got {draws}")
        return cls(seconds=seconds, draws=draws)


def space_seed(seed: int, label: str) -> int:
    """The sampler seed of one space of a study: its own stream, from the study seed and label.

    Spaces of one study never share a stream (the same seed for AnyNetX_D and _E drew the same
    networks wherever their constraints allowed, so their KS test compared overlapping samples),
    and a refine child's space (a new label) draws independently of its parent's. The same
    space listed twice under one label draws the same networks. SHA-256 of "seed:label": stable
    across processes and Python versions, unlike hash().
    """
    digest = hashlib.sha256(f"{int(seed)}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: numpy takes any int >= 0


class CreationFailed(ValueError):
    """A study's creation failed; the study is marked failed with this reason."""


class _Heartbeat(Beats):
    """Touches the study's progress every HEARTBEAT_SECONDS while a creation runs."""

    def __init__(self, studies: Studies, study_id: int) -> None:
        super().__init__(HEARTBEAT_SECONDS, "dse-creation")
        self.studies, self.study_id = studies, study_id
        self.progress: CreationProgress | None = None

    def beat(self) -> None:
        """Report the progress so far, if any (a missed beat is harmless; the next retries)."""
        if self.progress is not None:
            try:
                self.studies.report_creation(self.study_id, self.progress)
            except Exception:
                pass


class StudyCreation:
    """Samples and stores the trials of `creating` studies (`fill`)."""

    def __init__(self, db: Database, studies: Studies, writer: TrialWriter) -> None:
        self.db, self.studies, self.writer = db, studies, writer

    def fill(self, study_id: int, budget: CreationBudget | None = None) -> StudyStatus:
        """Sample and store the study's trials; its status after (running or cancelled).

        Raises CreationFailed (the study is then failed with the reason) when sampling is
        infeasible, the budget runs out, or anything else goes wrong.
        """
        budget = budget or CreationBudget()
        start = time.monotonic()
        deadline = start + budget.seconds
        with _Heartbeat(self.studies, study_id) as beat:
            try:
                per_space, sampling = self._sample(study_id, budget, deadline, beat)
                if per_space is None:  # cancelled while sampling
                    return self.studies.status(study_id)
                sampled = time.monotonic()
                self._store(study_id, per_space, sampling, beat)
                progress = beat.progress.model_copy(
                    update={
                        "sampling_seconds": round(sampled - start, 3),
                        "storing_seconds": round(time.monotonic() - sampled, 3),
                    }
                )
                beat.progress = progress
                self.studies.report_creation(study_id, progress)
            except StudyClosed:
                return self.studies.status(study_id)
            except BaseException as e:
                reason = _reason(e, deadline, budget)
                self.studies.fail(study_id, reason)
                if isinstance(e, Exception):
                    raise CreationFailed(reason) from e
                raise
        self.studies.mark_running(study_id)
        return self.studies.status(study_id)

    def _sample(self, study_id: int, budget: CreationBudget, deadline: float, beat: _Heartbeat):
        """Per space: (DesignSpace, samples); None if the study was cancelled meanwhile."""
        spec = self.studies.spec(study_id)
        progress = CreationProgress(spaces=len(spec.spaces), budget_seconds=budget.seconds)
        beat.progress = progress
        cancelled = _CancelPoll(self.studies, study_id)
        per_space: dict[str, tuple] = {}
        sampling: dict[str, dict] = {}
        left = budget.draws
        for i, (label, space_spec) in enumerate(zip(spec.space_names(), spec.spaces, strict=True)):
            space = space_spec.resolve()
            if left < 1:
                raise ValueError(
                    f"spaces[{i}] ({label}): the creation's budget of {budget.draws} draws "
                    "is spent (the server's DSE_CREATE_DRAWS)"
                )
            try:
                result = sample(
                    space,
                    spec.samples,
                    seed=space_seed(spec.seed, label),
                    bounds=spec.bounds(),
                    resolution=spec.dataset.resolution,
                    num_classes=spec.dataset.num_classes,
                    in_channels=3,
                    # an explicit budget turns off the sampler's own early stop: pass
                    # one only when the request's is the tighter (sampler default ≤ 1e8)
                    max_draws=left if left < 10**8 else None,
                    interrupt=lambda: time.monotonic() > deadline or cancelled(),
                )
            except ValueError as e:
                if cancelled.seen:
                    return None, sampling
                raise ValueError(f"spaces[{i}] ({label}): {e}") from e
            left -= result.draws
            per_space[label] = (space, result.samples)
            sampling[label] = {"draws": result.draws, "acceptance": result.acceptance}
            progress = CreationProgress(
                spaces=len(spec.spaces), sampled=i + 1, budget_seconds=budget.seconds
            )
            beat.progress = progress
            if not self.studies.report_creation(study_id, progress, sampling):
                return None, sampling  # cancelled (or reaped) meanwhile
        return per_space, sampling

    def _store(self, study_id: int, per_space: dict, sampling: dict, beat: _Heartbeat) -> None:
        """Store every sampled network as a level-0 trial, in chunks, interleaving spaces."""
        spec = self.studies.spec(study_id)
        rows_of = {
            label: [
                trial_params.trial_params(label, s.params, s.complexity, spec.fidelities[0])
                for s in samples
            ]
            for label, (_, samples) in per_space.items()
        }
        distributions = trial_params.study_distributions(
            {label: (space, rows_of[label]) for label, (space, _) in per_space.items()},
            spec.fidelities,
            spec.bounds(),
        )
        record = self.studies.get(study_id)
        oid = self.db.optuna.get_study_id_from_name(record.optuna_name)
        self.db.optuna.set_study_system_attr(
            oid, trial_params.STUDY_ATTR, trial_params.to_json(distributions)
        )
        rows = []
        samples_of = {label: samples for label, (_, samples) in per_space.items()}
        for space, index, s in fidelity.interleave(samples_of):
            row = new_trial_values(
                study_id, space, index, 0, spec.fidelities[0], 1, s.spec.to_dict(), s.complexity
            )
            row["sampled"] = dict(s.params)
            rows.append(row)
        first_space = next(iter(per_space.values()))[0]
        rows += reference_rows(study_id, spec, first_space)
        n = len(spec.spaces)
        budget_seconds = beat.progress.budget_seconds if beat.progress else None
        # the next chunks are checked and serialised while the database stores this one
        ahead = ThreadPoolExecutor(1, thread_name_prefix="dse-prepare")
        starts = range(0, len(rows), CHUNK)
        prepared = [
            ahead.submit(self.writer.prepare, rows[s : s + CHUNK], distributions) for s in starts
        ]
        try:
            for start, ready in zip(starts, prepared, strict=True):
                chunk = rows[start : start + CHUNK]
                with self.db.write() as session, session.begin():
                    self.writer.add(study_id, chunk, session, distributions, ready.result())
                    progress = CreationProgress(
                        spaces=n,
                        sampled=n,
                        total=len(rows),
                        stored=start + len(chunk),
                        budget_seconds=budget_seconds,
                    )
                    self.studies.report_creation(study_id, progress, sampling, session)
                beat.progress = progress
        finally:
            ahead.shutdown(cancel_futures=True)
        # a refine child: its parent's finished reference runs are the same trainings
        reuse_parent_references(self.db, self.studies, study_id)


def reference_rows(study_id: int, spec, space) -> list[dict]:
    """Trials of the study's reference networks: every seed at every level, all waiting now.

    They are not promoted (each level trains every reference, so its marker is comparable
    with every level's EDF); seed k is sample k (the worker seeds with study seed + sample).
    Their input is the one the spaces were sampled for (`space`: the first DesignSpace).
    """
    resolution = spec.dataset.resolution or space.resolution
    num_classes = spec.dataset.num_classes or space.num_classes
    rows = []
    for i, (label, ref) in enumerate(zip(spec.reference_labels(), spec.references, strict=True)):
        try:
            net = ref.network(resolution, num_classes, 3)  # as the sampler: 3 channels
            counts = network_complexity(net)
        except ValueError as e:
            raise ValueError(f"references[{i}] ({label}): {one_line(e)}") from e
        depth = sum(int(s.depth) for s in net.stages) if hasattr(net, "stages") else 0
        for level, epochs in enumerate(spec.fidelities):
            for seed in range(spec.reference_seeds):
                row = new_trial_values(study_id, label, seed, level, epochs, 1, net.to_dict(),
                                       counts, reference=label, depth=depth)  # fmt: skip
                row["sampled"] = {}
                rows.append(row)
    return rows


class _CancelPoll:
    """True once the study is no longer `creating` (asks the database twice a second)."""

    def __init__(self, studies: Studies, study_id: int) -> None:
        self.studies, self.study_id = studies, study_id
        self.last = 0.0
        self.seen = False

    def __call__(self) -> bool:
        now = time.monotonic()
        if not self.seen and now - self.last >= CANCEL_POLL_SECONDS:
            self.last = now
            self.seen = self.studies.status(self.study_id) != StudyStatus.CREATING
        return self.seen


def _reason(e: BaseException, deadline: float, budget: CreationBudget) -> str:
    """Why a creation failed, in one line for the study's `reason`."""
    text = " ".join(str(e).split()) or type(e).__name__
    if time.monotonic() > deadline and "interrupted" in text:
        return (
            f"creation ran out of its time budget ({budget.seconds:g} s, the server's "
            f"DSE_CREATE_SECONDS): {text}"
        )
    if isinstance(e, KeyboardInterrupt | SystemExit):
        return "creation stopped: the creating process was interrupted"
    return text
