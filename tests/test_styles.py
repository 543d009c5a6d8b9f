"""Style randomisation and light jitter (pokedex/data/styles.py, pokedex/train/augment.py): each deterministic from its
seed, each changing the Pokémon and only the Pokémon, settings checked."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.scenes import foreground_mask
from pokedex.data.styles import STYLES, light, restyle
from pokedex.train.augment import Prefetched, augment_image, scene_trainer

from .conftest import make_cfg
from .sprites import sprite_frame


def sprite_on_white(size: int = 64) -> tuple[Image.Image, np.ndarray]:
    img = Image.alpha_composite(Image.new("RGBA", (size, size), "white"), sprite_frame(3, 0, 0, size)).convert("RGB")
    return img, (foreground_mask(np.asarray(img)) * 255).astype(np.uint8)


@pytest.mark.parametrize("style", list(STYLES))
def test_each_style_is_deterministic_from_its_seed_and_changes_only_the_pokemon(style):
    img, mask = sprite_on_white()
    a, b = (np.asarray(restyle(img, mask, np.random.default_rng(7), style)) for _ in range(2))
    assert np.array_equal(a, b)
    others = [np.asarray(restyle(img, mask, np.random.default_rng(seed), style)) for seed in range(8, 12)]
    assert any(not np.array_equal(a, o) for o in others), "the seed must matter"
    original = np.asarray(img).astype(int)
    inside, outside = mask > 250, mask == 0
    assert np.abs(a.astype(int) - original)[inside].mean() > 2  # the Pokémon is redrawn
    assert np.array_equal(a[outside], np.asarray(img)[outside])  # the white around it is not


def test_opencv_draws_on_one_thread_while_a_style_draws_and_as_many_as_before_after(monkeypatch):
    """How OpenCV splits a filter's work between its threads must not depend on which of them a busy machine
    leaves free (stylize was OpenCV's stylization: its pixels moved with the load, and the trained model too)."""
    seen = []
    monkeypatch.setitem(STYLES, "probe", lambda rgb, rng: seen.append(cv2.getNumThreads()) or rgb)
    before = cv2.getNumThreads()
    cv2.setNumThreads(4)
    try:
        restyle(*sprite_on_white(), np.random.default_rng(0), "probe")
        assert seen == [1] and cv2.getNumThreads() == 4
    finally:
        cv2.setNumThreads(before)


def test_light_jitter_is_deterministic_and_moves_contrast_and_brightness_within_range():
    img, _ = sprite_on_white()
    a, b = (np.asarray(light(img, np.random.default_rng(3), (0.45, 0.5), (0.55, 0.6))) for _ in range(2))
    assert np.array_equal(a, b)
    assert a.std() < np.asarray(img).std() * 0.7 and a.mean() < np.asarray(img).mean() * 0.7  # dimmer, flatter
    same = light(img, np.random.default_rng(3), (1.0, 1.0), (1.0, 1.0))
    assert np.array_equal(np.asarray(same), np.asarray(img))


def test_training_augmentation_is_deterministic_from_its_seed_and_its_settings_are_checked():
    img, mask = sprite_on_white()
    cfg = OmegaConf.merge(make_cfg().augment, {"style": 1.0, "light": 1.0})
    pictures = [np.asarray(augment_image(img, mask, np.random.default_rng(s), cfg, 1.0)) for s in (1, 1, 2)]
    assert np.array_equal(pictures[0], pictures[1]) and not np.array_equal(pictures[0], pictures[2])
    off = make_cfg("augment=none").augment
    assert np.array_equal(np.asarray(augment_image(img, mask, np.random.default_rng(1), off, 0.0)), np.asarray(img))
    assert scene_trainer(off) is None
    assert scene_trainer(make_cfg("augment=none", "augment.style=0.5").augment) is not None  # style alone trains
    with pytest.raises(PokedexError, match=r"augment.style=1.5 is invalid: it must be a number ≥ 0 and ≤ 1"):
        scene_trainer(make_cfg("augment.style=1.5").augment)
    with pytest.raises(PokedexError, match=r"augment.contrast=\[1.3, 0.4\] must be \[low, high\]"):
        scene_trainer(make_cfg("augment.contrast=[1.3,0.4]").augment)


def test_a_hand_held_viewpoint_is_deterministic_from_its_seed():
    from pokedex.data.scenes import viewpoint

    img, _ = sprite_on_white()
    a, b, c = (np.asarray(viewpoint(img, np.random.default_rng(s))) for s in (4, 4, 5))
    assert a.shape == np.asarray(img).shape and np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, np.asarray(img))


