"""`dse study create|list|show|wait|cancel|refine`, over one database URL."""

from __future__ import annotations

import sys
import time

from api.cli.parser import CliError, db_option, emit_json, json_option
from search.spec.reproducibility import ran_with_notes
from search.spec.status import StudyStatus, TrialStatus


def register(subparsers) -> None:
    """Add the `study` subcommand."""
    study = subparsers.add_parser("study", help="create, list, show, wait for or cancel studies")
    verbs = study.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = _verb(verbs, "create", cmd_create, "create a study from a YAML or JSON spec; prints its id")
    p.add_argument("file", help="study spec (.yaml, .yml or .json; - for stdin)")
    p.add_argument(
        "--check",
        action="store_true",
        help="first train the spec's first reference (else RegNetX-200MF) once at the lowest "
        "fidelity with the study's recipe and data; refuse the study if it stays at chance",
    )
    p.add_argument("--device", default=None, help="device of the --check training (default: best)")
    _verb(verbs, "list", cmd_list, "every study with its status")
    _verb(verbs, "show", cmd_show, "trial counts per space and fidelity level", study_id=True)
    p = _verb(verbs, "wait", cmd_wait, "wait until a study is done or cancelled", study_id=True)
    p.add_argument("--timeout", type=float, default=None, help="seconds; exit 1 on timeout")
    p.add_argument("--interval", type=float, default=2.0, help="seconds between polls")
    p.add_argument(
        "--report",
        type=float,
        default=30.0,
        help="seconds between progress lines on stderr when it is not a terminal (a terminal "
        "gets one line redrawn at every poll)",
    )
    cancel = "cancel a study (running trials stop at their next epoch)"
    _verb(verbs, "cancel", cmd_cancel, cancel, study_id=True)
    refine = "try a refinement suggestion: create the child study (the parent's spec with it "
    refine += "applied); prints the child's id"
    p = _verb(verbs, "refine", cmd_refine, refine)
    p.add_argument("id", type=int, help="the parent study")
    p.add_argument(
        "suggestion", help="the suggestion's id, e.g. constraint:AnyNetX_A:shared_bottleneck"
    )


def _verb(verbs, name: str, func, help: str, study_id: bool = False):
    """A `dse study` verb: its parser with --db and --json, the study id if it takes one."""
    p = verbs.add_parser(name, help=help)
    if study_id:
        p.add_argument("id", type=int)
    db_option(p)
    json_option(p)
    p.set_defaults(func=func)
    return p


def _store(args, create: bool = False):
    """The store of --db; only `dse study create` makes a database that is not there."""
    from search.store import Store

    return Store(args.db, create=create)


def _study(store, study_id: int):
    from search.store import StudyNotFound

    try:
        return store.get_study(study_id)
    except StudyNotFound as e:
        raise CliError(str(e)) from None


def cmd_create(args) -> int:
    """Validate, sample and store a study; print its id."""
    from search.spec.study import StudySpec, check_dataset_root

    text = sys.stdin.read() if args.file == "-" else None
    spec = StudySpec.from_text(text) if text is not None else StudySpec.from_file(args.file)
    check_dataset_root(spec)  # before --check trains on it
    check = None
    if args.check:
        from worker.check import check_recipe

        check = check_recipe(spec, device=args.device)
        if not check.learned:
            raise CliError(f"--check: {check.text()}; the study was not created")
        print(f"dse study create: --check: {check.text()}", file=sys.stderr)
    study_id = _store(args, create=True).create_study(spec)
    if args.json:
        emit_json({"id": study_id} | ({"check": check} if check else {}))
    else:
        print(study_id)
    return 0


def cmd_list(args) -> int:
    """One line per study."""
    studies = _store(args).list_studies()
    rows = [
        {
            "id": s.id,
            "name": s.name,
            "status": s.status,
            "created": s.created.isoformat(),
            "spaces": s.spec.space_names(),
            "samples": s.spec.samples,
            "reason": s.reason,
            "creation": s.creation.to_json() if s.creation else None,
        }
        for s in studies
    ]
    if args.json:
        emit_json(rows)
        return 0
    for r, s in zip(rows, studies, strict=True):
        print(
            f"{r['id']:>5}  {r['status']:<9}  {r['name']}  ({', '.join(r['spaces'])}; "
            f"{r['samples']} samples each){_state_note(s)}"
        )
    return 0


def _state_note(study) -> str:
    """What a creating or failed study adds to its line: creation progress or the reason."""
    if study.status == StudyStatus.CREATING and study.creation is not None:
        c = study.creation
        stored = f", {c.stored} of {c.total} trials stored" if c.total is not None else ""
        return f"  [creating: {c.sampled} of {c.spaces} spaces sampled{stored}]"
    if study.status == StudyStatus.FAILED and study.reason:
        return f"  [failed: {study.reason}]"
    return ""


