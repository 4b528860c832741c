"""NetSpec shorthand shared by the build and complexity tests."""

from __future__ import annotations

from anynet.spec import NetSpec


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
