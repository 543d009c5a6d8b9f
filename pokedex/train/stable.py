"""A finished training's folder made byte-stable: the same params, data and code give the same files.

Ultralytics stamps its run with what only this run had: the date, the git commit, each epoch's wall-clock time
(results.csv, the checkpoints' copy of it), and absolute paths (the temporary data view, this checkout) in
args.yaml and in the checkpoints' arguments. Those become: no date, no git block, no time column (the seconds
go to the stage's timings), and paths as params.yaml names them (`data/yolo_dataset`, `models/train`).
The weights themselves are deterministic (Ultralytics seeds everything from `seed` and trains deterministically).
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from pokedex import CHECKOUT

TIME_COLUMN = "time"  # seconds since the start, per epoch row of results.csv


def relative_paths(view: Path, dataset: Path):
    """str -> str: the data view's path as the dataset's, paths inside the repository relative to it."""
    prefixes = [(str(view), dataset.as_posix())] + [(f"{root}/", "") for root in {str(Path.cwd()), str(CHECKOUT)}]

    def stable(value):
        if isinstance(value, str):
            for old, new in prefixes:
                value = value.replace(old, new)
        elif isinstance(value, dict):
            value = {key: stable(v) for key, v in value.items()}
        return value
    return stable


def drop_time_column(results: Path) -> float | None:
    """results.csv without its time column; returns the last epoch's time (the training's seconds)."""
    if not results.is_file():
        return None
    header, *rows = results.read_text(encoding="utf-8").splitlines()
    names = header.split(",")
    if TIME_COLUMN not in names:
        return None
    at = names.index(TIME_COLUMN)
    cut = [",".join(v for i, v in enumerate(line.split(",")) if i != at) for line in [header, *rows]]
    results.write_text("\n".join(cut) + "\n", encoding="utf-8")
    return float(rows[-1].split(",")[at]) if rows else None


def stable_checkpoint(path: Path, stable) -> None:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    ckpt["date"] = None
    ckpt.pop("git", None)
    if isinstance(ckpt.get("train_results"), dict):
        ckpt["train_results"].pop(TIME_COLUMN, None)
    if isinstance(ckpt.get("train_args"), dict):
        ckpt["train_args"] = stable(ckpt["train_args"])
    for key in ("model", "ema"):
        model = ckpt.get(key)
        if model is not None and isinstance(getattr(model, "args", None), dict):
            model.args = stable(model.args)
        if model is not None and isinstance(getattr(model, "yaml", None), dict):
            model.yaml = stable(model.yaml)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    path.write_bytes(buffer.getvalue())


def make_byte_stable(run_dir: Path, view: Path, dataset: Path) -> float | None:
    """Rewrite run_dir's args.yaml, results.csv and checkpoints (see the module's doc); returns the training's
    seconds, for the stage's timings."""
    stable = relative_paths(view, dataset)
    args = run_dir / "args.yaml"
    if args.is_file():
        args.write_text(stable(args.read_text(encoding="utf-8")), encoding="utf-8")
    seconds = drop_time_column(run_dir / "results.csv")
    for checkpoint in sorted((run_dir / "weights").glob("*.pt")):
        stable_checkpoint(checkpoint, stable)
    return seconds
