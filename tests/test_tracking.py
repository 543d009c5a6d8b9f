"""MLflow tracking against a real SQLite store: one run per experiment, and never a reason for a stage to fail."""

from __future__ import annotations

import json
import logging

import pytest
from mlflow import MlflowClient

from pokedex.core import mlflow_store, tracking
from pokedex.core.timings import Timings
from pokedex.evaluate.evaluate import evaluate
from pokedex.train.train import train

from .conftest import make_cfg


@pytest.fixture
def store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("DVC_EXP_NAME", "tiny-exp")
    monkeypatch.setattr(tracking, "_warned", False)
    return uri


def test_config_and_reports_flatten_into_params_and_metrics():
    cfg = make_cfg("data=tiny")
    params = tracking.flatten(cfg)
    assert params["train.lr0"] == str(cfg.train.lr0) and params["data.split.seed"] == "0"
    assert params["model.weights"] == "None" and all(isinstance(v, str) for v in params.values())
    report = {"top1": 0.5, "fits_k210": True, "memory_bytes": {"total": 10}, "name": "x", "bad": float("nan")}
    assert tracking.numbers(report, "k/") == {"k/top1": 0.5, "k/fits_k210": 1.0, "k/memory_bytes/total": 10.0}


def test_artifacts_of_a_sqlite_store_go_beside_it(tmp_path):
    assert mlflow_store.artifact_location(f"sqlite:///{tmp_path}/m.db") == (tmp_path / "mlartifacts").as_uri()
    assert mlflow_store.artifact_location("http://mlflow.team:5000") is None


def test_unavailable_store_warns_once_and_the_stage_goes_on(monkeypatch, caplog, tmp_path):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://nowhere")
    monkeypatch.setattr(tracking, "_warned", False)
    (tmp_path / "w.pt").write_bytes(b"weights")
    with caplog.at_level(logging.WARNING, logger="pokedex.tracking"):
        tracking.record("evaluate", make_cfg("data=tiny"), tmp_path / "w.pt", {"top1": 1.0}, [tmp_path / "w.pt"])
        with tracking.training_run(make_cfg("data=tiny", f"paths.timings={tmp_path}"), Timings()) as run:
            run.log_metrics({"a": 1.0})
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "MLflow tracking is off" in warnings[0].getMessage()


def test_credentials_in_a_store_uri_stay_out_of_the_warning(monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nosuchscheme://alice:s3cret@host/db")
    monkeypatch.setattr(tracking, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="pokedex.tracking"):
        tracking.open_run("train", make_cfg("data=tiny"))
    assert "MLflow tracking is off" in caplog.text and "s3cret" not in caplog.text


def test_an_interrupt_a_library_swallowed_still_ends_the_training_run_killed(store, tmp_path, monkeypatch):
    from pokedex.core import process

    monkeypatch.setattr(process, "_stop_requested", [])
    cfg = make_cfg("data=tiny", f"paths.timings={tmp_path}")
    with pytest.raises(process.Stopped, match="Ctrl-C"):
        with tracking.training_run(cfg, Timings()):
            process._stop_requested.append("Ctrl-C")  # as the signal handler does before a bare except eats it
    with tracking.training_run(cfg, Timings()):
        process._stop_requested.clear()
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("pokedex").experiment_id])
    assert sorted(r.info.status for r in runs) == ["FINISHED", "KILLED"]  # the plain run after it is not


def test_tracking_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("POKEDEX_TRACKING", "off")
    assert tracking.open_run("train", make_cfg("data=tiny")).client is None


@pytest.mark.slow
def test_train_and_evaluate_log_into_one_run_named_after_the_experiment(store, tmp_path, tiny_dataset):
    cfg = make_cfg("debug=quick", "model=k210n-cls", "train.epochs=2", f"paths.timings={tmp_path / 'timings'}")
    timings = Timings()
    with tracking.training_run(cfg, timings) as training:  # as stages/train.py runs it
        best = train(cfg, tiny_dataset["yolo"], tmp_path / "train", training, timings)
        tracking.record_training(training, best, [best, tmp_path / "train" / "results.csv"])
    metrics = evaluate(best, tiny_dataset["yolo"], cfg.data.image_size, cfg.evaluate, tmp_path / "eval")
    tracking.record("evaluate", cfg, best, metrics, [tmp_path / "eval" / "confusion_matrix.png"],
                    Timings(latency_ms=1.5))

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("pokedex")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "tiny-exp" and run.info.status == "FINISHED"
    assert run.data.params["train.epochs"] == "2" and run.data.params["model.arch"] == "k210n-cls.yaml"
    history = client.get_metric_history(run.info.run_id, "metrics/accuracy_top1")
    assert [m.step for m in history] == [1, 2]
    assert {"train/loss", "lr/pg0", "best/metrics/accuracy_top1"} <= set(run.data.metrics)
    assert run.data.metrics["evaluate/top1"] == metrics["top1"]
    # timings: in the run and in paths.timings, never in the metrics the stages write
    assert run.data.metrics["train_s"] == timings["train_s"] > 0 and run.data.metrics["evaluate/latency_ms"] == 1.5
    assert json.loads((tmp_path / "timings" / "train.json").read_text()) == timings
    assert json.loads((tmp_path / "timings" / "evaluate.json").read_text()) == {"latency_ms": 1.5}
    files = {a.path for folder in ("train", "evaluate") for a in client.list_artifacts(run.info.run_id, folder)}
    assert files == {"train/best.pt", "train/results.csv", "evaluate/confusion_matrix.png"}
    assert experiment.artifact_location == (tmp_path / "mlartifacts").as_uri()

    # An experiment that changes only evaluate: reuses the weights, gets its own run pointing at the first.
    changed = make_cfg("debug=quick", "train.epochs=2", "evaluate.latency_images=1")
    tracking.record("evaluate", changed, best, metrics, [])
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    assert len(runs) == 2 and runs[0].data.tags["pokedex.trained_in"] == run.info.run_id
    assert runs[0].data.params["evaluate.latency_images"] == "1"


def test_a_copied_checkouts_store_uploads_into_the_copy_not_the_original(tmp_path, monkeypatch):
    """MLflow keeps absolute artifact paths in mlflow.db; a store copied with its checkout is re-pointed."""
    import os
    import shutil
    import subprocess
    import sys

    original, copy = tmp_path / "original", tmp_path / "copy"
    original.mkdir()
    (original / "weights.pt").write_bytes(b"w")
    made = subprocess.run([sys.executable, "-c", "from pokedex.core import mlflow_store\n"  # the original checkout's stage
                           "client, experiment = mlflow_store.client()\n"
                           "run_id = client.create_run(experiment).info.run_id\n"
                           "client.log_artifact(run_id, 'weights.pt', 'train')\n"
                           "print(run_id)"], cwd=original, capture_output=True, text=True, check=True,
                          env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{original / 'mlflow.db'}"})
    run_id = made.stdout.split()[-1]
    shutil.copytree(original, copy)

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{copy / 'mlflow.db'}")
    client, experiment = mlflow_store.client()
    assert client.get_experiment(experiment).artifact_location == (copy / "mlartifacts").as_uri()
    assert client.get_run(run_id).info.artifact_uri.startswith((copy / "mlartifacts").as_uri() + "/")
    (copy / "eval.json").write_text("{}")
    client.log_artifact(run_id, str(copy / "eval.json"), "evaluate")
    assert list((copy / "mlartifacts").rglob("evaluate/eval.json"))
    assert not list((original / "mlartifacts").rglob("evaluate"))
