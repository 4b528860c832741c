"""The typed shapes of the API's bodies: studies, progress and results, the form's presets and
estimates, exports, the refine request and the health check, as /openapi.json documents them.

(Past 400 lines on purpose: every body the API reads or answers, in one place, is what the
OpenAPI schema and the schemathesis run check against; the routes define none.)

They mirror what search hands out (`Store.progress`, `search.analysis.results.study_results`), with
no `Any`: every number is finite or null (JSON has no NaN), and the results models forbid
keys they do not name, so a change of the results' shape fails loudly (tests/test_fuzz.py
validates responses against this schema) instead of reaching the page unannounced.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from anynet.spec import NetSpec
from search.spec.study import Recipe, StudySpec
from search.store.models import CreationProgress

Number = float | None  # NaN and infinities are sent as null
Normalize = Literal["none", "flops", "params", "acts"]  # what an EDF's errors are normalised by
ExportFormat = Literal["pycls", "timm", "torchvision", "json"]  # what an export is written as


class _Exact(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- errors ---------------------------------------------------------------------------------
class ErrorItem(_Exact):
    """One thing wrong with a request: the field (or header, or body) and why."""

    field: str
    reason: str


class ErrorBody(_Exact):
    """Every 4xx/5xx body: `detail` is the items as one line, `field: reason; ...`."""

    detail: str
    errors: list[ErrorItem]


# --- progress ------------------------------------------------------------------------------
class StatusCounts(_Exact):
    """Trials by status (retried attempts counted once) and their total."""

    waiting: int
    running: int
    done: int
    failed: int
    diverged: int
    cancelled: int
    total: int
    not_learned: int = Field(
        0, description="done trials whose error is not clearly below chance (among done)"
    )


class LevelCounts(StatusCounts):
    """The trials of one space at one fidelity level."""

    level: int = Field(description="fidelity level, 0 = the lowest")
    epochs: int


class Failure(_Exact):
    """One reason trials failed with, and how many did (Studies.failures)."""

    reason: str
    trials: int


class RanWith(_Exact):
    """Done trials per thread count, precision and device they ran with (docs/method.md §5)."""

    threads: dict[int, int] = Field(default_factory=dict)
    precision: dict[str, int] = Field(default_factory=dict)
    device: dict[str, int] = Field(default_factory=dict)


class Progress(_Exact):
    """A study's trials per space and fidelity level, and over all of them."""

    study_id: int
    status: str = Field(
        description="the study's status: creating, running, cancelled, done, failed"
    )
    reason: str | None = Field(None, description="why the study failed (None otherwise)")
    failures: list[Failure] = Field(
        default_factory=list, description="why its trials failed, commonest reason first"
    )
    spaces: dict[str, list[LevelCounts]] = Field(description="per space, one entry per level")
    references: dict[str, list[LevelCounts]] = Field(
        default_factory=dict,
        description="per reference network (all its seeds), one entry per level",
    )
    totals: StatusCounts = Field(description="every trial: the spaces' and the references'")
    ran_with: RanWith = Field(
        default_factory=RanWith,
        description="done trials per setting; results can differ with each (docs/method.md §5)",
    )


# --- results ---------------------------------------------------------------------------------
class FidelityLevel(_Exact):
    """Which fidelity level the results are of."""

    level: int
    epochs: int
    levels: list[int] = Field(description="epochs of every level of the study")


class Band(_Exact):
    """The DKW confidence band of an EDF (docs/method.md §6; with n_eff when weighted)."""

    lo: list[Number]
    hi: list[Number]
    epsilon: Number
    alpha: float


class Edf(_Exact):
    """An error EDF as step points (subsampled for plotting; statistics use every trial)."""

    x: list[Number]
    F: list[Number] = Field(description="F(x): the (weighted) fraction of errors below x")
    band: Band
    subsampled: bool


class RandomSearch(_Exact):
    """Expected minimum error of m random draws from the space (NDS)."""

    m: list[int]
    expected_min: list[Number]


