"""Train: an Ultralytics model built from its bundled YAML (nothing is downloaded), either task.

`task=classify` trains on a class-folder view of the YOLO dataset; `task=detect` on its data.yaml with one
full-image box per image (the original plan's detector). Both views are links in a temporary folder. Every key under `train:` is passed to
Ultralytics' `model.train`, so any of its arguments can be set: `train.lr0=0.01`, `+train.dropout=0.1`.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from pokedex.core import tracking
from pokedex.core.checks import COUNT, Number
from pokedex.core.errors import PokedexError
from pokedex.core.parallel import worker_count
from pokedex.core.timings import Timings
from pokedex.model.build import build_model
from pokedex.model.load import load_model
from pokedex.model.pretrained import PretrainedBackbone
from pokedex.model.ultra import ultralytics_data, ultralytics_offline
from pokedex.train.augment import Prefetched, scene_trainer
from pokedex.train.stable import make_byte_stable

log = logging.getLogger(__name__)

PARAM_RULES = {  # keys whose values no library checks before work starts (or only after outputs were deleted)
    "seed": Number(int, 0),
    "train.epochs": COUNT,
    "train.batch": COUNT,  # Ultralytics reads 0 and -1 as "pick one" and trains at 16 while we'd record 0
    "train.nbs": COUNT,
    "train.lr0": Number(float, 0, above=True),
    "train.lrf": Number(float, 0, above=True),
    "train.patience": COUNT,
    "train.workers": Number(int, 0),
    "train.warmup_epochs": Number(float, 0),
    "train.weight_decay": Number(float, 0),
}

# Set from data/model params, not from train:, so one value drives every stage.
RESERVED = {"data", "imgsz", "model", "task", "project", "name", "exist_ok", "seed", "pretrained", "freeze"}
CHANGEABLE_ON_RESUME = {"device", "workers", "cache", "plots"}  # where and how fast, not what is learnt
# train.resume=true continues run_dir's interrupted training (see resumable) instead of starting afresh


def fit_head(model, classes: list[str]) -> int:
    """A classifier loaded from model.weights made to answer `classes` (the training folders' names, in
    Ultralytics' sorted order): the last layer's rows of the classes the checkpoint knows are kept, a class it
    does not know starts from zero. Without this, Ultralytics rebuilds the head for the dataset's class count
    and keeps none of it when the counts differ. Returns how many classes kept their rows."""
    import torch
    from torch import nn

    head = model.model.model[-1]
    known = {str(name): i for i, name in model.model.names.items()}
    if [known.get(c) for c in classes] == list(range(len(known))):
        return len(classes)  # the same classes in the same order
    old = head.linear
    new = nn.Linear(old.in_features, len(classes))
    kept = [(row, known[c]) for row, c in enumerate(classes) if c in known]
    with torch.no_grad():
        new.weight.zero_()  # a class it does not know starts at 0 (not at random: the same bytes every run)
        new.bias.zero_()
        for row, before in kept:
            new.weight[row], new.bias[row] = old.weight[before], old.bias[before]
    head.linear = new
    model.model.names = dict(enumerate(classes))
    model.model.yaml["nc"] = len(classes)
    return len(kept)


def species_in(dataset_dir: Path, split: str) -> set[str]:
    """The species (class folders, `NNNN`) with pictures in a split of the YOLO dataset; sorted, the training split's
    are the classes a classifier trained on it answers, in Ultralytics' order."""
    return {p.name[:4] for p in (dataset_dir / "images" / split).glob("*.jpg")}


def frozen_layers(model, model_cfg: DictConfig) -> list[str] | None:
    """`model.freeze`: the layers of a pretrained network that keep their ImageNet weights, named as Ultralytics'
    `freeze` argument takes them; None for a network learnt from scratch."""
    backbone = model.model.model[0]
    frozen = model_cfg.get("freeze")
    if not isinstance(backbone, PretrainedBackbone):
        if frozen:
            raise PokedexError(f"model.freeze={frozen} applies to a pretrained network (e.g. model=lite0), not to "
                               f"model.arch={model_cfg.arch}; remove model.freeze.")
        return None
    if not isinstance(frozen, int) or isinstance(frozen, bool):
        raise PokedexError(f"model.freeze={frozen!r} must be a whole number of blocks (0: every block trains).")
    return backbone.layer_names(frozen)


def train_args(train_cfg: DictConfig) -> dict:
    """The train: group as Ultralytics keyword arguments, checked against its known arguments."""
    ultralytics_offline()
    from ultralytics.cfg import DEFAULT_CFG_DICT, check_cfg

    args = OmegaConf.to_container(train_cfg, resolve=True)
    for key in args:
        if key in RESERVED:
            raise PokedexError(f"train.{key} is set by the pipeline (data.image_size, model.*, seed); remove it from train:.")
        if key not in DEFAULT_CFG_DICT:
            raise PokedexError(f"train.{key} is not an Ultralytics train argument; see ultralytics/cfg/default.yaml "
                               "for the valid names.")
    try:  # Ultralytics' own type and range checks, before the run directory is cleared
        check_cfg(dict(args))
    except (TypeError, ValueError) as exc:
        raise PokedexError(str(exc).replace("'", "'train.", 1)) from None  # "'train.dropout=x' is of invalid type …"
    return args


def check_image_size(size: int) -> None:
    """Ultralytics silently rounds the input size up to a multiple of the model's stride (32)."""
    if size % 32:
        raise PokedexError(f"data.image_size={size} is not a multiple of 32, so Ultralytics would train at "
                           f"{-(-size // 32) * 32}; set data.image_size to a multiple of 32 (e.g. 64, 96, 128).")


def mlflow_name(key: str) -> str:
    """A results.csv column as an MLflow metric name, which may not hold parentheses: metrics/mAP50(B) ->
    metrics/mAP50B (as Ultralytics' own MLflow callback does)."""
    return key.replace("(", "").replace(")", "")


class EpochLogger:
    """Ultralytics callback (on_fit_epoch_end): each results.csv row as MLflow metrics at step = epoch.

    Ultralytics calls it once more after the last epoch, for its validation of best.pt: those numbers are
    logged once as `best/...` instead of as an extra epoch.
    """

    def __init__(self, run: tracking.Run):
        self.run, self.training_over = run, False

    def __call__(self, trainer) -> None:
        def log(_client):  # inside run.safely: a tracking error must not stop training
            if self.training_over:
                self.run.log_metrics({f"best/{mlflow_name(k)}": float(v) for k, v in trainer.metrics.items()})
                return
            row = {**trainer.label_loss_items(trainer.tloss, prefix="train"), **trainer.metrics, **trainer.lr}
            self.run.log_metrics({mlflow_name(k): float(v) for k, v in row.items()}, step=trainer.epoch + 1)
        self.run.safely("logging epoch metrics", log)
        self.training_over = bool(trainer.stop)


def use_every_core(trainer) -> None:
    """Ultralytics callback (on_train_start): on a CPU, train on every core.

    Ultralytics leaves one core for dataloader workers (torch threads = cores - 1), then turns those workers
    off on a CPU, so a 2-core machine trained on one core while the other idled. Where a thread draws the
    batches (pokedex.train.augment.Prefetched), it keeps that one core.
    """
    if trainer.device.type == "cpu":
        drawing = isinstance(trainer.train_loader, Prefetched)
        torch.set_num_threads(max(1, worker_count(None) - drawing))


@contextmanager
def signals_held():
    """Ctrl-C and SIGTERM wait until the block ends, then act as usual: a checkpoint cut off half-written cannot
    be resumed from (Ultralytics truncates last.pt before it writes it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: held.append(signum)) for sig in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(sig) is not signal.SIG_IGN}  # a background job keeps ignoring Ctrl-C
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if held:
            signal.raise_signal(held[0])


def whole_checkpoints(trainer) -> None:
    """Ultralytics callback (on_train_start): every checkpoint is written whole, whatever signal comes meanwhile."""
    save_model = trainer.save_model

    def save_whole():
        with signals_held():
            return save_model()
    trainer.save_model = save_whole


def resumable(run_dir: Path, args: dict):
    """`train.resume=true`: the model in run_dir/weights/last.pt of an interrupted training, if that training had
    the same params (Ultralytics resumes with the checkpoint's own arguments, whatever params.yaml says)."""
    last = run_dir / "weights" / "last.pt"
    if not last.is_file():
        raise PokedexError(f"train.resume=true, but {last} does not exist: nothing to resume (`dvc repro` deletes the "
                           "outputs it reruns; resume with `python -m stages.train train.resume=true`), or set "
                           "train.resume=false to start afresh.")
    try:
        model = load_model(last)
    except TypeError as exc:  # Ultralytics' word for an empty, truncated or corrupt checkpoint
        raise PokedexError(f"{last} cannot be resumed from ({str(exc).splitlines()[0].removeprefix('ERROR ❌️ ')}); "
                           "set train.resume=false to start afresh.") from None
    saved = getattr(model, "ckpt", None) or {}
    if not saved.get("optimizer"):
        raise PokedexError(f"{last} is from a training that finished; nothing to resume: set train.resume=false.")
    before = saved.get("train_args", {})
    differs = [f"{key}={before[key]!r} there, {value!r} now" for key, value in args.items()
               if key in before and key not in CHANGEABLE_ON_RESUME and before[key] != value]
    if differs:
        raise PokedexError(f"{last} was trained with other params ({'; '.join(differs)}); resume continues the same "
                           "training only: restore those params, or set train.resume=false to start afresh.")
    # An interruption between an epoch's results.csv row and its last.pt leaves a row that the resumed run
    # writes again: keep the rows up to the checkpoint's epoch (0-based in the checkpoint, 1-based in the csv).
    results = run_dir / "results.csv"
    if results.is_file():
        header, *rows = results.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [row for row in rows if int(float(row.split(",")[0])) <= saved["epoch"] + 1]
        results.write_text("".join([header, *kept]), encoding="utf-8")
    return model


def train(cfg: DictConfig, dataset_dir: Path, run_dir: Path, run: tracking.Run | None = None,
          timings: Timings | None = None, callbacks: dict[str, list] | None = None) -> Path:
    """Train and return the path of the best weights (run_dir/weights/best.pt); each epoch's metrics go to `run`
    (the train stage opens it: tracking.training_run), if given, and the training's seconds to `timings`;
    `callbacks`: more Ultralytics callbacks by event (distillation's teacher: pokedex/train/distill.py). The
    run's folder is byte-stable (pokedex/train/stable.py)."""
    check_image_size(int(cfg.data.image_size))
    args = train_args(cfg.train)
    resume = args.pop("resume", False)
    fixed = {"imgsz": int(cfg.data.image_size), "seed": int(cfg.seed)}
    model = resumable(run_dir, {**args, **fixed}) if resume else build_model(cfg.model)
    frozen = frozen_layers(model, cfg.model)
    if not (dataset_dir / "data.yaml").is_file():
        raise PokedexError(f"{dataset_dir / 'data.yaml'} is missing; run the yolo-format stage first (dvc repro yolo-format).")
    if run_dir.exists() and not resume:  # a clean run directory: Ultralytics would otherwise resume plots and csv rows
        shutil.rmtree(run_dir)
    run_dir = run_dir.resolve()
    trained, validated = (species_in(dataset_dir, s) for s in ("train", "validation"))
    if cfg.model.task == "classify" and len(validated) < len(trained):
        log.info("train: %d of %d species have no validation pictures: they train only (too few groups to test "
                 "them, docs/real-data.md); Ultralytics' 'requires %d classes' error below is expected",
                 len(trained) - len(validated), len(trained), len(trained))
    # scenes (pokedex.train.augment) are a classifier's augmentation; a detector trains on the dataset as it is
    trainer = scene_trainer(cfg.augment) if cfg.model.task == "classify" else None
    if cfg.model.task == "classify" and cfg.model.get("weights") and not resume:
        log.info("train: %d of %d classes keep their rows of model.weights' head", fit_head(model, sorted(trained)),
                 len(trained))
    with ultralytics_data(dataset_dir, cfg.model.task, cfg.augment.get("repeat")) as data:
        model.add_callback("on_fit_epoch_end", EpochLogger(run or tracking.Run()))  # Run(): tracks nothing
        model.add_callback("on_train_start", use_every_core)
        model.add_callback("on_train_start", whole_checkpoints)
        for event, functions in (callbacks or {}).items():
            for function in functions:
                model.add_callback(event, function)
        model.train(
            trainer=trainer,
            data=str(data),
            project=str(run_dir.parent),
            name=run_dir.name,
            exist_ok=True,
            # a pretrained network keeps the weights it was built with (Ultralytics resets them otherwise)
            pretrained=bool(cfg.model.get("weights")) or frozen is not None,
            freeze=frozen,
            resume=str(run_dir / "weights" / "last.pt") if resume else False,
            **fixed,
            **args,
        )
        seconds = make_byte_stable(run_dir, Path(data) if cfg.model.task == "classify" else Path(data).parent,
                                   dataset_dir)
    if timings is not None and seconds is not None:
        timings["train_s"] = seconds
    best = run_dir / "weights" / "best.pt"
    if not best.is_file():
        raise PokedexError(f"training finished without {best}; check the Ultralytics log above.")
    log.info("train: best weights %s", best)
    return best
