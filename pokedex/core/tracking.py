"""MLflow tracking: every stage run lands in one MLflow run per DVC experiment, and never fails a stage.

Which store and experiment: pokedex/core/mlflow_store.py. Runs are named after the DVC experiment (`DVC_EXP_NAME`).

Each stage file opens its run: stages/train.py around the training (`training_run`: the flattened params,
per-epoch metrics, then `record_training`: the weights); evaluate, export-onnx and compile-kmodel `record` their
metrics and files into the run that trained the same weights (found by the weights' md5), or into a new run
when the params differ (e.g. an experiment that only changed evaluate:). Library functions track nothing.

`POKEDEX_TRACKING=off` turns tracking off. Any failure (MLflow missing, store unreachable, locked database)
is one warning per stage and the stage goes on: results are DVC's outputs, MLflow is a view of them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pokedex.core import mlflow_store
from pokedex.core.hydra_job import multirun_job
from pokedex.core.process import pid_alive, raise_if_stopped
from pokedex.core.timings import Timings

WEIGHTS_TAG = "pokedex.weights_md5"
PROCESS_TAG = "pokedex.process"  # host:pid of the stage that opened the run
MAX_PARAMS_PER_CALL = 100  # MLflow's log_batch limit

log = logging.getLogger(__name__)
_warned = False


def _warn_once(what: str, exc: BaseException) -> None:
    global _warned
    if not _warned:
        message = re.sub(r"://[^/\s@]+@", "://***@", str(exc))  # a user:token@ in a store URI stays out of logs
        log.warning("MLflow tracking is off for this stage (%s failed: %s: %s); the stage goes on.",
                    what, type(exc).__name__, message)
        _warned = True


def enabled() -> bool:
    return os.environ.get("POKEDEX_TRACKING", "on").lower() not in {"off", "0", "false", "no"}


def run_name() -> str:
    """The DVC experiment's name (`workspace` for a plain `dvc repro`), plus the job number in a multirun."""
    name = os.environ.get("DVC_EXP_NAME") or "workspace"
    job = multirun_job()
    return f"{name}-multirun-{job.job.num}" if job is not None else name


def flatten(cfg: DictConfig | dict, prefix: str = "") -> dict[str, str]:
    """{'train.lr0': '0.002', ...}: the config as MLflow params (strings, as MLflow stores them)."""
    data = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


def numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The numeric (and boolean) leaves of a report, flattened, as MLflow metrics."""
    flat: dict[str, float] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(numbers(value, f"{name}/"))
        elif isinstance(value, (bool, int, float)) and value == value:  # skips NaN
            flat[name] = float(value)
    return flat


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class Run:
    """One MLflow run; after the first failure (which warns once) every call is a no-op."""

    def __init__(self, client=None, run_id: str | None = None):
        self.client, self.run_id = client, run_id

    def safely(self, what: str, fn) -> None:
        """fn(client), unless tracking is off or failed before; a failure warns once and turns it off."""
        if self.client is None:
            return
        try:
            fn(self.client)
        except Exception as exc:  # noqa: BLE001 - tracking must never break the pipeline
            _warn_once(what, exc)
            self.client = None

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS_PER_CALL):
            self.safely("logging params", lambda c: c.log_batch(self.run_id, params=items[i:i + MAX_PARAMS_PER_CALL]))

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        self.safely("logging metrics", lambda c: c.log_batch(self.run_id, metrics=items))

    def log_artifacts(self, paths: Iterable[Path], folder: str | None = None) -> None:
        for path in paths:
            if Path(path).is_file():
                self.safely(f"uploading {path}", lambda c: c.log_artifact(self.run_id, str(path), folder))

    def set_tag(self, key: str, value: str) -> None:
        self.safely("tagging the run", lambda c: c.set_tag(self.run_id, key, value))

    def end(self, status: str = "FINISHED") -> None:
        self.safely("closing the run", lambda c: c.set_terminated(self.run_id, status))


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def end_abandoned_runs(client, experiment_id: str) -> None:
    """Runs still RUNNING whose process on this machine is gone (SIGKILL, power loss) end as KILLED."""
    host = socket.gethostname()
    for run in client.search_runs([experiment_id], "attributes.status = 'RUNNING'", max_results=200):
        owner = run.data.tags.get(PROCESS_TAG, "")
        owner_host, _, pid = owner.rpartition(":")
        if owner_host == host and pid.isdigit() and not pid_alive(int(pid)):
            client.set_terminated(run.info.run_id, "KILLED")


def _new_run(client, experiment_id: str, stage: str, params: dict[str, str], tags: dict[str, str]) -> Run:
    end_abandoned_runs(client, experiment_id)
    tags = {"pokedex.stage": stage, PROCESS_TAG: this_process(), **tags}
    for tag, variable in (("dvc.exp_name", "DVC_EXP_NAME"), ("dvc.baseline_rev", "DVC_EXP_BASELINE_REV")):
        if os.environ.get(variable):
            tags[tag] = os.environ[variable]
    job = multirun_job()
    if job is not None:
        tags["hydra.overrides"] = job.job.override_dirname
    created = client.create_run(experiment_id, run_name=run_name(), tags=tags)
    run = Run(client, created.info.run_id)
    run.log_params(params)
    return run


def open_run(stage: str, cfg: DictConfig, weights: Path | None = None) -> Run:
    """train: a new run. Later stages: the run that trained `weights` with these same params, else a new one."""
    if not enabled():
        return Run()
    try:
        client, experiment_id = mlflow_store.client()
        params = flatten(cfg)
        tags: dict[str, str] = {}
        if weights is None or not weights.is_file():
            return _new_run(client, experiment_id, stage, params, tags)
        md5 = file_md5(weights)
        trained = client.search_runs([experiment_id], f"tags.`{WEIGHTS_TAG}` = '{md5}'",
                                     order_by=["attributes.start_time DESC"], max_results=20)
        for candidate in trained:
            if candidate.data.params == params:
                return Run(client, candidate.info.run_id)
        if trained:
            tags["pokedex.trained_in"] = trained[0].info.run_id
        return _new_run(client, experiment_id, stage, params, {WEIGHTS_TAG: md5, **tags})
    except Exception as exc:  # noqa: BLE001 - tracking must never break the pipeline
        _warn_once("opening a run", exc)
        return Run()


@contextmanager
def training_run(cfg: DictConfig, timings: Timings, stage: str = "train") -> Iterator[Run]:
    """A new run for a training stage, marked KILLED if training is interrupted, FAILED if it raises; at the end
    the stage's timings go to the run and to paths.timings."""
    run = open_run(stage, cfg)
    try:
        yield run
        raise_if_stopped()  # an interrupt a library swallowed mid-training ended it early: still KILLED
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM (pokedex.core.process.Stopped)
        run.end("KILLED")
        raise
    except BaseException:
        run.end("FAILED")
        raise
    run.log_metrics(timings)
    run.end("FINISHED")
    timings.write(Path(cfg.paths.timings), stage)


def record_training(run: Run, best: Path, artifacts: Iterable[Path]) -> None:
    """Tag the training run with its weights' md5 (evaluate, export-onnx and compile-kmodel find the run by it)
    and upload the weights and results."""
    run.set_tag(WEIGHTS_TAG, file_md5(best))
    run.log_artifacts(artifacts, folder="train")


def record(stage: str, cfg: DictConfig, weights: Path, metrics: dict, artifacts: Iterable[Path],
           timings: Timings | None = None) -> None:
    """What evaluate, export-onnx, compile-kmodel (and the others that use trained weights) add to the run of
    those weights: their metrics and timings (which also go to paths.timings, never into the metrics files)."""
    if timings is not None:
        timings.write(Path(cfg.paths.timings), stage)
    run = open_run(stage, cfg, weights)
    run.log_metrics(numbers({**metrics, **(timings or {})}, f"{stage}/"))
    run.log_artifacts(artifacts, folder=stage)
    run.end("FINISHED")
