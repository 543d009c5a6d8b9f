"""`pokedex report`'s page on its own (the DVC-backed path runs in test_pipeline's queued sweep)."""

from __future__ import annotations

import base64

from pokedex.report import Experiment, parse_results, render


def test_page_is_self_contained_and_shows_metrics_params_and_curves():
    curves = parse_results("epoch,train/loss,metrics/accuracy_top1,val/loss\n1,2.0,0.5,1.9\n2,1.0,0.8,1.2\n")
    assert curves["metrics/accuracy_top1"] == [0.5, 0.8]
    exps = [Experiment("fast-lr", "abc1234", {"top1": 0.81, "fits_k210": "True", "kmodel_bytes": 448688.0,
                                              "train.lr0": 0.01}, curves),
            Experiment("slow-lr", "def5678", {"top1": 0.75, "fits_k210": "False", "kmodel_bytes": None,
                                              "train.lr0": 0.001}, curves)]
    page = render(exps, ["train.lr0"])
    assert "<script" not in page and "http" not in page and "data:image/png;base64," in page
    assert "<th>train.lr0</th>" in page and "<td>0.01</td>" in page and "<td>0.001</td>" in page
    assert "<td>yes</td>" in page and "<td>no</td>" in page and "<td>0.4487</td>" in page and "<td>–</td>" in page


def test_confusions_show_the_most_confused_pairs_and_worst_classes_with_a_picture_of_each(tmp_path):
    from PIL import Image

    from pokedex.report import confused_pairs, thumbnails, worst_classes

    a, b, c = "0001 Bulbasaur", "0002 Ivysaur", "0003 Venusaur"
    predictions = [(a, a), (a, b), (a, b), (a, c), (b, b), (b, b), (b, a), (c, c)]
    assert confused_pairs(predictions) == [(a, b, 2, 4), (a, c, 1, 4), (b, a, 1, 3)]
    assert confused_pairs(predictions, top=1) == [(a, b, 2, 4)]
    assert worst_classes(predictions) == [(a, 1, 4), (b, 2, 3), (c, 1, 1)]

    images = tmp_path / "images"
    for split, name, colour in (("test", "0001_003.jpg", (10, 200, 10)), ("train", "0001_001.jpg", (200, 10, 10)),
                                ("train", "0002_001.jpg", (200, 10, 10))):
        (images / split).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), colour).save(images / split / name)
    thumbs = thumbnails(images)
    assert sorted(thumbs) == ["0001", "0002"] and all(t.startswith("data:image/jpeg;base64,") for t in thumbs.values())
    assert base64.b64decode(thumbs["0001"].split(",")[1]) == (images / "test" / "0001_003.jpg").read_bytes()

    exps = [Experiment("exp", "abc1234", {"top1": 0.5}, predictions=predictions), Experiment("empty", None, {})]
    page = render(exps, [], thumbs, "reports/eval/confusion_matrix.png")
    assert page.count("<img class='thumb'") == 5 + 2  # both sides of 3 pairs and 3 worst classes; 0003 has none
    assert "2 of 4" in page and "1 of 4" in page and "No predictions found." in page
    assert "<code>reports/eval/confusion_matrix.png</code>" in page
    assert "<script" not in page and "http" not in page


def test_clip_section_lists_the_species_the_hybrid_changes_most_or_says_none_ran():
    from pokedex.report import clip_changes

    def row(name, classifier, hybrid):
        return {"class": name, "images": "4", "classifier_top1": classifier, "zero_shot_top1": "0.25",
                "probe_top1": "0.5", "hybrid_top1": hybrid}

    rows = [row("0001 Bulbasaur", "0.5", "0.75"), row("0002 Ivysaur", "1.0", "0.5"), row("0003 Venusaur", "0.5", "0.5"),
            row("0004 Charmander", "nan", "nan")]
    assert [r["class"] for r in clip_changes(rows)] == ["0002 Ivysaur", "0001 Bulbasaur"]  # largest change first
    page = render([Experiment("clip", "abc1234", {"top1": 0.5, "hybrid_top1": 0.625}, clip_per_class=rows)], [])
    assert "<th>hybrid top-1</th>" in page and "<td>0.625</td>" in page
    assert "Ivysaur" in page and "Bulbasaur" in page and "Venusaur" not in page and "Charmander" not in page
    assert "No experiment ran with a CLIP model" in render([Experiment("plain", None, {"top1": 0.5})], [])


def test_each_experiments_frames_are_shown_inline():
    picture = b"\x89PNG\r\n\x1a\n frames"
    page = render([Experiment("boxes", "abc1234", {"top1": 0.5}, frames=picture), Experiment("none", None, {"top1": 0.4})], [])
    assert page.count("alt='scene test frames'") == 1 and base64.b64encode(picture).decode() in page
    assert "No frames found" not in page
    assert "No frames found" in render([Experiment("none", None, {"top1": 0.4})], [])


def test_pictures_like_yours_are_scored_whole_and_through_predict_beside_the_test_split(tmp_path):
    """`pokedex report --field DIR`: the workspace model on each folder, whole and as plain predict answers
    (a detector that finds nothing: the whole picture answers, so both agree), shown before the metrics."""
    import pytest

    from pokedex.core.errors import PokedexError
    from pokedex.model.build import build_model
    from pokedex.report import field_figures, field_markdown, field_section

    from .conftest import make_cfg
    from .test_detection import built
    from .test_field import fixture_folder

    build_model(make_cfg("data=tiny").model).save(str(tmp_path / "cls.pt"))
    nowhere = built("k210n-det.yaml", "detect", tmp_path / "nowhere.pt", score_bias=-20.0)
    folder = fixture_folder(tmp_path / "mine")
    ((figures,), (again,)) = field_figures([folder], [(tmp_path / "cls.pt", None)] * 2, nowhere)
    assert again == figures  # two classifiers of one size: one reading of the folder, each scored
    assert figures.folder == str(folder) and figures.whole["images"] == 2 and figures.whole["species"] == 2
    assert figures.predicted["found"] == 0.0
    assert {k: figures.predicted[k] for k in ("top1", "top5")} == {k: figures.whole[k] for k in ("top1", "top5")}
    assert field_figures([folder], [(tmp_path / "cls.pt", None)], None)[0][0].predicted is None

    test = {"top1": 0.75, "top5": 0.9, "test_images": 1541, "classes": 905, "k210_top1": 0.5}
    section = field_section([figures], test)
    assert section.index("test split") < section.index(str(folder)) and "<td>0.75</td>" in section
    assert "<th>K210" not in section  # no K210 network given: no columns for it
    table = field_markdown([figures], test, k210=[figures]).splitlines()  # the K210's network beside: here the same
    assert len(table) == 4 and table[0].endswith("| K210 network: top-1 whole | K210 network: top-1 predict |")
    assert table[2].startswith("| test split") and table[2].endswith("| 0.75 | 0.9 |  |  |  | 0.5 |  |")
    cells = [c.strip("| ") for c in table[3].split(" | ")]
    assert cells[0] == str(folder) and cells[3] == cells[8] and cells[5] == cells[9]
    page = render([Experiment("workspace", None, {"top1": 0.75})], [], field=section)
    assert page.index("Pictures like yours") < page.index("<h2>Metrics</h2>")
    with pytest.raises(PokedexError, match=r"--field .*nowhere is not a folder"):
        field_figures([tmp_path / "nowhere"], [(tmp_path / "cls.pt", None)], None)
