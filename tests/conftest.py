"""Shared fixtures: configs composed from conf/ and a tiny synthetic dataset built through the real stages."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from pokedex.core.errors import PokedexError
from pokedex.data.ingest import ingest
from pokedex.data.preprocess import preprocess
from pokedex.data.yolo_format import write_yolo_dataset
from pokedex.deploy.k210 import nncase_python

from .project_copy import BUILT_FAILED, BUILT_OK, build_tiny_project

ROOT = Path(__file__).resolve().parent.parent

# xdist runs a test per core, and each trains with torch's OpenMP threads on every core (as the stages do, so
# the numbers are the ones a plain run gets): waiting threads sleep instead of spinning on a busy core, which
# made tiny trainings five times slower. Set before torch loads; the stages the tests start inherit it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _nncase_missing() -> str:
    try:
        nncase_python()
    except PokedexError as exc:
        return str(exc)
    return ""


# K210 compilation needs .venv-nncase (Python 3.10); without it those tests are skipped, saying why.
needs_nncase = pytest.mark.skipif(bool(_nncase_missing()), reason=f"no K210 compiler: {_nncase_missing()}")


def make_cfg(*overrides: str) -> DictConfig:
    """conf/ composed with overrides, as DVC would write it to params.yaml."""
    with initialize_config_dir(str(ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=list(overrides))
    OmegaConf.resolve(cfg)
    return cfg


def build_dataset(cfg: DictConfig, base: Path) -> dict[str, Path]:
    """Run ingest -> preprocess -> yolo-format into base/ and return the paths."""
    paths = {
        "raw": base / "raw" / "all_pokemon",
        "classes": base / "raw" / "classes.csv",
        "processed": base / "processed" / "images",
        "manifest": base / "processed" / "manifest.csv",
        "rejects": base / "processed" / "rejects.csv",
        "yolo": base / "yolo_dataset",
    }
    ingest(cfg.data, paths["raw"], paths["classes"], base / "raw" / "ingest_rejects.csv",
           index=base / "raw" / "files.csv")
    preprocess(paths["raw"], paths["processed"], paths["manifest"], paths["rejects"],
               size=cfg.data.image_size, quality=cfg.data.jpeg_quality, workers=cfg.data.workers,
               min_size=cfg.data.min_image_size, max_pixels=cfg.data.max_pixels, upscale=cfg.data.upscale)
    write_yolo_dataset(paths["manifest"], paths["processed"], paths["classes"], paths["yolo"], cfg.data.split)
    return paths


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory):
    """Stages trained by the tests log to a throwaway MLflow store, not to the checkout's mlflow.db."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        yield uri


@pytest.fixture(scope="session")
def tiny_cfg() -> DictConfig:
    return make_cfg("data=tiny")


@pytest.fixture(scope="session")
def tiny_dataset(tiny_cfg, tmp_path_factory) -> dict[str, Path]:
    return build_dataset(tiny_cfg, tmp_path_factory.mktemp("tiny"))


# The tiny pipeline, built once per session for the pipeline tests (tests/project_copy.py), in the session's
# temporary folder. Its build starts in the background as the session starts, so the xdist workers run other
# tests meanwhile instead of waiting for it.
BUILT = "built"
BUILD_TIMEOUT_S = 1200


def _runs_pipeline_tests(config) -> bool:
    if "not slow" in (config.getoption("markexpr") or "") or config.getoption("keyword"):
        return False
    return any(arg.split("::")[0].rstrip("/").endswith(("tests", "test_pipeline.py")) for arg in config.args)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    config = session.config
    if hasattr(config, "workerinput") or not _runs_pipeline_tests(config) or _nncase_missing():
        return  # an xdist worker, a selection without the pipeline tests, or no K210 compiler to build with
    base = config._tmp_path_factory.getbasetemp() / BUILT
    base.mkdir()
    with open(base / "build.log", "w") as log:
        config.stash[BUILD_PROCESS] = subprocess.Popen([sys.executable, "-m", "tests.project_copy", str(base)],
                                                       cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)


def pytest_sessionfinish(session):
    build = session.config.stash.get(BUILD_PROCESS, None)
    if build is not None and build.poll() is None:  # the session ended before it needed the build
        build.terminate()
        build.wait()


BUILD_PROCESS = pytest.StashKey[subprocess.Popen]()


@pytest.fixture(scope="session")
def built(tmp_path_factory, worker_id) -> Path:
    """The folder holding the tiny project after its first `dvc repro` (tests/project_copy.py): BASE/repo,
    BASE/first.txt (DVC's output), BASE/imports.jsonl (what each stage loaded)."""
    session_temp = tmp_path_factory.getbasetemp()
    base = (session_temp if worker_id == "master" else session_temp.parent) / BUILT
    with FileLock(f"{base}.lock"):
        if not base.exists():  # not started at the session's start (e.g. `pytest -k`): build it here
            base.mkdir()
            build_tiny_project(base)
    deadline = time.monotonic() + BUILD_TIMEOUT_S
    while not (base / BUILT_OK).exists():
        if (base / BUILT_FAILED).exists():
            pytest.fail(f"the tiny pipeline did not build: {(base / BUILT_FAILED).read_text()[-3000:]}")
        assert time.monotonic() < deadline, f"the tiny pipeline was not built after {BUILD_TIMEOUT_S} s"
        time.sleep(0.5)
    return base
