"""The recipe check before a study: does a small RegNet learn with the study's recipe and data?

`dse study create --check` and `POST /api/studies?check=true` train one network once at the
study's lowest fidelity, with its recipe, dataset and seed, and refuse a study whose check
stays at chance (search.spec.learning), so a study never spends its budget drawing EDFs of
noise. The network is the study's first reference network (search.spec.reference) when
its spec lists any, else RegNetX-200MF (DDS, pycls's model zoo), unless a caller names another.
"""

from __future__ import annotations

import dataclasses

from anynet.regnet import regnet_spec
from anynet.spec import NetSpec
from search.spec.learning import ALPHA, CAUSES, above_chance_p, learned
from search.spec.reference import stem_for
from search.spec.study import StudySpec

# RegNetX-200MF (d, w0, wa, wm, g): docs/method.md §3
CHECK_REGNET = (13, 24, 36.44, 2.49, 8)
CHECK_NAME = "RegNetX-200MF"


def best_device() -> str:
    """cuda when present, else mps, else cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def check_network(resolution: int, num_classes: int) -> NetSpec:
    """RegNetX-200MF for this resolution and number of classes."""
    d, w0, wa, wm, g = CHECK_REGNET
    return regnet_spec(d, w0, wa, wm, g, resolution=resolution, num_classes=num_classes,
                       stem_type=stem_for(resolution))  # fmt: skip


@dataclasses.dataclass(frozen=True)
class RecipeCheck:
    """What the check trained and whether it learned (with the numbers that say so)."""

    network: str
    dataset: str
    epochs: int
    status: str
    val_error: float | None
    chance_error: float | None
    val_size: int
    p_value: float | None
    learned: bool
    recipe: dict | None
    seconds: float
    message: str = ""

    def text(self) -> str:
        """One line: what was trained, its error against chance, and the verdict."""
        what = f"{self.network} trained {self.epochs} epoch(s) on {self.dataset}"
        if self.status != "done":
            return (
                f"{what} ended {self.status} ({self.message}): the recipe does not learn; {CAUSES}"
            )
        numbers = (
            f"val error {self.val_error:.4f} against chance {self.chance_error:.4f} on "
            f"{self.val_size} images (binomial test p = {self.p_value:.2g})"
        )
        if self.learned:
            return f"{what}: {numbers}: it learns"
        return f"{what}: {numbers}: stays at chance (p >= {ALPHA:g}); {CAUSES}"


# what the check reports of the training's result as it is
CHECK_FROM_RESULT = (
    "status",
    "val_error",
    "chance_error",
    "val_size",
    "recipe",
    "seconds",
    "message",
)


def check_recipe(
    spec: StudySpec,
    device: str | None = None,
    net: NetSpec | None = None,
    name: str | None = None,
    threads: int | None = None,
) -> RecipeCheck:
    """Train `net` (default: the study's first reference, else RegNetX-200MF) once at the
    study's lowest fidelity; did it learn?"""
    from worker.data import load_dataset
    from worker.train import train

    data = load_dataset(spec.dataset)
    if net is None and spec.references:
        first = spec.references[0]
        net = first.network(data.resolution, data.num_classes, data.in_channels)
        name = name or first.label(0)
    elif net is None:
        net, name = check_network(data.resolution, data.num_classes), CHECK_NAME
    else:
        net = net.model_copy(
            update={"resolution": data.resolution, "num_classes": data.num_classes}
        )
    epochs = spec.fidelities[0]
    result = train(net, data, spec.recipe, epochs, device=device or best_device(),
                   seed=spec.seed, threads=threads)  # fmt: skip
    done = result.status == "done" and result.val_error is not None and result.val_size > 0
    verdict = done and learned(result.val_error, result.chance_error, result.val_size)
    p = above_chance_p(result.val_error, result.chance_error, result.val_size) if done else None
    return RecipeCheck(
        network=name or "the given network",
        dataset=spec.dataset.name,
        epochs=epochs,
        p_value=p,
        learned=bool(verdict),
        **{f: getattr(result, f) for f in CHECK_FROM_RESULT},
    )
