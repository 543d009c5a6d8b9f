"""Distill: the network the K210 can hold learns from a bigger classifier (the teacher, e.g. model=lite0): on each
training batch, as augmented for it, the teacher's scores stand beside the labels.

The student's loss is (1 - soft) x cross-entropy with the labels + soft x T² x KL(teacher || student), both score
lists softened by the temperature T first (Hinton et al., "Distilling the knowledge in a neural network"): the
teacher says which other species a picture looks like, which a label alone does not. Everything else is the train
stage's training (pokedex.train.train.train): the same dataset, styles, scenes, repeats and Ultralytics' trainer,
with `distill.model` as the model and `distill.train` over the train: group.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from pokedex.core.checks import FRACTION, Number, check_value
from pokedex.core.errors import PokedexError
from pokedex.model.load import load_model
from pokedex.train.train import species_in, train

log = logging.getLogger(__name__)

PARAM_RULES = {
    "distill.temperature": Number(float, 0, above=True),
    "distill.soft": FRACTION,
}


class TeacherLoss:
    """Ultralytics classification criterion with the teacher's softened scores beside the labels."""

    def __init__(self, teacher: torch.nn.Module, temperature: float, soft: float):
        self.teacher, self.temperature, self.soft = teacher, temperature, soft

    def __call__(self, preds, batch: dict) -> tuple[torch.Tensor, dict]:
        logits = preds[1] if isinstance(preds, (list, tuple)) else preds
        hard = F.cross_entropy(logits, batch["cls"], reduction="mean")
        with torch.no_grad():
            taught = self.teacher(batch["img"])
        taught = taught[1] if isinstance(taught, (list, tuple)) else taught  # eval mode: (probabilities, logits)
        t = self.temperature
        matched = F.kl_div(F.log_softmax(logits / t, dim=1), F.log_softmax(taught / t, dim=1), log_target=True,
                           reduction="batchmean") * t * t
        loss = (1 - self.soft) * hard + self.soft * matched
        return loss, {"loss": loss.detach()}


def load_teacher(weights: Path, classes: dict[int, str]) -> torch.nn.Module:
    """The teacher's network, in eval mode and float32, checked to answer the student's classes in its order."""
    teacher = load_model(weights)
    if teacher.task != "classify":
        raise PokedexError(f"the teacher {weights} is a {teacher.task} model; distillation needs a classifier.")
    names = {int(i): str(n) for i, n in teacher.model.names.items()}
    if names != {int(i): str(n) for i, n in classes.items()}:
        raise PokedexError(f"the teacher {weights} answers {len(names)} classes that are not the dataset's "
                           f"{len(classes)} in the same order; train it on this dataset (dvc repro train).")
    net = teacher.model.float().eval()
    for p in net.parameters():
        p.requires_grad = False
    return net


def teach(teacher: torch.nn.Module, temperature: float, soft: float):
    """Ultralytics callback (on_train_start): the model learns with TeacherLoss from `teacher`."""
    def callback(trainer) -> None:
        trainer.model.criterion = TeacherLoss(teacher.to(trainer.device), temperature, soft)
    return callback


def student_cfg(cfg: DictConfig) -> DictConfig:
    """cfg as pokedex.train.train reads it for the student: distill.model as the model, distill.train over train:."""
    d = cfg.distill
    check_value(PARAM_RULES, "distill.temperature", d.temperature)
    check_value(PARAM_RULES, "distill.soft", d.soft)
    student = OmegaConf.create(OmegaConf.to_container(cfg))
    student.model = d.model
    return OmegaConf.merge(student, {"train": d.get("train") or {}})


def distill(cfg: DictConfig, teacher: Path, dataset_dir: Path, run_dir: Path, run=None, timings=None) -> Path:
    """Train distill.model on dataset_dir with `teacher`'s scores beside the labels; returns the student's best
    weights (run_dir/weights/best.pt)."""
    if not teacher.is_file():  # before the run directory is touched
        raise PokedexError(f"the teacher {teacher} is missing; train it first (dvc repro train).")
    student = student_cfg(cfg)
    if student.model.task != "classify":
        raise PokedexError(f"distill.model.task={student.model.task!r}: the student must be a classifier.")
    # loaded and checked against the dataset's classes before train() clears the run directory
    network = load_teacher(teacher, dict(enumerate(sorted(species_in(dataset_dir, "train")))))
    log.info("distill: the student learns from %s (temperature %.1f, %.0f%% of the loss its scores)", teacher,
             float(cfg.distill.temperature), 100 * float(cfg.distill.soft))
    callback = teach(network, float(cfg.distill.temperature), float(cfg.distill.soft))
    return train(student, dataset_dir, run_dir, run=run, timings=timings, callbacks={"on_train_start": [callback]})
