"""Enrolment: new species from a few pictures each (data/enroll/NNNN/*), without retraining.

Calibration first, on the validation split, by enrolling trained species as if they were new: for a random
half of the classes their logits are dropped and prototypes are built from `enroll.shots` training images each,
a quarter are left out altogether (neither trained nor enrolled); (a, b) maximise the likelihood of the true
class over that mixed softmax, and the "no Pokémon" threshold is the best-score quantile that accepts
`enroll.false_accept_rate` of the pictures without a Pokémon (with `enroll.refuse_unknown`, of those and the
left-out species' pictures: stricter, it refuses many known Pokémon seen in another style). Then each
picture in data/enroll/NNNN/ becomes a prototype of its species (pokedex/recognise/openset.py), written with the
calibration.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from pokedex.core.checks import COUNT, Number, check_value
from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.data.classes import ALL_POKEMON, CLASS_DIR, national_dex
from pokedex.data.dataset import class_names, load_uint8, split_images
from pokedex.data.preprocess import decode, square
from pokedex.data.scenes import NO_POKEMON_VAL, no_pokemon
from pokedex.model.load import load_model
from pokedex.recognise.clip import enrolment_embedding
from pokedex.recognise.openset import (
    CLASSIFIER_EMBEDDING,
    Calibration,
    Enrolled,
    auroc,
    logits_and_embedding,
    mixed_logits,
    normalise,
    softmax,
    species_cosine,
)

log = logging.getLogger(__name__)


PARAM_RULES = {
    "enroll.shots": COUNT,
    "enroll.false_accept_rate": Number(float, 0, 0.99),
    "enroll.negatives": COUNT,
    "enroll.seed": Number(int, 0),
}


def _simulated_enrolment(rng, n_classes: int, train_emb, train_labels, shots: int):
    """Half the classes 'enrolled' from `shots` training embeddings each, a quarter 'unknown' (no logit, no
    prototype; none below 4 classes), the rest trained: the validation split then looks like a deployment with
    enrolled species."""
    order = rng.permutation(n_classes)
    enrolled, unknown = np.sort(order[: n_classes // 2]), np.sort(order[n_classes // 2: n_classes * 3 // 4])
    rows, owners = [], []
    for j, c in enumerate(enrolled):
        own = np.flatnonzero(train_labels == c)
        if len(own) == 0:
            raise PokedexError(f"class {c} has no training images; enrolment calibration needs some of every class.")
        picked = rng.choice(own, size=min(shots, len(own)), replace=False)
        rows += picked.tolist()
        owners += [j] * len(picked)
    trained = np.setdiff1d(np.arange(n_classes), np.concatenate([enrolled, unknown]))
    return trained, enrolled, unknown, train_emb[rows], np.asarray(owners)


def fit_scale_bias(logits, cosines, labels, trained, enrolled) -> tuple[float, float]:
    """(a, b) maximising the likelihood of the true class over [trained logits | a * cos + b] (images of
    trained and enrolled classes only; cosines: each image's best cosine to each enrolled class)."""
    import torch

    column = {int(c): i for i, c in enumerate(trained)} | {int(c): len(trained) + i for i, c in enumerate(enrolled)}
    keep = np.array([int(y) in column for y in labels])
    z = torch.from_numpy(logits[keep][:, trained].astype(np.float64))
    cos = torch.from_numpy(cosines[keep].astype(np.float64))
    target = torch.tensor([column[int(y)] for y in labels[keep]])
    scale_bias = torch.tensor([10.0, 0.0], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([scale_bias], max_iter=200, line_search_fn="strong_wolfe")

    def loss():
        optimiser.zero_grad()
        value = torch.nn.functional.cross_entropy(torch.cat([z, scale_bias[0] * cos + scale_bias[1]], 1), target)
        value.backward()
        return value

    optimiser.step(loss)
    a, b = scale_bias.detach().tolist()
    return float(a), float(b)


def open_set_threshold(negative_scores: np.ndarray, false_accept_rate: float) -> float:
    """The lowest threshold on the best softmax score that accepts (score >= threshold) at most
    `false_accept_rate` of the negatives."""
    check_value(PARAM_RULES, "enroll.false_accept_rate", false_accept_rate)
    if not len(negative_scores):
        return 0.0
    descending = np.sort(negative_scores)[::-1]
    allowed = int(np.floor(false_accept_rate * len(descending) + 1e-9))
    return float(np.nextafter(descending[allowed], np.inf))  # just above the first negative that must be refused


def calibrate(val_logits, val_emb, val_labels, train_emb, train_labels, background_logits, background_emb,
              shots: int, false_accept_rate: float, seed: int, refuse_unknown: bool = False) -> tuple[Calibration, dict]:
    """(a, b) and the open-set threshold from the validation split; returns them with validation figures.

    The threshold lets `false_accept_rate` of the pictures without a Pokémon through; with `refuse_unknown`, of
    those and of the left-out species' pictures together. Measured on the 905-species default: counting
    unknown species as negatives refused 40 % of the known test pictures and 89 % of field camera views,
    where pictures without a Pokémon alone (5 %) refuse 0.5 % and 22 % (docs/field.md)."""
    rng = np.random.default_rng(seed)
    n_classes = val_logits.shape[1]
    if n_classes < 2:
        raise PokedexError(f"enrolment calibration needs at least 2 trained classes; the model has {n_classes}.")
    trained, enrolled, unknown, protos, owners = _simulated_enrolment(rng, n_classes, train_emb, train_labels, shots)
    val_cos = species_cosine(val_emb, protos, owners, len(enrolled))
    a, b = fit_scale_bias(val_logits, val_cos, val_labels, trained, enrolled)
    column = {int(c): i for i, c in enumerate(trained)} | {int(c): len(trained) + i for i, c in enumerate(enrolled)}
    mixed = softmax(mixed_logits(val_logits[:, trained], val_cos, a, b))
    best = mixed.max(1)
    is_unknown = np.isin(val_labels, unknown)
    known = ~is_unknown
    bg_cos = species_cosine(background_emb, protos, owners, len(enrolled))
    bg_best = softmax(mixed_logits(background_logits[:, trained], bg_cos, a, b)).max(1)
    negatives = np.concatenate([best[is_unknown], bg_best]) if refuse_unknown else bg_best
    threshold = open_set_threshold(negatives, false_accept_rate)
    right = np.array([column.get(int(y), -1) for y in val_labels]) == mixed.argmax(1)
    is_enrolled = np.isin(val_labels, enrolled)
    figures = {
        "scale": round(a, 4), "bias": round(b, 4), "threshold": round(threshold, 6),
        "val_top1_trained": round(float(right[np.isin(val_labels, trained)].mean()), 4),
        "val_top1_enrolled": round(float(right[is_enrolled].mean()), 4),
        "val_false_accept": round(float((negatives >= threshold).mean()), 4),
        "val_known_accepted": round(float((best[known] >= threshold).mean()), 4),
        "val_unknown_species_accepted": round(float((best[is_unknown] >= threshold).mean()), 4) if is_unknown.any() else None,
        "val_open_set_auroc": round(auroc(best[known], negatives), 4),
    }
    calibration = Calibration(a, b, threshold, figures["val_false_accept"])
    return calibration, figures


def read_pictures(folder: Path, size: int, min_size: int, max_pixels: int):
    """(dex ids, uint8 NCHW pictures, rejects) of folder/NNNN/*; a README at the top is documentation. A species
    the model knows is enrolled too: its prototypes pull answers toward it (openset.Enrolled.rank)."""
    ids, pictures, rejects = [], [], []
    files = sorted(p for p in folder.rglob("*") if not p.is_dir()) if folder.is_dir() else []
    for path in files:
        rel = path.relative_to(folder).as_posix()
        if path.parent == folder and path.name.lower().startswith("readme"):
            continue
        if path.parent.parent != folder or not CLASS_DIR.match(path.parent.name):
            rejects.append((rel, "not inside a folder named by a 4-digit Pokédex id (data/enroll/0650/*.jpg)"))
            continue
        dex = int(path.parent.name)
        if not 1 <= dex <= ALL_POKEMON:
            rejects.append((rel, f"{dex:04d} is no Pokédex id (0001-{ALL_POKEMON})"))
            continue
        rgb = decode(path, size, min_size, max_pixels)
        if isinstance(rgb, str):
            rejects.append((rel, rgb))
            continue
        ids.append(dex)
        pictures.append(np.asarray(square(rgb, size)))
    images = np.stack(pictures).transpose(0, 3, 1, 2).copy() if pictures else np.zeros((0, 3, size, size), np.uint8)
    return np.asarray(ids, dtype=int), images, rejects


def add_pictures(images: list[Path], dex_id: int, folder: Path, max_pixels: int) -> list[Path]:
    """Copy pictures of species `dex_id` into folder/NNNN/ (what the enroll stage reads), after checking that
    each one can be read; a name already there gets a number instead of being overwritten."""
    if not 1 <= dex_id <= ALL_POKEMON:
        raise PokedexError(f"--id {dex_id} is no Pokédex id; give one between 1 and {ALL_POKEMON} (e.g. --id 0650).")
    for image in images:
        if not image.is_file():
            raise PokedexError(f"{image} is not a file; give picture files of the species.")
        reason = decode(image, 64, 1, max_pixels)
        if isinstance(reason, str):
            raise PokedexError(f"{image} cannot be used: {reason}.")
    target = folder / f"{dex_id:04d}"
    target.mkdir(parents=True, exist_ok=True)
    added = []
    for image in images:
        name, number = target / image.name, 1
        while name.exists():
            name, number = target / f"{image.stem}-{number}{image.suffix}", number + 1
        shutil.copyfile(image, name)
        added.append(name)
    return added


def shots_per_class(labels: np.ndarray, shots: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to `shots` random images of every class."""
    return np.sort(np.concatenate([rng.choice(np.flatnonzero(labels == c), size=min(shots, int((labels == c).sum())),
                                              replace=False) for c in np.unique(labels)]))


def embedding_of(cfg: DictConfig, clip: DictConfig | None = None) -> dict:
    """enroll.embedding: the classifier's own features, or CLIP's (the clip: group's model and pretrained)."""
    if cfg.embedding == "classifier":
        return dict(CLASSIFIER_EMBEDDING)
    if cfg.embedding == "clip":
        return enrolment_embedding(clip.model if clip else None, clip.pretrained if clip else None)
    raise PokedexError(f"enroll.embedding={cfg.embedding!r} is invalid: use classifier or clip.")


def enroll(weights: Path, dataset_dir: Path, pictures: Path, size: int, min_size: int, max_pixels: int,
           cfg: DictConfig, out_dir: Path, report_path: Path, clip: DictConfig | None = None) -> dict:
    """Calibrate on the validation split, enrol every species of `pictures`, write out_dir and the report (`cfg`:
    the enroll: group; `clip`: the clip: group, whose model enroll.embedding=clip embeds with)."""
    if not weights.is_file():
        raise PokedexError(f"{weights} is missing; run the train stage first (dvc repro train).")
    model = load_model(weights)
    if model.task != "classify":  # says so in its outputs instead of a made-up number
        reason = f"nothing enrolled: {weights} is a {model.task} model, and only a classifier has an embedding"
        out_dir.mkdir(parents=True, exist_ok=True)
        write_csv(out_dir / "rejects.csv", ["source", "reason"], [])
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps({"species": 0, "skipped": reason}, indent=2) + "\n")
        log.info("enroll: %s", reason)
        return {"species": 0}
    embedding = embedding_of(cfg, clip)
    trained = len(class_names(dataset_dir))
    rng = np.random.default_rng(int(cfg.seed))
    train_paths, train_labels = split_images(dataset_dir, "train")
    chosen = shots_per_class(train_labels, int(cfg.shots), rng)
    _, train_features = logits_and_embedding(model, load_uint8([train_paths[i] for i in chosen], size), embedding)
    center = train_features.mean(0)
    val_paths, val_labels = split_images(dataset_dir, "validation")
    val_logits, val_features = logits_and_embedding(model, load_uint8(val_paths, size), embedding)
    bg_logits, bg_features = logits_and_embedding(
        model, no_pokemon(NO_POKEMON_VAL, int(cfg.seed), int(cfg.negatives), size), embedding)
    calibration, figures = calibrate(val_logits, normalise(val_features - center), val_labels,
                                     normalise(train_features - center), train_labels[chosen], bg_logits,
                                     normalise(bg_features - center), int(cfg.shots), float(cfg.false_accept_rate),
                                     int(cfg.seed), bool(cfg.get("refuse_unknown", False)))

    ids, images, rejects = read_pictures(pictures, size, min_size, max_pixels)
    emb = normalise(logits_and_embedding(model, images, embedding)[1] - center) if len(images) else train_features[:0]
    species = sorted(set(ids.tolist()))
    owners = np.array([species.index(i) for i in ids.tolist()], dtype=int)  # each picture is a prototype
    names = national_dex()
    Enrolled(species, [names[s] for s in species], emb.astype(np.float32), owners, calibration, center,
             embedding).save(out_dir)
    write_csv(out_dir / "rejects.csv", ["source", "reason"], rejects)
    report = {"species": len(species), "pictures": int(len(ids)), "rejected": len(rejects), **figures}
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2) + "\n")
    log.info("enroll: %d species from %d pictures (%d rejected, see %s); calibration %s", len(species), len(ids),
             len(rejects), out_dir / "rejects.csv", figures)
    return report

