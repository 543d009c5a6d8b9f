"""Which MLflow store and experiment the stages log to.

`MLFLOW_TRACKING_URI` when set (a team's tracking server), else `sqlite:///<project>/mlflow.db` with artifacts
in `<project>/mlartifacts`; `<project>` is `DVC_ROOT`, which DVC points at the main checkout even for queued
experiments that run in temporary copies, so they all land in the same store. One experiment per project
(`pokedex`, or `MLFLOW_EXPERIMENT_NAME`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pokedex import project_dir

EXPERIMENT = "pokedex"

log = logging.getLogger(__name__)


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_dir() / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """Artifacts of a SQLite store go beside the database file (MLflow would put them under ./mlruns of
    whichever directory the stage runs in: a temporary copy for queued experiments). A server decides itself."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()
    return None


def client():
    """The MLflow client on our store and the project's experiment id (created on first use)."""
    for name in ("alembic", "mlflow.store.db.utils"):  # the SQLite store's schema set-up, at INFO level
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow import MlflowClient

    uri = tracking_uri()
    client = MlflowClient(tracking_uri=uri)
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        follow_moved_store(uri, experiment.experiment_id, experiment.artifact_location)
        return client, experiment.experiment_id
    return client, client.create_experiment(name, artifact_location=artifact_location(uri))


def follow_moved_store(uri: str, experiment_id: str, stored: str) -> None:
    """A SQLite store copied or moved with its checkout still names the old checkout's mlartifacts/ (MLflow
    stores absolute paths), so artifacts would be uploaded there: point the experiment and its runs here.

    MLflow has no API to change an experiment's artifact location; these two columns of its schema are it.
    """
    wanted = artifact_location(uri)
    if wanted is None or stored == wanted or not stored.startswith("file://"):
        return
    import sqlite3

    with sqlite3.connect(uri.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = ?", (wanted, experiment_id))
        db.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) WHERE experiment_id = ? AND "
                   "substr(artifact_uri, 1, ?) = ?", (wanted, len(stored) + 1, experiment_id, len(stored), stored))
    log.info("MLflow store %s was made in another checkout; its artifacts now go to %s", uri, wanted)
