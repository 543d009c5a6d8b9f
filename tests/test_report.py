"""`pokedex report`'s page on its own (the DVC-backed path runs in test_pipeline's queued sweep)."""

from __future__ import annotations

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
