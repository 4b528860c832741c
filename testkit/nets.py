"""NetSpecs written out by hand: a shorthand for stage tuples, ResNet-50 and EfficientNet-B0."""

from __future__ import annotations

from anynet.spec import NetSpec

# EfficientNet-B0 (Tan & Le 2019, Table 1): depth, width, stride, expansion, kernel
B0 = [(1, 16, 1, 1, 3), (2, 24, 2, 6, 3), (2, 40, 2, 6, 5), (3, 80, 2, 6, 3),
      (3, 112, 1, 6, 5), (4, 192, 2, 6, 5), (1, 320, 1, 6, 3)]  # fmt: skip


def net(block, stages, stem="simple", stem_width=8, resolution=17, **kw) -> NetSpec:
    """A NetSpec from (depth, width, stride, b, g) tuples."""
    return NetSpec(
        stem={"type": stem, "width": stem_width},
        block=block,
        stages=[
            dict(depth=d, width=w, stride=s, bottleneck_multiplier=b, group_width=g)
            for d, w, s, b, g in stages
        ],
        resolution=resolution,
        **kw,
    )


def resnet50_spec() -> NetSpec:
    """torchvision's ResNet-50 as a NetSpec (res_bottleneck blocks, the ResNet stem)."""
    return NetSpec(
        stem={"type": "resnet", "width": 64},
        block="res_bottleneck",
        stages=[
            dict(depth=d, width=w, stride=s, bottleneck_multiplier=0.25, group_width=w // 4)
            for d, w, s in zip([3, 4, 6, 3], [256, 512, 1024, 2048], [1, 2, 2, 2], strict=True)
        ],
        num_classes=1000,
        resolution=224,
    )


def b0_spec(resolution: int = 224) -> NetSpec:
    """EfficientNet-B0 as a NetSpec of the mbconv family."""
    return NetSpec(
        stem={"type": "simple", "width": 32},
        block="mbconv",
        se_ratio=0.25,
        head_width=1280,
        num_classes=1000,
        resolution=resolution,
        stages=[dict(depth=d, width=w, stride=s, expansion=t, kernel=k) for d, w, s, t, k in B0],
    )


def assert_same_function(ours, reference, rename, atol: float) -> None:
    """Load `reference`'s weights into `ours` under rename(key) (strict: every tensor has its
    counterpart) and check both compute the same on a random 64 px image."""
    import torch  # heavy: only the tests that compare modules pay for it

    ours.load_state_dict({rename(k): v for k, v in reference.state_dict().items()})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=atol)
