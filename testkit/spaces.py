"""What the NDS presets hold, for the tests of the presets and of the sampler."""

from __future__ import annotations

NDS_SETS = {  # NDS §3 value sets (docs/method.md §4)
    "Vanilla": {"depth": {1, 2, 3, 4, 6, 8, 12, 16, 24},
                "width": {16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256}},
    "ResNet": {"depth": {1, 2, 3, 4, 6, 8, 12, 16, 24},
               "width": {16, 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256}},
    "ResNeXt_A": {"depth": {1, 2, 4, 8, 16}, "width": {16, 32, 64, 128, 256},
                  "bottleneck_multiplier": {1.0, 0.5, 0.25}, "groups": {1, 2, 4}},
    "ResNeXt_B": {"depth": {1, 2, 4, 8, 16}, "width": {64, 128, 256, 512, 1024},
                  "bottleneck_multiplier": {1.0, 0.5, 0.25}, "groups": {1, 2, 4, 8, 16}},
}  # fmt: skip
