"""Guards of issue 23's attacker findings: Plotly markup in the page's names, export scale
bounds, dataset roots re-checked where workers open them, creation children that die with
their server, bidirectional controls in names, recipe numbers with bounds."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from search.spec.study import StudySpec

ROOT = Path(__file__).resolve().parents[1]
SPEC = {"name": "guards", "spaces": [{"preset": "AnyNetX_A"}], "samples": 2}


# --- Plotly renders a subset of HTML in trace names, titles and annotations -------------------
PAGE_SCRIPTS = sorted((ROOT / "api" / "http" / "static").glob("study*.js"))
# what may be interpolated into a Plotly label unescaped: numbers and the page's own words
SAFE = re.compile(
    r"^(plotlyText\(.*\)|pct\(.*\)|fmt\(.*\)|s\.n|ref\.n|study\.parent\.id|norm|beats\.join\(.*\))$"
)


# keys named like Plotly's that never reach a plot: the refinement list (DOM text) and the
# lineage chain (DOM text)
NOT_PLOTLY = {("text", "x"), ("name", "study.name")}


def _plotly_labels(text: str) -> list[tuple[str, str]]:
    """(key, value) of every `name:` / `text:` in a page script, up to the end of the line."""
    return re.findall(r"\b(name|text): ([^\n]*)", text)


def _expression(value: str) -> str:
    """The JS expression a value starts with: up to the first `,` or `}` outside brackets."""
    depth = 0
    for i, c in enumerate(value):
        depth += c in "([{"
        depth -= c in ")]}"
        if depth < 0 or (depth == 0 and c == ","):
            return value[:i].strip()
    return value.strip()


@pytest.mark.parametrize("script", PAGE_SCRIPTS, ids=lambda p: p.name)
def test_every_plotly_label_escapes_what_it_interpolates(script):
    text = script.read_text()
    labels = _plotly_labels(text)
    for key, value in labels:
        if value.startswith('"'):  # a literal
            continue
        if value.startswith("`"):
            template = value[1 : value.index("`", 1)]
            for expr in re.findall(r"\$\{([^}]*\)?)\}", template):
                assert SAFE.match(expr.strip()), f"{script.name}: {key}: ${{{expr}}} unescaped"
            continue
        head = _expression(value)
        if (key, head) in NOT_PLOTLY:
            continue
        assert SAFE.match(head), f"{script.name}: {key}: {head} unescaped"


def test_the_efit_legend_escapes_space_names():
    text = (ROOT / "api" / "http" / "static" / "study.js").read_text()
    efit = text[text.index("function renderEfit") : text.index("function renderParams")]
    assert "scatterWithStrips(" in efit  # its markers and their legend names come from there
    scatter = text[text.index("function scatterWithStrips") : text.index("function renderEfit")]
    names = [v for k, v in _plotly_labels(scatter) if k == "name"]
    assert names and all(v.startswith("plotlyText(") for v in names)


# --- the export's scale is bounded ------------------------------------------------------------
@pytest.mark.parametrize("budget", ["1e300", "1e-300x", "5000x"])
def test_scaling_refuses_budgets_out_of_reach(budget):
    from anynet.regnet import RegNetParams
    from anynet.scaling import MAX_SCALE, scale_to

    params = RegNetParams(depth=13, w0=24, wa=36, wm=2.5, group_width=8)
    with pytest.raises(ValueError, match=f"flops: .* to {MAX_SCALE:g} x"):
        scale_to(params, budget)


def test_export_route_names_scale_flops_for_a_budget_out_of_reach(tmp_path):
    from api.http.app import create_app
    from search.store import Store
    from testkit.api import finish_all, local_client

    spec = {
        "name": "scale",
        "dataset": {"name": "synthetic", "resolution": 8, "num_classes": 4, "train_size": 64},
        "spaces": [
            {
                "preset": "AnyNetX_E",
                "stem": {"type": "cifar", "width": 8},
                "resolution": 8,
                "num_classes": 4,
                "stages": 2,
                "depth": [1, 2],
                "width": [8, 24],
            }
        ],  # fmt: skip
        "samples": 3,
        "fidelities": [1],
    }
    store = Store(f"sqlite:///{tmp_path / 'f.db'}")
    try:
        sid = store.create_study(spec)  # synchronously: a loaded machine outlasts a POST's wait
        finish_all(store)
        with local_client(create_app(store=store)) as client:
            r = client.get(f"/api/studies/{sid}/export", params={"scale_flops": "1e300"})
            assert r.status_code == 422, r.text
            assert r.json()["detail"].startswith("scale_flops: ")
    finally:
        store.close()


# --- dataset roots re-checked where the worker opens them -------------------------------------
def test_a_root_replaced_by_a_symlink_outward_is_refused(tmp_path):
    from search.spec.study import DatasetSpec
    from worker.sources import SOURCES, DatasetError, allowed_root

    data, outside = tmp_path / "data", tmp_path / "secrets"
    (data / "set").mkdir(parents=True)
    outside.mkdir()
    env = {"DSE_DATA_DIRS": str(data)}
    assert allowed_root(data / "set", env) == (data / "set").resolve()
    (data / "set").rmdir()
    (data / "set").symlink_to(outside)  # after the server checked it at POST
    with pytest.raises(DatasetError, match="outside the allowed data directories"):
        allowed_root(data / "set", env)
    assert allowed_root(data / "set", {}) == outside.resolve()  # no DSE_DATA_DIRS: any root
    os.environ["DSE_DATA_DIRS"] = str(data)
    try:
        spec = DatasetSpec(name="imagefolder", root=str(data / "set"))
        with pytest.raises(DatasetError, match="outside"):
            SOURCES["imagefolder"].read(spec)
    finally:
        del os.environ["DSE_DATA_DIRS"]


def _classes(folder: Path, names=("cat", "dog"), n: int = 3) -> None:
    """An image folder: n 8x8 PNGs in each class folder."""
    from PIL import Image

    for k, name in enumerate(names):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.new("RGB", (8, 8), (255 * k, 0, 255 - 255 * k)).save(folder / name / f"{i}.png")


@pytest.fixture
def data_dirs(tmp_path, monkeypatch):
    """(an allowed data directory, a folder outside it) with DSE_DATA_DIRS set to the first."""
    data, outside = tmp_path / "data", tmp_path / "secrets"
    data.mkdir()
    _classes(outside, names=("etc",))
    monkeypatch.setenv("DSE_DATA_DIRS", str(data))
    return data, outside


@pytest.mark.parametrize("link", ["dog", "cat/9.png", "train", "test"])
def test_a_symlink_inside_an_allowed_root_leading_outward_is_refused(data_dirs, monkeypatch, link):
    from search.spec.study import DatasetSpec
    from worker.sources import SOURCES, DatasetError

    data, outside = data_dirs
    split = link in ("train", "test")
    _classes(data / "set" / "train" if split else data / "set")
    if split:
        _classes(data / "set" / "test")
    spec = DatasetSpec(name="imagefolder", root=str(data / "set"))
    assert SOURCES["imagefolder"].read(spec).num_classes == 2  # as posted: read
    path = data / "set" / link
    target = {"cat/9.png": outside / "etc" / "0.png", "dog": outside / "etc"}.get(link)
    if split:  # a folder of class folders
        _classes(target := outside / "split")
    if path.exists():
        shutil.rmtree(path)
    path.symlink_to(target)  # later, inside the root the server checked
    with pytest.raises(DatasetError) as refused:
        SOURCES["imagefolder"].read(spec)
    assert str(refused.value) == (
        f"dataset 'imagefolder': {path} resolves to {target.resolve()}, outside the allowed "
        "data directories (DSE_DATA_DIRS)"
    )
    monkeypatch.delenv("DSE_DATA_DIRS")  # no DSE_DATA_DIRS: any path, as for the root
    assert SOURCES["imagefolder"].read(spec).num_classes == 2


def test_a_symlink_inside_the_allowed_directories_is_read(data_dirs):
    from search.spec.study import DatasetSpec
    from worker.sources import SOURCES

    data, _ = data_dirs
    _classes(data / "set", names=("cat",))
    _classes(data / "elsewhere", names=("dogs",))
    (data / "set" / "dog").symlink_to(data / "elsewhere" / "dogs")
    (data / "set" / "cat" / "9.png").symlink_to(data / "set" / "cat" / "0.png")
    raw = SOURCES["imagefolder"].read(DatasetSpec(name="imagefolder", root=str(data / "set")))
    assert raw.num_classes == 2 and raw.train_y.tolist() == [0, 0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize(("name", "file"), [
    ("cifar10", "cifar-10-batches-py/data_batch_1"),
    ("cifar100", "cifar-100-python/train"),
    ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
    ("fashion-mnist", "FashionMNIST/raw/train-images-idx3-ubyte.gz"),
    ("svhn", "train_32x32.mat"),
])  # fmt: skip
def test_a_dataset_file_symlinked_outward_is_refused_before_it_is_opened(data_dirs, name, file):
    from search.spec.study import DatasetSpec
    from worker.sources import SOURCES, DatasetError

    data, outside = data_dirs
    secret = outside / "secret"
    secret.write_bytes(b"not yours")
    path = data / "set" / file
    path.parent.mkdir(parents=True)
    path.symlink_to(secret)
    with pytest.raises(DatasetError, match="outside the allowed data directories") as refused:
        SOURCES[name].read(DatasetSpec(name=name, root=str(data / "set")))
    assert str(refused.value).startswith(f"dataset {name!r}: {path} resolves to {secret}")


@pytest.mark.slow
def test_a_worker_fails_the_trial_naming_the_link(data_dirs, sqlite_url):
    from search.store import Store
    from worker.loop import run_worker

    data, outside = data_dirs
    _classes(data / "set", names=("cat",))
    (data / "set" / "dog").symlink_to(outside / "etc")
    spec = {"name": "linked", "samples": 2, "fidelities": [1],
            "dataset": {"name": "imagefolder", "root": str(data / "set"), "resolution": 8},
            "spaces": [{"preset": "AnyNetX_A", "stem": {"type": "cifar", "width": 8},
                        "stages": 1, "depth": [1, 1], "width": [8, 8]}]}  # fmt: skip
    store = Store(sqlite_url)
    try:
        study_id = store.create_study(spec)
        assert run_worker(sqlite_url, exit_when_idle=True, threads=1, poll_seconds=0.1,
                          install_signals=False) == 2  # fmt: skip
        reasons = {t["status"]: t["reason"] for t in store.trials(study_id)}
        assert reasons == {"failed": (
            f"DatasetError: dataset 'imagefolder': {data / 'set' / 'dog'} resolves to "
            f"{(outside / 'etc').resolve()}, outside the allowed data directories (DSE_DATA_DIRS)"
        )}  # fmt: skip
    finally:
        store.close()


# --- creation children die with their server --------------------------------------------------
SERVER = textwrap.dedent(
    """
    import sys, time
    from search.store.creation import CreationBudget
    from search.creator import Creator
    from search.store import Store
    from testkit.specs import SLOW_SPEC
    store = Store(sys.argv[1])
    creator = Creator(store, CreationBudget())
    creator.start()
    job = creator.submit(store.begin_study(SLOW_SPEC))
    print(job.process.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has ended


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_a_creation_child_dies_with_a_sigkilled_server(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, f"sqlite:///{tmp_path / 'c.db'}"],
        stdout=subprocess.PIPE, env=env, cwd=tmp_path, text=True,
    )  # fmt: skip
    try:
        child = int(server.stdout.readline())
        time.sleep(0.5)
        assert _alive(child)  # creating
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child), "the creation child outlived its server"


