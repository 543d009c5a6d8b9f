"""Open-set scoring shared by enroll, evaluate, predict and the K210 bundle: embeddings, enrolled species
ranked with the trained classes, and "no Pokémon".

The classifier's head pools its hidden layer into a feature vector before the last linear layer; that vector,
less the mean vector of training images (`center`: ReLU features all point one way) and L2-normalised, is the
embedding (with `enroll.embedding=clip`, CLIP's image embedding takes its place, pokedex/recognise/clip.py; the trained
logits still come from the classifier). A species is enrolled as the embeddings of a few pictures (its
prototypes). An image's score for an enrolled species is a logit on the trained classes' scale,

    a * cos(embedding, prototype) + b,

so one softmax ranks trained and enrolled species together; the answer is "no Pokémon" when the best softmax
score is under a threshold. (a, b) and the threshold are fitted on the validation split (pokedex/recognise/enroll.py)
and stored with the prototypes (models/enrolled/: enrolled.json and prototypes.bin, little-endian float32, one row
per picture, which main.py reads on the K210 as it is).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pokedex.core.errors import PokedexError
from pokedex.recognise.features import logits_and_features

NO_POKEMON = "(no Pokémon)"


def normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


CLASSIFIER_EMBEDDING = {"kind": "classifier"}


def logits_and_embedding(model, images: np.ndarray, embedding: dict) -> tuple[np.ndarray, np.ndarray]:
    """Trained-class logits and the features enrolled species are matched in: the classifier's pooled features,
    or CLIP image embeddings when the species were enrolled with `enroll.embedding=clip`."""
    logits, features = logits_and_features(model, images)
    if embedding["kind"] == "clip":
        from pokedex.recognise.clip import clip_features  # loads open_clip: only for CLIP enrolment

        features = clip_features(embedding, images)
    return logits, features


def species_cosine(embeddings: np.ndarray, prototypes: np.ndarray, owners: np.ndarray, species: int) -> np.ndarray:
    """(images, species): each species' best cosine over its prototypes (owners[i]: the species of prototype i)."""
    cos = embeddings @ prototypes.T
    best = np.full((len(embeddings), species), -1.0, dtype=cos.dtype)
    for j in range(species):
        if (owners == j).any():
            best[:, j] = cos[:, owners == j].max(1)
    return best


def mixed_logits(logits: np.ndarray, cosines: np.ndarray, a: float, b: float) -> np.ndarray:
    """Trained-class logits followed by enrolled-species logits a * cos + b: one row per image."""
    return np.concatenate([logits, a * cosines + b], axis=1)


def auroc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    if len(positive) == 0 or len(negative) == 0:
        return float("nan")
    scores = np.concatenate([positive, negative])
    ranks = scores.argsort().argsort().astype(np.float64) + 1
    for value in np.unique(scores):  # average ranks of ties
        tied = scores == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return float((ranks[: len(positive)].sum() - len(positive) * (len(positive) + 1) / 2) / (len(positive) * len(negative)))


@dataclass
class Calibration:
    scale: float  # a
    bias: float  # b
    threshold: float  # best softmax score under which the answer is "no Pokémon"
    false_accept_rate: float  # the share of validation negatives accepted at that threshold


@dataclass
class Enrolled:
    """What the enroll stage writes: enrolled species, their prototypes, and the calibration."""

    ids: list[int]  # Pokédex ids of the enrolled species
    names: list[str]
    prototypes: np.ndarray  # (pictures, dim) float32, normalised embeddings
    owners: np.ndarray  # (pictures,) index into ids of each prototype's species
    calibration: Calibration
    center: np.ndarray  # (dim,) the mean training feature vector, taken off before normalising
    embedding: dict = field(default_factory=lambda: dict(CLASSIFIER_EMBEDDING))  # what the features are

    def embed(self, features: np.ndarray) -> np.ndarray:
        return normalise(features - self.center)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.ascontiguousarray(self.prototypes, dtype="<f4").tofile(folder / "prototypes.bin")
        meta = {"ids": self.ids, "names": self.names, "dim": int(self.prototypes.shape[1]),
                "owners": [int(o) for o in self.owners],
                "scale": self.calibration.scale, "bias": self.calibration.bias,
                "threshold": self.calibration.threshold, "false_accept_rate": self.calibration.false_accept_rate,
                "center": [round(float(v), 6) for v in self.center], "embedding": self.embedding}
        (folder / "enrolled.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "Enrolled":
        meta_path = folder / "enrolled.json"
        if not meta_path.is_file():
            raise PokedexError(f"{meta_path} is missing; run the enroll stage first (dvc repro enroll).")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        protos = np.fromfile(folder / "prototypes.bin", dtype="<f4").reshape(len(meta["owners"]), meta["dim"])
        calibration = Calibration(meta["scale"], meta["bias"], meta["threshold"], meta["false_accept_rate"])
        return cls(meta["ids"], meta["names"], protos, np.asarray(meta["owners"], dtype=int), calibration,
                   np.asarray(meta["center"], dtype=np.float32), meta.get("embedding", dict(CLASSIFIER_EMBEDDING)))

    def rank(self, logits: np.ndarray, features: np.ndarray) -> np.ndarray:
        """Softmax over trained classes then enrolled species (columns nc.. are self.ids in order). A species the
        model was trained on can be enrolled too (your pictures of it, as your camera sees it): its column's
        score is added to its trained class's and the column left at 0, so its prototypes pull answers toward it."""
        cosines = species_cosine(self.embed(features), self.prototypes, self.owners, len(self.ids))
        scores = softmax(mixed_logits(logits, cosines, self.calibration.scale, self.calibration.bias))
        trained = logits.shape[1]
        for k, dex in enumerate(self.ids):
            if dex <= trained:  # class dex - 1 is Pokédex id dex (yolo-format's contiguous classes)
                scores[:, dex - 1] += scores[:, trained + k]
                scores[:, trained + k] = 0.0
        return scores