class RegNetParamsOut(_Exact):
    """The parameters of a fitted RegNet, ready to export."""

    depth: int
    w0: int
    wa: float
    wm: float
    group_width: int
    bottleneck_multiplier: float
    se_ratio: float


class RegNetFit(_Exact):
    """The RegNet fitted to the best networks of a space (DDS §3.3) and the network fitted."""

    space: str
    sample: int
    trial_id: int
    error: Number
    depth: int
    w0: int
    wa: float
    wm: float
    e_fit: Number
    mean_e_fit: Number
    k: int
    params: RegNetParamsOut
    stage_depths: list[int] | None = None
    stage_widths: list[int] | None = None
    invalid: str | None = Field(None, description="why the fitted RegNet cannot be built")
    block: str | None = Field(
        None, description="the winner's block: a RegNet (X blocks) only fits res_bottleneck ones"
    )


class SpaceResults(_Exact):
    """One design space at one fidelity level: counts, error statistics, EDF, fit."""

    name: str
    n: int
    n_diverged: int
    n_done: int
    n_failed: int
    n_cancelled: int
    n_pending: int
    n_outside: int = Field(0, description="networks outside the normalisation range, left out")
    n_eff: Number
    min: Number
    q1: Number
    median: Number
    q3: Number
    mean: Number
    max: Number
    edf: Edf
    random_search: RandomSearch
    regnet: RegNetFit | None
    n_not_learned: int = Field(0, description="done trials at chance (search/spec/learning.py)")
    chance_error: Number = Field(None, description="median chance error of the done trials")


class NotLearned(_Exact):
    """A space with more than 10% of its done trials at chance, and the warning to show."""

    space: str
    n: int
    of: int
    text: str


class KsTest(_Exact):
    """A two-sample KS test between two spaces, with its Benjamini–Hochberg q-value."""

    a: str
    b: str
    D: Number
    p: Number
    q: Number
    test: str = Field(description="two-sample KS, or the within-bin permutation test (NDS)")
    adjusted: bool | None = Field(
        None,
        description="normalised: p from permuting residuals of an error-vs-complexity fit"
        " within bins (docs/method.md §6)",
    )
    imbalance_p: Number | None = Field(
        None, description="normalised: p of 'the two spaces' complexity differs inside bins'"
    )
    refused: str | None = Field(
        None, description="normalised: why no p is given (too few networks a bin), else null"
    )
    parent: int | None = Field(
        None, description="a refine child's test against its parent's space: the parent's id"
    )


class BestRange(_Exact):
    """The bootstrap best-value range of a parameter (docs/method.md §6)."""

    lo: Number
    median: Number
    hi: Number


class ParamPoints(_Exact):
    """One space's (value, error) points of a parameter."""

    x: list[Number]
    error: list[Number]
    best: BestRange


class ParamPlot(_Exact):
    """The error-vs-parameter data of one parameter or complexity column."""

    log: bool = Field(description="whether a log axis suits the values")
    spaces: dict[str, ParamPoints]


class EfitPoints(_Exact):
    """One space's (e_fit, error) points (DDS Fig. 8) and the best networks' e_fit range."""

    x: list[Number] = Field(description="e_fit of each network (distance to the nearest RegNet)")
    error: list[Number]
    best: BestRange
    n: int


class Efit(_Exact):
    """DDS Fig. 8: e_fit against error per space, fits kept inside the RegNet space."""

    ranges: dict[str, list[Number]] = Field(description="the RegNet space the fits stay in")
    spaces: dict[str, EfitPoints]


class RankCorrelation(_Exact):
    """How well one fidelity level ranks networks like the next (per space, or 'all')."""

    space: str
    from_epochs: int
    to_epochs: int
    n: int
    spearman: Number
    kendall: Number


