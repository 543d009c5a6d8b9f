"""The real `dvc repro` on a tiny config, in a throwaway git repository holding a copy of the project."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pokedex.config import compose_params
from pokedex.deploy.k210 import nncase_python

from .conftest import ROOT

PROJECT_FILES = ["dvc.yaml", "conf", "stages", "pokedex", "pyproject.toml", ".gitignore"]
TINY = ["debug=quick"]
STAGES = ["ingest", "preprocess", "yolo-format", "train", "evaluate", "export-onnx", "compile-kmodel"]


def _env(home: Path) -> dict:
    """The venv first on PATH (DVC runs `python`), and an empty HOME to prove nothing is written there."""
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", HOME=str(home),
                POKEDEX_NNCASE_PYTHON=str(nncase_python()))  # the project's nncase venv, not the copy's


def _run(args: list[str], cwd: Path) -> str:
    env = _env(cwd.parent / "home")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("project") / "repo"
    repo.mkdir()
    (repo.parent / "home").mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        (shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy2(src, repo / name))
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["git", "init", "-q"], repo)
    (repo / ".dvc").mkdir()  # as a clone has it: the committed config (analytics off, Hydra on)
    for name in ("config", ".gitignore"):
        shutil.copy2(ROOT / ".dvc" / name, repo / ".dvc" / name)
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], repo)
    return repo


@pytest.mark.slow
def test_dvc_repro_builds_everything_then_nothing_then_only_dependents(repo):
    first = _run(["dvc", "repro"], repo)
    assert _ran(first) == STAGES

    yolo = repo / "data" / "yolo_dataset"
    for split in ("train", "validation", "test"):
        assert len(list((yolo / "images" / split).glob("*.jpg"))) == len(list((yolo / "labels" / split).glob("*.txt"))) > 0
    assert (yolo / "classes.txt").read_text().count("\n") == 4
    assert (repo / "models" / "train" / "weights" / "best.pt").is_file()
    assert (repo / "models" / "model.onnx").is_file()
    metrics = json.loads((repo / "reports" / "eval" / "metrics.json").read_text())
    assert set(metrics) >= {"top1", "top5", "latency_ms", "per_class_top1_min"}
    parity = json.loads((repo / "reports" / "onnx_parity.json").read_text())
    assert parity["top1_agreement"] == 1.0
    kmodel = json.loads((repo / "reports" / "kmodel.json").read_text())
    assert kmodel["fits_k210"] and kmodel["memory_bytes"]["total"] > 0 and kmodel["eval_images"] == 4
    bundle = repo / "deploy" / "k210"
    assert sorted(p.name for p in bundle.iterdir()) == ["classes.txt", "main.py", "manifest.json", "model.kmodel"]
    assert (bundle / "classes.txt").read_text() == (yolo / "classes.txt").read_text()
    assert not (repo / "outputs").exists() and not (repo / ".hydra").exists() and not list(repo.glob("*.log"))
    assert not any((repo.parent / "home").iterdir()), "the pipeline must not write into the home directory"

    assert _ran(_run(["dvc", "repro"], repo)) == []
    assert "up to date" in _run(["dvc", "status"], repo)

    shown = _run(["dvc", "metrics", "show", "--json"], repo)
    assert "top1" in shown and "max_abs_diff" in shown
    assert "Training curves" in _run(["dvc", "plots", "show", "--json"], repo)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["latency_images"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _ran(_run(["dvc", "repro"], repo)) == ["evaluate"]

    params["data"]["split"]["seed"] = 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _ran(_run(["dvc", "repro"], repo)) == ["yolo-format", "train", "evaluate", "export-onnx", "compile-kmodel"]


@pytest.mark.slow
def test_dvc_exp_run_composes_conf_and_shows_experiments(repo):
    """`dvc exp run -S` composes conf/ with the overrides (DVC's Hydra integration) into params.yaml."""
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline"], repo)
    overrides = [arg for o in TINY + ["evaluate.latency_images=5"] for arg in ("-S", o)]
    out = _run(["dvc", "exp", "run", "-n", "latency5", *overrides], repo)
    assert _ran(out) == ["evaluate"]
    assert yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["latency_images"] == 5
    table = _run(["dvc", "exp", "show", "--md", "--no-pager"], repo)
    assert "latency5" in table and "top1" in table


@pytest.mark.slow
def test_stage_cli_overrides_and_user_errors(repo):
    """Ad-hoc Hydra overrides reach the stage; a user mistake is one sentence, exit code 2, no traceback."""
    env = _env(repo.parent / "home")
    bad = subprocess.run([sys.executable, "-m", "stages.ingest", "data.source=nowhere"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    out = bad.stdout + bad.stderr
    assert "data.source='nowhere' is not supported" in out and "Traceback" not in out
    bad = subprocess.run([sys.executable, "-m", "stages.train", "+train.bogus=1"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "train.bogus is not an Ultralytics train argument" in bad.stdout + bad.stderr
    # the script path works as well as `-m`, and an override reaches the stage without touching params.yaml
    params_before = (repo / "params.yaml").read_text()
    bad = subprocess.run([sys.executable, "stages/yolo_format.py", "data.split.train=0.5"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "data.split fractions" in bad.stdout + bad.stderr
    assert (repo / "params.yaml").read_text() == params_before


@pytest.mark.slow
def test_push_then_a_fresh_clone_pulls_everything_and_reruns_nothing(repo):
    """The default remote (a folder beside the repository) round trip: push, clone, pull, nothing to redo."""
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "results"], repo)
    _run(["dvc", "push"], repo)
    assert (repo.parent / "pokedex-dvc-storage" / "files" / "md5").is_dir()

    clone = repo.parent / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], repo.parent)
    assert not (clone / "deploy" / "k210").exists()
    _run(["dvc", "pull"], clone)
    for path in ("deploy/k210/model.kmodel", "models/model.onnx", "models/train/weights/best.pt",
                 "data/yolo_dataset/data.yaml"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    assert "up to date" in _run(["dvc", "status"], clone)
    assert _ran(_run(["dvc", "repro"], clone)) == []