def cmd_show(args) -> int:
    """Counts per space and fidelity: waiting, running, done, failed, diverged."""
    store = _store(args)
    study = _study(store, args.id)
    progress = store.progress(args.id)
    if args.json:
        emit_json(
            {
                "id": study.id,
                "name": study.name,
                "created": study.created.isoformat(),
                "spec": study.spec,
                "sampling": study.sampling,
                "reason": study.reason,
                "creation": study.creation.to_json() if study.creation else None,
                **store.family(study),
                **progress,
            }
        )
        return 0
    print(f"study {study.id} {study.name!r}: {study.status}{_state_note(study)}")
    lin = store.family(study)
    if lin["lineage"]:
        chain = " → ".join(f"{a['id']} {a['name']!r}" for a in [*lin["lineage"], study.__dict__])
        print(f"  lineage: {chain}")
        print(f"  tries: {study.suggestion['id']} ({study.suggestion['text']})")
    for c in lin["children"]:
        print(f"  child: {c['id']} {c['name']!r} [{c['status']}] tries {c['suggestion']}")
    columns = (*(s.value for s in TrialStatus), "not_learned")  # at chance: search.spec.learning
    print(f"  {'space':<16} {'level':>5} {'epochs':>6} " + " ".join(f"{c:>11}" for c in columns))
    for space, levels in progress["spaces"].items():
        for e in levels:
            print(
                f"  {space:<16} {e['level']:>5} {e['epochs']:>6} "
                + " ".join(f"{e[c]:>11}" for c in columns)
            )
    if progress.get("references"):  # every seed at every level; in no space's counts
        print("  reference networks:")
    for label, levels in progress.get("references", {}).items():
        for e in levels:
            print(
                f"  {label:<16} {e['level']:>5} {e['epochs']:>6} "
                + " ".join(f"{e[c]:>11}" for c in columns)
            )
    for line in failure_lines(progress.get("failures", [])):
        print(f"  {line}")
    if line := ran_with_line(progress.get("ran_with", {})):
        print(f"  {line}")
    for warning in not_learned_warnings(progress) + ran_with_notes(progress.get("ran_with", {})):
        print(f"warning: {warning}")
    return 0


def ran_with_line(ran_with: dict[str, dict]) -> str:
    """What the done trials ran with, e.g. 'ran with: 1 thread (3), 2 threads (1); fp32 (4)'."""

    def word(name: str, value) -> str:
        return f"{value} thread{'' if value == 1 else 's'}" if name == "threads" else str(value)

    parts = [
        ", ".join(f"{word(name, v)} ({n})" for v, n in sorted(counts.items()))
        for name, counts in ran_with.items()
        if counts
    ]
    return f"ran with: {'; '.join(parts)}" if parts else ""


def failure_lines(failures: list[dict]) -> list[str]:
    """Why trials failed, one line per reason ('failed trials:' first), commonest first."""
    if not failures:
        return []
    return ["failed trials:"] + [f"  {f['trials']:>5} x {f['reason']}" for f in failures]


def cmd_refine(args) -> int:
    """Create the child study that tries one of a study's refinement suggestions."""
    from search import refine
    from search.create import refine_plan
    from search.store.studies import ChildExists

    store = _store(args)
    _study(store, args.id)
    existing = store.child_trying(args.id, args.suggestion)
    created = existing is None
    if created:
        try:
            spec, record = refine_plan(store, args.id, args.suggestion)
        except (refine.UnknownSuggestion, refine.NotApplicable) as e:
            raise CliError(str(e)) from None
        try:
            existing = store.create_study(spec, parent_id=args.id, suggestion=record)
        except ChildExists as e:  # another `dse study refine` created it first
            existing, created = e.study_id, False
    if args.json:
        emit_json(
            {"id": existing, "parent": args.id, "suggestion": args.suggestion, "created": created}
        )
    else:
        print(existing)
    return 0


def not_learned_warnings(progress: dict) -> list[str]:
    """A warning per space and level with more than 10% of its done trials at chance."""
    from search.spec.learning import not_learned_warning

    out = []
    for space, levels in progress["spaces"].items():
        for e in levels:
            where = f"{space} ({e['epochs']} epochs)"
            text = not_learned_warning(where, e.get("not_learned", 0), e["done"])
            out += [text] if text else []
    return out


def level_work(progress: dict, promote: float) -> list[dict]:
    """Per fidelity level, over spaces and references: epochs, finished, running and total
    trials, and `expected`: the total once the levels below promote (promote_count: ceil(n x
    promote) of a space's trials), for levels not yet filled."""
    from search.spec.fidelity import promote_count

    groups = [*progress["spaces"].values(), *progress.get("references", {}).values()]
    levels = []
    for i, entry in enumerate(groups[0] if groups else []):
        rows = [g[i] for g in groups]
        total = sum(r["total"] for r in rows)
        expected = sum(
            max(r["total"], promote_count(g[i - 1]["total"], promote) if i else 0)
            for g, r in zip(groups, rows, strict=True)
        )
        levels.append(
            {
                "level": i,
                "epochs": entry["epochs"],
                "total": total,
                "expected": expected,
                "running": sum(r["running"] for r in rows),
                "finished": total - sum(r["waiting"] + r["running"] for r in rows),
            }
        )
    for i in range(1, len(levels)):  # a level fills from the one below: chain the estimates
        below = levels[i - 1]
        if below["total"] < below["expected"]:
            levels[i]["expected"] = max(
                levels[i]["total"], promote_count(below["expected"], promote)
            )
    return levels