class Suggestion(_Exact):
    """A refinement a user could apply next, with its evidence and (if tested) verdict."""

    space: str
    kind: Literal["constraint", "range"]
    text: str
    evidence: str
    constraint: str | None = None
    param: str | None = None
    with_: str | None = Field(None, alias="with", description="the space that has it")
    fraction: Number = None
    lo: Number = None
    median: Number = None
    hi: Number = None
    observed: list[Number] | None = None
    D: Number = None
    p: Number = None
    q: Number = None
    mean_without: Number = None
    mean_with: Number = None
    verdict: str | None = None
    family: str | None = Field(None, description="the family of tests its q-value is over")
    id: str = Field(description="stable id: constraint:SPACE:NAME or range:SPACE:PARAM")
    narrows: bool | None = Field(None, description="range: the best range is narrow enough")
    applies: bool = Field(description="whether POST /api/studies/{id}/refine can try it")
    why_not: str | None = Field(None, description="why it cannot be tried, when it cannot")


class ReferenceMarker(_Exact):
    """A reference network at one level: its error over seeds and its percentile per space."""

    name: str
    n: int = Field(description="seeds counted (done or diverged) at this level")
    seeds: int = Field(description="seeds the spec asks for")
    n_diverged: int
    n_failed: int
    n_pending: int
    errors: list[Number] = Field(description="the error of each counted seed")
    mean: Number = Field(description="mean error over the counted seeds (the marker's line)")
    sd: Number = Field(description="standard deviation over the seeds (ddof 1)")
    lo: Number = Field(description="the band: lowest error over the seeds")
    hi: Number = Field(description="the band: highest error over the seeds")
    band: str = Field(description="what lo and hi are")
    flops: int | None
    params: int | None
    acts: int | None
    percentile: dict[str, Number] = Field(
        description="per space: the (weighted) fraction of its networks with a higher error"
    )
    text: dict[str, str] = Field(description="per space: 'resnet20 beats 62% of AnyNetX_E'")
    n_reused: int = Field(0, description="counted seeds a refine child copied from its parent")
    reused: str | None = Field(None, description="which study they came from, in words")


class Results(_Exact):
    """A study's results at one fidelity level (GET /api/studies/{id}/edf; docs/method.md §6).

    The one definition of the results body (search.analysis.results.results_for's dict)."""

    study: str
    study_id: int
    fidelity: FidelityLevel
    normalize: Literal["flops", "params", "acts"] | None
    bins: int | None
    bins_auto: bool | None = Field(
        None, description="normalised: the bin count was chosen from the data (no `bins` given)"
    )
    complexity_range: list[float] | None
    warnings: list[str]
    spaces: dict[str, SpaceResults]
    ks: list[KsTest]
    vs_parent: KsTest | None = Field(
        None,
        description="a refine child: its space against the parent's (also the last ks row,"
        " b = 'parent ID: SPACE')",
    )
    params: dict[str, ParamPlot]
    e_fit: Efit
    rank_correlation: list[RankCorrelation]
    regnet: dict[str, RegNetFit | None] = Field(
        description="per space, and 'overall' for the best networks of all spaces"
    )
    regnet_top_k: int
    refinement: list[Suggestion]
    progress: dict[str, list[LevelCounts]]
    not_learned: list[NotLearned] = Field(
        default_factory=list, description="spaces whose trainings stayed at chance"
    )
    failures: list[Failure] = Field(
        default_factory=list, description="why trials failed, commonest reason first"
    )
    references: dict[str, ReferenceMarker] = Field(
        default_factory=dict,
        description="reference networks' markers (docs/method.md §6); reference trials enter"
        " no space's statistics",
    )


# --- studies: what /api/studies answers -------------------------------------------


class StudyCreated(BaseModel):
    """A new study: 201 once its trials are stored, 202 while it is still being created."""

    id: int
    status: str = Field(description="running, or creating (poll GET /api/studies/{id})")
    creation: CreationProgress | None = None


class StudySummary(BaseModel):
    """One study in the listing."""

    id: int
    name: str
    status: str
    created: datetime
    spaces: list[str]
    samples: int
    fidelities: list[int]
    reason: str | None = Field(None, description="why it failed, when it did")
    creation: CreationProgress | None = Field(None, description="while creating: how far")


