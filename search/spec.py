"""The study spec: one pydantic model used by the API, the CLI, the store and the workers.

Recipe and DatasetSpec live here because they are part of the study a worker is handed;
worker.train and worker.data take them as they are.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Recipe(_Strict):
    """How one network is trained at one fidelity (DDS §5 defaults scaled to short runs)."""

    lr: float = Field(0.1, gt=0, description="peak learning rate (after warm-up)")
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
    batch_size: int = Field(128, ge=1, le=65536)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    warmup_epochs: float = Field(0.0, ge=0, description="linear warm-up, then half-period cosine")
    crop_padding: int | None = Field(
        None, ge=0, description="random-crop padding in pixels; None = resolution // 8"
    )
    flip: bool = Field(True, description="random horizontal flip")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    channels_last: bool | None = Field(None, description="None = where the device gains from it")
    eval_batch_size: int = Field(512, ge=1)


class DatasetSpec(_Strict):
    """Which data a study trains on, at which resolution and split sizes."""

    name: str = Field(
        "digits",
        description="digits, synthetic, cifar10, cifar100, mnist, "
        "fashion-mnist, svhn or imagefolder",
    )
    root: str | None = Field(
        None, description="local directory of the files (torchvision datasets, imagefolder)"
    )
    resolution: int | None = Field(None, ge=4, le=1024, description="None = native")
    num_classes: int | None = Field(None, ge=2, description="synthetic only")
    train_size: int | None = Field(None, ge=1)
    val_size: int | None = Field(None, ge=1)
    test_size: int | None = Field(None, ge=0)
    difficulty: float = Field(0.5, ge=0, le=1, description="synthetic only")
    download: bool = Field(False, description="allow torchvision to download into root")
    seed: int = Field(0, description="seed of the fixed train/val/test split")