def work_done(levels: list[dict]) -> tuple[float, float]:
    """(epochs trained, epochs left) over the levels: finished and expected trials x epochs."""
    done = sum(lv["finished"] * lv["epochs"] for lv in levels)
    left = sum((max(lv["expected"], lv["total"]) - lv["finished"]) * lv["epochs"] for lv in levels)
    return float(done), float(left)


def wait_line(study_id: int, status: str, levels: list[dict], seconds_left: float | None) -> str:
    """One progress line of `dse study wait`: finished and left per level, the time left."""
    parts = []
    for lv in levels:
        total = max(lv["expected"], lv["total"])
        approx = "~" if lv["expected"] > lv["total"] else ""
        left = total - lv["finished"]
        parts.append(
            f"level {lv['level']} ({lv['epochs']} ep): {lv['finished']}/{approx}{total} "
            f"finished, {approx}{left} left"
        )
    running = sum(lv["running"] for lv in levels)
    eta = (
        "time left unknown yet" if seconds_left is None else f"about {_duration(seconds_left)} left"
    )
    return f"study {study_id} {status}: " + "; ".join(parts) + f"; {running} running; {eta}"


def _duration(seconds: float) -> str:
    """3 s, 4 min, 2.5 h."""
    if seconds < 90:
        return f"{max(0, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


class Eta:
    """Time left from the rate epochs are trained at: measured since the wait began once a
    trial finished during it, before that since the study was created."""

    def __init__(self, done: float, created_seconds_ago: float) -> None:
        self.start, self.done0 = time.monotonic(), done
        self.since_created = (done, max(1.0, created_seconds_ago))

    def seconds_left(self, done: float, left: float) -> float | None:
        """Seconds until `left` epochs are trained at the measured rate (None: no rate yet)."""
        if left <= 0:
            return 0.0
        if done > self.done0:
            rate = (done - self.done0) / max(1e-6, time.monotonic() - self.start)
        elif self.since_created[0] > 0:
            trained, seconds = self.since_created
            rate = trained / (seconds + time.monotonic() - self.start)
        else:
            return None
        return left / rate


def cmd_wait(args) -> int:
    """Poll until done/cancelled, with progress on stderr (per level, time left); exit 1 on
    timeout. A terminal gets one redrawn line; otherwise a line every --report seconds."""
    from datetime import UTC, datetime

    store = _store(args)
    study = _study(store, args.id)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    tty = sys.stderr.isatty()
    eta, last_report = None, None
    while True:
        progress = store.progress(args.id)
        totals = progress["totals"]
        finished = totals["total"] - totals["waiting"] - totals["running"]
        levels = level_work(progress, study.spec.promote)
        done, left = work_done(levels)
        if eta is None:
            age = (datetime.now(UTC) - study.created).total_seconds()
            eta = Eta(done, age)
        line = wait_line(args.id, progress["status"], levels, eta.seconds_left(done, left))
        if tty:
            sys.stderr.write(f"\r{line}\x1b[K")
            sys.stderr.flush()
        elif last_report is None or time.monotonic() - last_report >= args.report:
            print(f"dse study wait: {line}", file=sys.stderr, flush=True)
            last_report = time.monotonic()
        if StudyStatus(progress["status"]).finished:
            break
        if deadline is not None and time.monotonic() >= deadline:
            if tty:
                sys.stderr.write("\n")
            print(
                f"dse study wait: timeout after {args.timeout:g}s "
                f"({finished}/{totals['total']} trials finished)",
                file=sys.stderr,
            )
            if args.json:
                emit_json(progress)
            return 1
        time.sleep(args.interval)
    if tty:
        sys.stderr.write("\n")
    for warning in not_learned_warnings(progress):
        print(f"dse study wait: warning: {warning}", file=sys.stderr)
    if args.json:
        emit_json(progress)
    else:
        print(f"study {args.id}: {progress['status']}")
    if progress["status"] == StudyStatus.FAILED:
        print(f"dse study wait: {store.get_study(args.id).reason}", file=sys.stderr)
        return 1
    return 0


def cmd_cancel(args) -> int:
    """Cancel a study."""
    store = _store(args)
    _study(store, args.id)
    changed = store.cancel_study(args.id)
    status = store.get_study(args.id).status
    if args.json:
        emit_json({"id": args.id, "status": status, "changed": changed})
    else:
        print(f"study {args.id}: {status}")
    return 0