class Sampling(BaseModel):
    """How the rejection sampler did for one space (docs/method.md §4)."""

    draws: int
    acceptance: float


class StudyRef(BaseModel):
    """Another study, by id and name (lineage)."""

    id: int
    name: str


class ChildRef(StudyRef):
    """A study that refines this one, and the suggestion it tries."""

    status: str
    suggestion: str | None


class Tried(BaseModel):
    """The suggestion a child study tries: its id and sentence, the parent's space it refined
    and the child's refined space."""

    id: str
    text: str
    space: str = Field(description="the parent's space the suggestion was about")
    refined: str = Field(description="the child's space: that space with the suggestion applied")


class StudyDetail(StudySummary):
    """One study: its spec and its progress per space and fidelity."""

    spec: StudySpec
    progress: Progress
    sampling: dict[str, Sampling] = Field(
        default_factory=dict, description="per space: rejection-sampler draws and acceptance"
    )
    version: str
    parent: StudyRef | None = Field(None, description="the study this one refines")
    suggestion: Tried | None = Field(None, description="the suggestion of the parent it tries")
    lineage: list[StudyRef] = Field(
        default_factory=list, description="ancestors, root first: A → B → C for C is [A, B]"
    )
    children: list[ChildRef] = Field(default_factory=list, description="studies refining this")


class Trial(BaseModel):
    """One trial: a network of a space at one fidelity level (one attempt)."""

    trial_id: int
    space: str
    sample: int
    level: int
    epochs: int
    status: str
    error: Number = Field(description="validation error at the end of training")
    flops: int
    params: int
    acts: int
    depth: int
    attempt: int
    worker: str | None
    test_error: Number
    seconds: Number
    images_per_s: Number
    reason: str | None
    threads: int | None = Field(None, description="torch intra-op threads it trained with")
    device: str | None = Field(None, description="where it trained: cpu, cuda:0")
    spec: NetSpec
    params_sampled: dict[str, int | float | None] = Field(description="the values drawn")
    epochs_done: int
    last_val_error: Number
    retried_as: int | None
    started: str | None
    finished: str | None
    history: list[dict[str, int | float | str | bool | None]] = Field(
        description="per-epoch metrics"
    )


class TrialsPage(BaseModel):
    """One page of a study's trials."""

    study_id: int
    total: int
    offset: int
    limit: int
    trials: list[Trial]


# --- the study form: presets and a study's estimate (api.http.routes.form) ----------------
class ParamRange(BaseModel):
    """The values a drawn parameter takes: its distribution's kind and support."""

    kind: str
    lo: float
    hi: float
    values: list[float] | None = Field(None, description="a choice's values")


class Preset(BaseModel):
    """One preset design space as the form shows it."""

    name: str
    family: str = Field(description="AnyNetX, AnyNetY, RegNet, NDS CIFAR, EfficientNet, …")
    description: str
    kind: Literal["anynet", "regnet"]
    block: str
    stages: int | None
    stem: dict[str, str | int]
    se_ratio: float
    resolution: int
    num_classes: int
    constraints: list[str | dict[str, int]]
    parameters: dict[str, ParamRange | list[ParamRange]] = Field(
        description="per drawn parameter: one range for every stage, or one per stage"
    )


class LevelEstimate(BaseModel):
    """One fidelity level: its trials and their images and time."""

    level: int
    epochs: int
    trials_per_space: int
    trials: int = Field(description="the spaces' trials and the reference networks'")
    reference_trials: int = Field(0, description="reference networks x seeds (every level)")
    train_images: int | None = Field(description="None when the dataset's size is unknown")
    eval_images: int | None = Field(description="validation images, once per epoch")
    seconds: float | None


class SpaceEstimate(BaseModel):
    """One space: the flops the estimate takes for its networks, and its time."""

    name: str
    flops: float
    flops_source: Literal["sampled_mean", "bounds_midpoint", "sampled_median"] = Field(
        description="sampled_mean: the first networks creation would sample (older servers: "
        "bounds_midpoint, sampled_median)"
    )
    flops_note: str
    seconds: float | None


