"""The labelling loop: `pokedex suggest` ranks unlabelled pictures and writes the package, `pokedex label` files
the labelled rows into data/user/NNNN/ (a real, untrained K210 classifier whose last layer is set by hand)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from pokedex.cli import main
from pokedex.core.errors import PokedexError
from pokedex.label.filing import file_labels
from pokedex.label.suggest import ranked, suggest
from pokedex.model.build import build_model
from pokedex.predict import class_labels
from pokedex.recognise.features import logits_and_features

from .conftest import make_cfg

SIZE = 96  # what suggest reads a model without training arguments at


def _picture(path, colour):
    Image.new("RGB", (80, 60), colour).save(path)
    return path


@pytest.fixture
def pool(tmp_path):
    folder = tmp_path / "pool"
    folder.mkdir()
    _picture(folder / "dark.png", (10, 10, 10))
    _picture(folder / "light.png", (240, 240, 240))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


@pytest.fixture
def unsure_of_light(tmp_path, pool):
    """An untrained K210 classifier, its batch norms set from one batch of noise (so its features are far from
    zero) and its last layer by hand: it splits its vote between species 1 and 2 on the light picture and is sure
    of species 2 on the dark one (class 0's logit is 0 at the light picture's features and -20 at the dark one's,
    class 1's always 0, the others far below)."""
    torch.manual_seed(0)  # the untrained weights: the same in every worker, whatever ran there before
    model = build_model(OmegaConf.create({"task": "classify", "arch": "k210n-cls.yaml", "weights": None}))
    net = model.model.float()
    net.names = {i: f"{i + 1:04d}" for i in range(len(net.names))}  # as trained: class folders named by dex id
    for layer in net.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # the running statistics become those of the batch below
    with torch.no_grad():
        net.train()(torch.from_numpy(np.random.default_rng(0).random((16, 3, SIZE, SIZE), dtype=np.float32)))
    net.eval()
    pictures = np.stack([np.asarray(Image.open(pool / name).convert("RGB").resize((SIZE, SIZE))).transpose(2, 0, 1)
                         for name in ("dark.png", "light.png")])
    _, (dark, light) = logits_and_features(model, pictures)
    direction = (light - dark) / float(np.dot(light - dark, light - dark))
    head = net.model[-1].linear
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-30.0)
        head.weight[0] = torch.from_numpy(20 * direction)
        head.bias[0] = -20 * float(np.dot(direction, light))
        head.bias[1] = 0.0
    model.save(str(tmp_path / "unsure.pt"))
    return tmp_path / "unsure.pt"


def test_suggest_ranks_the_picture_the_model_is_unsure_of_first(pool, unsure_of_light, tmp_path, monkeypatch):
    from pokedex.model.load import load_model

    model = load_model(unsure_of_light)
    suggestions, rejects = suggest(pool, model, class_labels(None, model.names), size=SIZE, progress=False)
    assert [s.path.name for s in suggestions] == ["light.png", "dark.png"]
    assert suggestions[0].uncertainty > 0.95 and suggestions[1].uncertainty < 0.05
    assert suggestions[1].guesses[0][0] == "0002 Ivysaur" and suggestions[0].guesses[0][1] == pytest.approx(0.5, abs=0.02)
    assert rejects == [("broken.jpg", rejects[0][1])] and "not an image" in rejects[0][1]

    # the command quiets Ultralytics for its own process; here it must not quiet the stages this worker starts later
    monkeypatch.setenv("YOLO_VERBOSE", "False")
    main(["suggest", str(pool), "--out", str(tmp_path / "package"), "--model", str(unsure_of_light), "--whole"])
    rows = list(csv.DictReader((tmp_path / "package" / "suggestions.csv").open(newline="", encoding="utf-8")))
    assert [r["path"] for r in rows] == [str(pool / "light.png"), str(pool / "dark.png")]
    assert all(r["label"] == "" and r["x0"] == "" for r in rows) and rows[1]["guess1"] == "0002 Ivysaur"
    page = (tmp_path / "package" / "index.html").read_text(encoding="utf-8")
    assert page.count("<figure>") == 2 and page.index("light.png") < page.index("dark.png")
    assert "broken.jpg" in (tmp_path / "package" / "unreadable.csv").read_text()


