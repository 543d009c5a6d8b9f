"""Distillation: the student's loss beside the teacher's scores, and a real training that uses them."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pokedex.core.errors import PokedexError
from pokedex.train.distill import TeacherLoss, distill, load_teacher, student_cfg
from pokedex.train.train import train

from .conftest import make_cfg


class Fixed(torch.nn.Module):
    """A teacher that answers given logits, as a classifier in eval mode does: (probabilities, logits)."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, _x):
        return self.logits.softmax(1), self.logits


def test_the_loss_is_the_labels_and_the_teachers_scores():
    torch.manual_seed(0)
    student, teacher = torch.randn(4, 5), torch.randn(4, 5)
    batch = {"img": torch.zeros(4, 3, 8, 8), "cls": torch.tensor([0, 1, 2, 3])}
    hard = F.cross_entropy(student, batch["cls"])
    assert torch.isclose(TeacherLoss(Fixed(teacher), 4.0, 0.0)(student, batch)[0], hard)
    # a student that answers as its teacher has nothing to learn from it: only the labels' share is left
    assert torch.isclose(TeacherLoss(Fixed(student), 4.0, 0.7)(student, batch)[0], 0.3 * hard)
    t = 2.0
    kl = (F.softmax(teacher / t, 1) * (F.log_softmax(teacher / t, 1) - F.log_softmax(student / t, 1))).sum(1).mean()
    loss, items = TeacherLoss(Fixed(teacher), t, 0.5)(student, batch)
    assert torch.isclose(loss, 0.5 * hard + 0.5 * t * t * kl) and items == {"loss": loss.detach()}


def test_distill_params_are_checked():
    with pytest.raises(PokedexError, match=r"distill.soft=1.5 is invalid"):
        student_cfg(make_cfg("distill.soft=1.5"))
    with pytest.raises(PokedexError, match=r"distill.temperature=0 is invalid"):
        student_cfg(make_cfg("distill.temperature=0"))
    cfg = student_cfg(make_cfg("distill.train.lr0=0.004"))  # the teacher's recipe under the student's own keys
    scratch = make_cfg("model=k210n-cls", "train=scratch")
    assert cfg.model == scratch.model and cfg.train.lr0 == 0.004 and cfg.train.epochs == scratch.train.epochs == 23
    assert cfg.train.batch == make_cfg().train.batch


def test_a_missing_teacher_is_named_before_anything_is_written(tmp_path, tiny_dataset):
    with pytest.raises(PokedexError, match=r"the teacher .*nope.pt is missing; train it first"):
        distill(make_cfg("data=tiny"), tmp_path / "nope.pt", tiny_dataset["yolo"], tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_the_student_learns_from_the_teacher(tmp_path, tiny_dataset):
    """A tiny teacher, then the same student trained twice from the same seed: with its scores (soft=0.9) and
    without (soft=0): the training losses differ from the first batch on, and the student's checkpoint holds no
    teacher."""
    quick = ["data=tiny", "train.epochs=1", "train.batch=8", "train.plots=false"]
    yolo = tiny_dataset["yolo"]
    teacher = train(make_cfg(*quick, "model=lite0", "model.freeze=4"), yolo, tmp_path / "teacher")
    losses = {}
    for soft in (0.0, 0.9):
        best = distill(make_cfg(*quick, "model=lite0", f"distill.soft={soft}"), teacher, yolo, tmp_path / f"s{soft}")
        losses[soft] = (tmp_path / f"s{soft}" / "results.csv").read_text().splitlines()[1].split(",")[1]  # train/loss
        student = torch.load(best, map_location="cpu", weights_only=False)["model"]
        assert type(student.model[0]).__name__ != "PretrainedBackbone"  # the K210's network, not the teacher's
        assert not any(type(m).__name__ == "PretrainedBackbone" for m in student.modules())
    assert losses[0.0] != losses[0.9]
    with pytest.raises(PokedexError, match=r"answers 4 classes that are not the dataset's 3 in the same order"):
        load_teacher(teacher, {0: "0001", 1: "0002", 2: "0003"})
