"""CLIP beside the classifier (pokedex/evaluate/clip.py) on a tiny open_clip model (tests/tiny_clip.py): random weights saved
as a checkpoint file, so every path runs offline as a user's real checkpoint would."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pokedex.core.errors import PokedexError
from pokedex.evaluate.clip import (
    NOT_CONFIGURED,
    choose_fusion_weight,
    class_text_embeddings,
    fuse,
    load_clip,
    measure,
    train_probe,
)

from .conftest import make_cfg
from .tiny_clip import make_tiny_clip


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> tuple[Path, Path]:
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


def test_fusion_weight_is_the_one_that_makes_both_sources_right():
    """Two classes. Half the images: the classifier is wrong by 1 nat, CLIP right by 3, so the fused score is right
    for w > 0.25. The other half: the classifier right by 2, CLIP wrong by 1, right for w < 2/3. Only a weight in
    (0.25, 2/3) gets every image; of the grid's, 0.3 is the smallest."""
    truth = np.zeros(10, dtype=int)
    classifier = np.array([[0.0, 1.0]] * 5 + [[2.0, 0.0]] * 5)
    clip = np.array([[3.0, 0.0]] * 5 + [[0.0, 1.0]] * 5)
    grid = [round(0.1 * i, 1) for i in range(11)]
    assert choose_fusion_weight(classifier, clip, truth, grid) == 0.3
    assert (fuse(classifier, clip, 0.3).argmax(1) == truth).all()
    # where CLIP only ever hurts, the classifier alone; where the classifier is always wrong, CLIP decides
    assert choose_fusion_weight(classifier[5:], clip[5:], truth[5:], grid) == 0.0
    assert choose_fusion_weight(classifier[:5], clip[:5], truth[:5], grid) == 0.3
    assert choose_fusion_weight(classifier[:5], clip[:5], truth[:5], [0.0, 0.2, 1.0]) == 1.0


def test_linear_probe_separates_clustered_embeddings_and_keeps_the_l2_that_wins_on_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 16))

    def sample(n):
        y = np.arange(n) % 5
        x = centres[y] + 0.3 * rng.normal(size=(n, 16))
        return x / np.linalg.norm(x, axis=1, keepdims=True), y

    train, val, test = sample(100), sample(50), sample(50)
    w, b, l2 = train_probe(train, val, 5, [1e-4, 10.0], steps=100)
    assert ((test[0] @ w + b).argmax(1) == test[1]).mean() == 1.0
    assert l2 == 1e-4  # a strength of 10 flattens the weights towards zero: worse on validation


def test_text_embeddings_are_cached_by_model_weights_and_prompts(tiny_clip, tmp_path):
    config, checkpoint = tiny_clip
    clip = load_clip(str(config), str(checkpoint), tmp_path)
    names, prompts = ["Bulbasaur", "Ivysaur", "Venusaur"], ["a picture of {name}, a Pokémon.", "{name}"]
    first = class_text_embeddings(clip, names, prompts, tmp_path)
    assert first.shape == (3, 32) and np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    assert len(list(tmp_path.glob("text-*.npy"))) == 1
    assert np.array_equal(class_text_embeddings(clip, names, prompts, tmp_path), first)  # read back
    assert len(list(tmp_path.glob("text-*.npy"))) == 1
    other = class_text_embeddings(clip, names, prompts[:1], tmp_path)  # other prompts: another entry
    assert len(list(tmp_path.glob("text-*.npy"))) == 2 and not np.allclose(other, first)
    import open_clip
    import torch

    torch.manual_seed(1)  # the same architecture with other weights: another entry
    torch.save(open_clip.create_model("tiny-clip").state_dict(), tmp_path / "other.pt")
    retrained = class_text_embeddings(load_clip(str(config), str(tmp_path / "other.pt"), tmp_path), names, prompts,
                                      tmp_path)
    assert len(list(tmp_path.glob("text-*.npy"))) == 3 and not np.allclose(retrained, first)