class ReferenceEstimate(BaseModel):
    """One reference network: its flops at the study's input, its trials and their time."""

    name: str
    flops: float
    trials: int = Field(description="its seeds at every level")
    seconds: float | None


class DataEstimate(BaseModel):
    """The split sizes and input the trials train with."""

    name: str
    train_size: int | None
    val_size: int | None
    resolution: int | None
    num_classes: int | None


class RateEstimate(BaseModel):
    """How fast this machine trains: images/s x forward flops, and where that comes from."""

    source: Literal["trials", "measured"] = Field(
        description="trials: finished trials in this store; measured: a short training here"
    )
    flop_per_s: float = Field(description="images/s x forward multiply-adds per image")
    trials: int
    device: str | None
    note: str


class Estimate(BaseModel):
    """What a study costs before it is created."""

    trials: int
    levels: list[LevelEstimate]
    spaces: list[SpaceEstimate]
    references: list[ReferenceEstimate] = Field(default_factory=list)
    dataset: DataEstimate
    recipe: dict[str, float | int | bool | str | None] | None = Field(
        description="the recipe every unset field resolved, at the lowest fidelity"
    )
    train_images: int | None
    eval_images: int | None
    rate: RateEstimate | None
    workers: int
    seconds: float | None = Field(description="on `workers` workers as fast as the rate")
    note: str | None


# --- a network for a full run elsewhere (api.http.routes.exports) ------------------------
class FullRunRecipe(Recipe):
    """The study's recipe scaled for a full run (DDS §5)."""

    epochs: int


class ExportCandidate(BaseModel):
    """One network a space's export offers: the trained winner or the fitted RegNet."""

    network: Literal["winner", "fit"]
    source: str
    trial_id: int | None = None
    error: float | None = Field(None, description="validation error (the winner only: trained)")
    e_fit: float | None = Field(
        None, description="winner: its distance to the nearest RegNet; fit: the winner's to it"
    )
    family: str = Field(description="'a RegNet', or the winner's block family")
    regnet: dict[str, Any] | None = Field(None, description="the fit's RegNet parameters")
    stage_depths: list[int]
    stage_widths: list[int]
    complexity: dict[str, int] = Field(description="flops, params, acts at the study's input")
    formats: dict[str, str | None] = Field(
        description="per format: null when it builds this network, else why not"
    )


class ExportOut(BaseModel):
    """A network ready for a full run in another code base, and how to train it."""

    study_id: int
    space: str | None = Field(description="the space exported; None = best over all spaces")
    format: ExportFormat
    source: str = Field(description="what was exported: the RegNet fit of winners, or a trial")
    trial_id: int | None = None
    error: float | None = Field(None, description="validation error of the winning trial")
    text: str = Field(description="the export itself: YAML, Python or JSON text")
    structured: dict[str, Any] = Field(description="anynet.export.export_dict of the network")
    complexity: dict[str, int] = Field(description="flops, params, acts of the exported network")
    recipe: FullRunRecipe = Field(description="training recipe of the full run (DDS §5)")
    scaled: dict[str, Any] | None = Field(
        None, description="anynet.scaling's account when scale_flops was given: rule, factors"
    )
    notes: list[str]
    network: Literal["winner", "fit"] = Field(
        "winner", description="which candidate was exported: the trained winner or the fit"
    )
    candidates: list[ExportCandidate] = Field(
        default_factory=list, description="the winner and the fitted RegNet, side by side"
    )


# --- requests, and the health check --------------------------------------------------------
class RefineBody(BaseModel):
    """Which suggestion to try, as read at which fidelity and normalisation."""

    model_config = {"extra": "forbid"}
    suggestion: str = Field(min_length=1, max_length=500, description="the suggestion's id")
    fidelity: int | None = Field(None, ge=1, le=100_000, description="epochs; None = lowest")
    normalize: Normalize = "none"


class Health(BaseModel):
    """Liveness and database reachability."""

    status: str
    database: str
    studies: int | None = None