def test_near_copies_do_not_fill_the_top_of_the_ranking():
    embeddings = np.array([[1.0, 0.0], [0.999, 0.045], [0.0, 1.0]])
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    priority = np.array([1.0, 0.95, 0.7])  # the near-copy of the first is the second most uncertain
    assert ranked(priority, embeddings, spread=0.5) == [0, 2, 1]
    assert ranked(priority, embeddings, spread=0.0) == [0, 1, 2]


def _table(path, rows):
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["rank", "path", "guess1", "label"])
        writer.writerows(rows)
    return path


def test_label_files_each_row_once_and_never_overwrites(tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    a, b, c, d = (_picture(pics / f"{n}.png", (i * 60, 0, 0)) for i, n in enumerate("abcd"))
    user = tmp_path / "user"
    (user / "0025").mkdir(parents=True)
    _picture(user / "0025" / "a.png", (1, 2, 3))  # another picture already holds the name
    table = _table(tmp_path / "suggestions.csv", [
        (1, a, "0025 Pikachu", "pikachu"), (2, b, "0004 Charmander", "accept"), (3, c, "0001 Bulbasaur", ""),
        (4, d, "(no Pokémon)", "none")])
    done = file_labels(table, user)
    assert done.filed == {"0025": 1, "0004": 1, "none": 1} and done.unlabelled == 1
    assert (user / "0025" / "a.png").read_bytes() != a.read_bytes()  # not overwritten
    assert [p.read_bytes() for p in (user / "0025").glob("a-*.png")] == [a.read_bytes()]
    assert (user / "0004" / "b.png").is_file() and (user / "none" / "d.png").is_file()
    outcomes = list(csv.DictReader(done.report.open(encoding="utf-8")))
    assert [o["outcome"].split(" ")[0] for o in outcomes] == ["filed", "filed", "not", "filed"]

    before = sorted(p.relative_to(user) for p in user.rglob("*"))
    again = file_labels(table, user)  # idempotent: the same bytes are never copied twice
    assert again.filed == {} and again.already == 3 and sorted(p.relative_to(user) for p in user.rglob("*")) == before


def test_an_unknown_label_names_its_row_and_files_nothing(tmp_path):
    pic = _picture(tmp_path / "x.png", (9, 9, 9))
    table = _table(tmp_path / "suggestions.csv", [(1, pic, "0025 Pikachu", "25"), (2, pic, "0025 Pikachu", "Pikachuu")])
    with pytest.raises(PokedexError, match=r"row 3 \(x\.png\): label 'Pikachuu' is neither a Pokédex id .*nothing was filed"):
        file_labels(table, tmp_path / "user")
    assert not (tmp_path / "user").exists()
    with pytest.raises(PokedexError, match="label '1026' is neither"):
        file_labels(_table(table, [(1, pic, "", "1026")]), tmp_path / "user")
    with pytest.raises(PokedexError, match="label 'accept' is neither"):  # no first guess to accept
        file_labels(_table(table, [(1, pic, "", "accept")]), tmp_path / "user")


def test_labelled_pictures_join_the_data_as_a_source_of_their_own(tmp_path):
    from pokedex.data.ingest import ingest

    user = tmp_path / "user"
    (user / "0025").mkdir(parents=True)
    (user / "none").mkdir()
    _picture(user / "0025" / "cap.png", (200, 200, 0))
    _picture(user / "none" / "desk.png", (90, 60, 30))
    (user / "README.md").write_text("how to fill me\n")
    data = make_cfg("data=tiny", "data.source=[synthetic,user]", f"data.user.root={user}").data
    raw, rejects = tmp_path / "raw", tmp_path / "rejects.csv"
    ingest(data, raw, tmp_path / "classes.csv", rejects)
    ours = sorted(p.relative_to(raw).as_posix() for p in raw.rglob("user.*"))
    assert ours == ["0025/user.cap.png"]  # named by its source: its split group crosses no other source
    assert list(csv.reader(rejects.open())) == [["source", "reason"], ["user:none/desk.png", "no Pokémon (none/): not a species to learn"]]

    empty = make_cfg("data=tiny", "data.source=[synthetic,user]", f"data.user.root={tmp_path / 'nothing yet'}").data
    ingest(empty, raw, tmp_path / "classes.csv", rejects)  # nothing labelled yet: the other sources alone
    assert not list(raw.rglob("user.*")) and any(raw.rglob("synthetic.*"))


def test_the_fine_tune_sees_your_pictures_adapt_repeat_times_whatever_adapt_augment_repeats(tmp_path):
    from pokedex.train.adapt import USER, adapted_cfg

    cfg = make_cfg("data=tiny", "adapt.repeat=5", "augment.repeat.other-dream-world=8", "+augment.repeat.box=2",
                   "adapt.augment.repeat.other-dream-world=3", "++adapt.augment.p=0.25")
    tuned = adapted_cfg(cfg, tmp_path / "best.pt")
    assert OmegaConf.to_container(tuned.augment.repeat) == {"other-dream-world": 3, "box": 2, USER: 5}
    assert tuned.augment.p == 0.25 and tuned.model.weights == str(tmp_path / "best.pt")
    assert tuned.train.lr0 == cfg.adapt.train.lr0 and cfg.augment.repeat["other-dream-world"] == 8  # cfg untouched


def test_adapting_fine_tunes_on_your_pictures_with_the_training_pictures_replayed(tmp_path, tiny_dataset):
    import os

    from pokedex.data.sources.user import labelled_pictures
    from pokedex.model.load import load_model
    from pokedex.train.adapt import adapt, adaptation_dataset
    from pokedex.train.train import train

    yolo = tiny_dataset["yolo"]
    user = tmp_path / "user"
    for folder, colour in (("0002", (0, 200, 0)), ("0007", (0, 0, 200)), ("none", (9, 9, 9))):
        (user / folder).mkdir(parents=True)
        _picture(user / folder / "p.png", colour)
    pictures, rejects = labelled_pictures(user)
    assert [(p.parent.name, dex) for p, dex in pictures] == [("0002", 2), ("0007", 7)]
    assert [why for _, why in rejects] == ["no Pokémon (none/): not a species to learn"]

    counts, unreadable = adaptation_dataset(yolo, pictures, tmp_path / "view", 32, 0.25, 0)
    trained = sorted(p.name for p in (yolo / "images" / "train").iterdir())
    replayed = sorted(p.name for p in (tmp_path / "view" / "images" / "train").iterdir() if "_user_" not in p.name)
    assert counts == {"user_pictures": 2, "replayed": len(replayed)} and not unreadable
    assert {n[:4] for n in replayed} == {n[:4] for n in trained} and len(replayed) < len(trained) / 2
    for split in ("validation", "test"):  # measured on the dataset's own pictures, before and after
        assert sorted(os.listdir(tmp_path / "view" / "images" / split)) == sorted(os.listdir(yolo / "images" / split))

    quick = ("data=tiny", "train.epochs=1", "train.batch=8", "train.plots=false")
    first = train(make_cfg(*quick), yolo, tmp_path / "first")
    best, counts, _ = adapt(make_cfg(*quick, "adapt.train.epochs=1"), first, yolo, pictures, tmp_path / "adapted")
    names = load_model(best).names
    assert sorted(names.values()) == ["0001", "0002", "0003", "0004", "0007"]  # a species it lacked joins the head
    adapted = best.read_bytes()
    again, _, _ = adapt(make_cfg(*quick, "adapt.train.epochs=1"), first, yolo, pictures, tmp_path / "adapted")
    assert again.read_bytes() == adapted and not (tmp_path / "adapted.data").exists()  # byte-stable, scratch gone