def test_a_detector_crop_is_the_pokemons_box_made_square_and_its_jitter_is_checked():
    """With no jitter and no camera, the crop is the box with BOX_MARGIN around it: the Pokémon centred, filling
    1 / (1 + 2 margin) of the side; jitter moves it; crop=0 draws nothing (pictures stay as they were)."""
    from pokedex.data.boxes import BOX_MARGIN
    from pokedex.train.augment import detector_crop

    size = 96
    img = Image.new("RGB", (size, size), "white")
    img.paste((255, 0, 255), (24, 24, 72, 72))  # a magenta square: easy to find on any background
    mask = (foreground_mask(np.asarray(img)) * 255).astype(np.uint8)

    def magenta_box(picture: Image.Image) -> tuple[float, float, float]:
        a = np.asarray(picture).astype(int)
        ys, xs = np.nonzero((a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] > 200))
        return (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2, max(np.ptp(xs), np.ptp(ys)) + 1

    for seed in range(5):
        crop = detector_crop(img, mask, np.random.default_rng(seed), 0.0, (0.0, 0.0))
        assert crop.size == (size, size)
        cx, cy, side = magenta_box(crop)
        assert abs(cx - size / 2) <= 2 and abs(cy - size / 2) <= 2
        assert abs(side - size / (1 + 2 * BOX_MARGIN)) <= 3
    moved = [magenta_box(detector_crop(img, mask, np.random.default_rng(s), 0.0, (0.2, 0.3))) for s in range(5)]
    assert max(abs(cx - size / 2) + abs(cy - size / 2) for cx, cy, _ in moved) > 4
    cfg = make_cfg().augment
    no_crop = OmegaConf.merge(cfg, {"crop": 0.0})
    with_crop = OmegaConf.merge(cfg, {"crop": 1.0})
    a, b = (np.asarray(augment_image(img, mask, np.random.default_rng(3), c, 1.0)) for c in (no_crop, with_crop))
    assert not np.array_equal(a, b)
    with pytest.raises(PokedexError, match=r"augment.crop_jitter=\[-0.1, 0.1\] must be \[centre, size\] spreads"):
        scene_trainer(make_cfg("augment.crop_jitter=[-0.1,0.1]").augment)


class RandomPictures(torch.utils.data.Dataset):
    """Each item drawn from torch's generator, as the scene dataset draws its pictures; item 5 may fail."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def __len__(self) -> int:
        return 12

    def __getitem__(self, i: int):
        if self.fail and i == 5:
            raise ValueError("picture 5 is broken")
        return torch.rand(3), i


def test_prefetched_batches_are_the_loaders_own_in_its_order_and_its_errors_reach_the_caller():
    def batches(prefetch: bool) -> list:
        torch.manual_seed(0)
        loader = torch.utils.data.DataLoader(RandomPictures(), batch_size=4, shuffle=True)
        return [list(map(torch.Tensor.tolist, b)) for _ in range(2) for b in (Prefetched(loader, depth=2) if prefetch else loader)]

    assert batches(prefetch=True) == batches(prefetch=False)  # two epochs: the same pictures, the same order
    loader = Prefetched(torch.utils.data.DataLoader(RandomPictures(), batch_size=4))
    assert len(loader) == 3 and loader.batch_size == 4  # everything else is the loader's
    with pytest.raises(ValueError, match="picture 5 is broken"):
        list(Prefetched(torch.utils.data.DataLoader(RandomPictures(fail=True), batch_size=4)))


def test_a_caller_that_leaves_early_ends_the_drawing_thread():
    batches = iter(Prefetched(torch.utils.data.DataLoader(RandomPictures(), batch_size=1), depth=1))
    next(batches)
    batches.close()  # as when training stops mid-epoch
    for _ in range(50):
        if not any(t.name == "pokedex-prefetch" for t in threading.enumerate()):
            break
        time.sleep(0.1)
    assert not any(t.name == "pokedex-prefetch" for t in threading.enumerate())


def test_a_process_that_leaves_a_drawing_thread_behind_ends_with_its_own_exit_code():
    """Ctrl-C in training leaves the batches' generator unclosed (the exception keeps its frame) while the thread
    draws: at exit the thread is stopped and waited for, so the process ends with its code, not an abort (-6)."""
    import subprocess
    import sys

    script = (
        "import sys, torch\n"
        "from pokedex.train.augment import Prefetched\n"
        "class Slow(torch.utils.data.Dataset):\n"
        "    def __len__(self): return 10_000\n"
        "    def __getitem__(self, i): return torch.rand(64, 64) @ torch.rand(64, 64)\n"
        "batches = iter(Prefetched(torch.utils.data.DataLoader(Slow(), batch_size=8), depth=1))\n"
        "next(batches)\n"
        "sys.exit(130)  # the generator stays open, its thread busy in torch\n"
    )
    ended = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert ended.returncode == 130, ended.stderr[-2000:]