def test_mistakes_in_clip_params_are_one_sentence_naming_the_key(tiny_clip, tmp_path, monkeypatch):
    config, _ = tiny_clip
    with pytest.raises(PokedexError, match=r"clip.pretrained is not set .*clip.pretrained=<file>"):
        load_clip("ViT-B-32", None, tmp_path)
    with pytest.raises(PokedexError, match=r"clip.pretrained=/no/such.pt is neither a checkpoint file"):
        load_clip("ViT-B-32", "/no/such.pt", tmp_path)
    with pytest.raises(PokedexError, match=r"clip.pretrained=nonsense is neither .* laion2b_s34b_b79k"):
        load_clip("ViT-B-32", "nonsense", tmp_path)
    with pytest.raises(PokedexError, match=r"clip.model=ViT-Q-99 is not an open_clip architecture"):
        load_clip("ViT-Q-99", "x.pt", tmp_path)
    with pytest.raises(PokedexError, match=r"clip.model=/no/such.json is not a file"):
        load_clip("/no/such.json", "x.pt", tmp_path)
    not_weights = tmp_path / "notes.pt"
    not_weights.write_text("not a checkpoint")
    with pytest.raises(PokedexError, match=r"could not be loaded into clip.model="):
        load_clip(str(config), str(not_weights), tmp_path)
    cfg = make_cfg("clip.model=ViT-B-32", "clip.pretrained=x.pt", "clip.templates=[a picture]").clip
    with pytest.raises(PokedexError, match=r"clip.templates must be a list of prompts that each contain \{name\}"):
        measure(cfg, tmp_path / "best.pt", tmp_path, 32, tmp_path / "out", tmp_path)


def test_a_pretrained_tag_offline_ends_in_one_sentence_naming_a_checkpoint_file(tmp_path, monkeypatch, capfd):
    """The tag is known (open_clip's list, no network needed for that); its download is not possible here."""
    import huggingface_hub.constants

    # fail at once instead of after ~45 s of the hub client's retries (it read the variable when first imported)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PokedexError) as error:
        load_clip("ViT-B-32", "laion2b_s34b_b79k", tmp_path)
    message = str(error.value)
    assert message.count(". ") == 0 and message.endswith("set clip.pretrained=<file>."), message
    assert "clip.pretrained=laion2b_s34b_b79k has to be downloaded" in message
    assert "Failed to download" not in capfd.readouterr().err  # open_clip's own log line is held back


def test_without_a_clip_model_the_stage_says_so_and_measures_nothing(tmp_path):
    metrics = measure(make_cfg().clip, tmp_path / "none.pt", tmp_path, 32, tmp_path / "out", tmp_path)
    assert metrics == {"clip": NOT_CONFIGURED}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics
    assert (tmp_path / "out" / "per_class.csv").read_text().splitlines() == [
        "class,images,classifier_top1,zero_shot_top1,probe_top1,hybrid_top1"]


@pytest.mark.slow
def test_zero_shot_probe_and_hybrid_run_on_a_trained_classifier(tiny_clip, tiny_cfg, tiny_dataset, tmp_path):
    from pokedex.train.train import train

    config, checkpoint = tiny_clip
    weights = train(make_cfg("data=tiny", "train.epochs=1", "train.plots=false"), tiny_dataset["yolo"], tmp_path / "train")
    cfg = make_cfg(f"clip.model={config}", f"clip.pretrained={checkpoint}", "clip.probe.steps=20").clip
    metrics = measure(cfg, weights, tiny_dataset["yolo"], tiny_cfg.data.image_size, tmp_path / "out", tmp_path / "cache")
    classes = tiny_cfg.data.synthetic.num_classes
    assert metrics["classes"] == classes and metrics["test_images"] > 0
    for key in ("clip_zero_shot_top1", "clip_zero_shot_top5", "clip_probe_top1", "clip_probe_top5",
                "classifier_top1", "hybrid_top1", "hybrid_top5"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["clip_zero_shot_top5"] == 1.0  # 4 classes: the top five hold every class
    assert metrics["hybrid_weight"] in cfg.hybrid.weights and metrics["probe_l2"] in cfg.probe.l2
    if metrics["hybrid_weight"] == 0.0:  # the classifier alone
        assert metrics["hybrid_top1"] == metrics["classifier_top1"]
    rows = (tmp_path / "out" / "per_class.csv").read_text().splitlines()
    assert len(rows) == 1 + classes and rows[1].startswith("0001 ")
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics
    assert len(list((tmp_path / "cache").glob("text-*.npy"))) == 1
