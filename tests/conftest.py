"""Shared fixtures: configs composed from conf/ and a tiny synthetic dataset built through the real stages."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from pokedex.data.ingest import ingest
from pokedex.data.preprocess import preprocess
from pokedex.data.yolo_format import write_yolo_dataset
from pokedex.deploy.k210 import nncase_python
from pokedex.errors import PokedexError

ROOT = Path(__file__).resolve().parent.parent


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
               min_size=cfg.data.min_image_size, max_pixels=cfg.data.max_pixels)
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