def test_exit_with_parent_is_called_first_in_the_child():
    import inspect

    from search import creator

    body = inspect.getsource(creator._create)
    assert body.index("exit_with_parent(server)") < body.index("Store(url)")


# --- names and recipe numbers -----------------------------------------------------------------
@pytest.mark.parametrize("char", ["\u202e", "\u2066", "\u200f"])
def test_bidi_controls_are_refused_in_names(char):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="printable"):
        StudySpec.model_validate({**SPEC, "name": f"report{char}fdp.exe"})
    space = {"preset": "AnyNetX_A", "name": f"A{char}B"}
    with pytest.raises(ValidationError, match="printable"):
        StudySpec.model_validate({**SPEC, "spaces": [space]})


@pytest.mark.parametrize(
    ("recipe", "needle"),
    [
        ({"lr": 1e308}, "recipe.lr: at most 10, got 1e+308: SGD diverges"),
        ({"weight_decay": 5}, "recipe.weight_decay: at most 0.1"),
    ],
)
def test_recipe_numbers_have_bounds_with_a_reason(recipe, needle):
    from api.errors import one_line

    with pytest.raises(ValueError) as info:
        StudySpec.model_validate({**SPEC, "recipe": recipe})
    assert needle in one_line(info.value)
    StudySpec.model_validate({**SPEC, "recipe": {"lr": 3.2, "weight_decay": 5e-4}})


def test_dse_train_refuses_an_lr_past_the_bound(capsys):
    from api.cli import main

    code = main(["train", "--regnet", "2,16,16,2.5,8", "--dataset", "digits", "--epochs", "1",
                 "--lr", "1e308"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "at most 10" in err
