"""Model layers of our own that Ultralytics' YAML parser can name, for K210-sized classifiers and detectors.

Ultralytics' `Classify` head has a fixed 1280-wide hidden layer; on the K210 the pooled head runs on the
CPU in float32, and 1280 x 1025 classes alone is 5.2 MB of a ~6 MB RAM budget. `SlimClassify` is the same
head with a chosen width; `PooledClassify` the same without the hidden layer, for an ImageNet network's features
(pokedex/model/pretrained.py: `PretrainedBackbone`). `register()` makes it visible to Ultralytics' YAML parser (it looks layer names
up in `ultralytics.nn.tasks`); checkpoints pickle it as `pokedex.model.layers.SlimClassify`.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from pokedex.model.pretrained import PretrainedBackbone
from pokedex.model.ultra import ultralytics_offline

ultralytics_offline()  # unpickling a checkpoint may import this module first: keep Ultralytics offline

from ultralytics.nn.modules import Conv  # noqa: E402
from ultralytics.nn.modules.head import Classify, Detect  # noqa: E402

ARCH_DIR = Path(__file__).resolve().parent / "arch"


class SlimClassify(Classify):
    """Classify with a hidden width of `c_` instead of 1280. YAML args: [c1, nc, c_]."""

    def __init__(self, c1: int, c2: int, c_: int = 256, k: int = 1, s: int = 1, p: int | None = None, g: int = 1):
        super().__init__(c1, c2, k, s, p, g)
        self.conv = Conv(c1, c_, k, s, p, g)
        self.linear = nn.Linear(c_, c2)


class PooledClassify(Classify):
    """Classify without its hidden convolution: the pooled features go straight to the last linear layer, for a
    backbone that ends in a wide layer of its own (EfficientNet-Lite's 1280 channels). YAML args: [c1, nc]."""

    def __init__(self, c1: int, c2: int):
        super().__init__(c1, c2)
        self.conv = nn.Identity()
        self.linear = nn.Linear(c1, c2)


class DepthwiseDetect(Detect):
    """Detect whose class branch is depthwise (3x3 depthwise + 1x1) at any model size. Ultralytics builds that branch
    only for YAMLs with its newer blocks (C3k2, ...) and otherwise full 3x3 convolutions: 0.74 M of a 1 M-parameter
    one-class detector. YAML args: [nc, reg_max, end2end, [channels of each input]] (the parser gives Detect its
    args but not a subclass, and a subclass takes one input layer)."""

    legacy = False  # the parser sets Detect.legacy for the models it builds; this class keeps its own

    def forward(self, x):
        return super().forward(x if isinstance(x, list) else [x])  # one input layer (`from: -1`) comes unlisted


def register() -> None:
    import ultralytics.nn.tasks as tasks

    tasks.SlimClassify = SlimClassify
    tasks.PooledClassify = PooledClassify
    tasks.PretrainedBackbone = PretrainedBackbone
    tasks.DepthwiseDetect = DepthwiseDetect


def resolve_arch(arch: str) -> str:
    """A project architecture (pokedex/model/arch/NAME.yaml) by name, else Ultralytics' own name or a path."""
    ours = ARCH_DIR / arch
    return str(ours) if ours.is_file() else arch
