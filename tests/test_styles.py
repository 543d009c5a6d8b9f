"""Style randomisation and light jitter (pokedex/data/styles.py, pokedex/augment.py): each deterministic from its
seed, each changing the Pokémon and only the Pokémon, settings checked."""

from __future__ import annotations

import numpy as np
import pytest
from omegaconf import OmegaConf
from PIL import Image

from pokedex.augment import augment_image, scene_trainer
from pokedex.data.scenes import foreground_mask
from pokedex.data.styles import STYLES, light, restyle
from pokedex.errors import PokedexError

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
    with pytest.raises(PokedexError, match=r"augment.style=1.5 must be a probability"):
        scene_trainer(make_cfg("augment.style=1.5").augment)
    with pytest.raises(PokedexError, match=r"augment.contrast=\[1.3, 0.4\] must be \[low, high\]"):
        scene_trainer(make_cfg("augment.contrast=[1.3,0.4]").augment)


def test_a_hand_held_viewpoint_is_deterministic_from_its_seed():
    from pokedex.data.scenes import viewpoint

    img, _ = sprite_on_white()
    a, b, c = (np.asarray(viewpoint(img, np.random.default_rng(s))) for s in (4, 4, 5))
    assert a.shape == np.asarray(img).shape and np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, np.asarray(img))
