"""CLIP through open_clip_torch, beside the trained classifier: zero-shot recognition of every species by its
name, a linear probe on frozen CLIP image embeddings, and a hybrid that fuses CLIP's probabilities with the
classifier's.

- Zero-shot: each class is the normalised mean text embedding of `clip.templates` filled with its name
  (open_clip's own `build_zero_shot_classifier`); an image's logits are `logit_scale * cos(image, class)`.
  The text embeddings are cached by model, weights, prompts and names (`.cache/pokedex/clip/`).
- Linear probe: multinomial logistic regression on the train split's embeddings (full-batch L-BFGS from zero,
  so it is deterministic); the L2 strength is the one of `clip.probe.l2` that does best on the validation split.
- Hybrid: `(1 - w) * log p_classifier + w * log p_clip`, w from `clip.hybrid.weights` chosen on the validation
  split (ties go to the smaller w: the classifier alone unless CLIP helps).

The model and its weights are loaded as enrolment loads them (pokedex/recognise/clip.py: offline unless a tag
is asked for).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import numpy as np

from pokedex.core.checks import COUNT
from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.data.classes import class_label
from pokedex.data.dataset import class_names, load_uint8, split_images
from pokedex.evaluate.accuracy import accuracy_metrics, ranked_by_score
from pokedex.model.load import load_model
from pokedex.recognise.clip import Clip, image_embeddings, load_clip
from pokedex.recognise.features import logits_and_features

log = logging.getLogger(__name__)


PARAM_RULES = {"clip.batch": COUNT, "clip.probe.steps": COUNT}

NOT_CONFIGURED = ("not configured: clip.model is null, so nothing was measured; pick a model with clip=<name> "
                  "(conf/clip/) and its weights with clip.pretrained=<checkpoint file>")


def class_text_embeddings(clip: Clip, names: list[str], templates: list[str], cache: Path) -> np.ndarray:
    """(classes, dim) normalised mean prompt embeddings, cached by model, weights, prompts and names."""
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    key = hashlib.sha256(json.dumps([clip.fingerprint, templates, names]).encode()).hexdigest()[:24]
    cached = cache / f"text-{key}.npy"
    if cached.is_file():
        return np.load(cached)
    prompts = [lambda name, t=t: t.format(name=name) for t in templates]
    weights = build_zero_shot_classifier(clip.model, clip.tokenizer, names, prompts, num_classes_per_batch=16)
    embeddings = weights.T.float().cpu().numpy()
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, embeddings)
    tmp.replace(cached)  # never a half-written cache entry
    return embeddings


def logit_scale(clip: Clip) -> float:
    return float(clip.model.logit_scale.detach().exp())


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def fit_probe(x: np.ndarray, y: np.ndarray, classes: int, l2: float, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (weights, bias) minimising mean cross-entropy + l2 * |W|^2."""
    import torch

    xt, yt = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    w = torch.zeros(x.shape[1], classes, requires_grad=True)
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def loss():
        opt.zero_grad()
        value = torch.nn.functional.cross_entropy(xt @ w + b, yt) + l2 * (w * w).sum()
        value.backward()
        return value

    with torch.enable_grad():
        opt.step(loss)
    return w.detach().numpy(), b.detach().numpy()


def top1(scores: np.ndarray, truth: np.ndarray) -> float:
    return float((scores.argmax(1) == truth).mean())


def train_probe(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], classes: int,
                l2s: list[float], steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """The probe whose L2 strength does best on the validation split: (weights, bias, l2)."""
    best = None
    for l2 in l2s:
        w, b = fit_probe(*train, classes, float(l2), steps)
        score = top1(val[0] @ w + b, val[1])
        if best is None or score > best[0]:
            best = (score, w, b, float(l2))
    return best[1], best[2], best[3]


def fuse(log_p_classifier: np.ndarray, log_p_clip: np.ndarray, weight: float) -> np.ndarray:
    return (1.0 - weight) * log_p_classifier + weight * log_p_clip


def choose_fusion_weight(log_p_classifier: np.ndarray, log_p_clip: np.ndarray, truth: np.ndarray,
                         weights: list[float]) -> float:
    """The w with the best top-1 of the fused scores; ties go to the smaller w."""
    scored = [(top1(fuse(log_p_classifier, log_p_clip, float(w)), truth), -float(w)) for w in weights]
    return -max(scored)[1]


def _check(cfg) -> None:
    """The list-valued keys (pokedex.core.checks covers the numbers)."""
    if not cfg.templates or not all(isinstance(t, str) and "{name}" in t for t in cfg.templates):
        raise PokedexError("clip.templates must be a list of prompts that each contain {name}, e.g. "
                           "'a picture of {name}, a Pokémon.'; fix it in conf/clip/.")
    if not cfg.probe.l2 or not all(isinstance(v, (int, float)) and v >= 0 for v in cfg.probe.l2):
        raise PokedexError("clip.probe.l2 must be a list of L2 strengths ≥ 0 to choose from, e.g. [0.0001, 0.001].")
    if not cfg.hybrid.weights or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in cfg.hybrid.weights):
        raise PokedexError("clip.hybrid.weights must be a list of fusion weights in [0, 1], e.g. [0, 0.25, 0.5].")
    if cfg.hybrid.source not in ("zero_shot", "probe"):
        raise PokedexError(f"clip.hybrid.source={cfg.hybrid.source!r} is invalid: use zero_shot or probe.")


def measure(cfg, weights: Path, dataset_dir: Path, imgsz: int, out_dir: Path, cache: Path) -> dict:
    """CLIP zero-shot, linear probe and hybrid on the test split: metrics.json and per_class.csv in out_dir.

    With no CLIP model configured, metrics.json says so and per_class.csv has no rows: nothing is made up."""
    columns = ["class", "images", "classifier_top1", "zero_shot_top1", "probe_top1", "hybrid_top1"]
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.model is None:
        metrics = {"clip": NOT_CONFIGURED}
        write_csv(out_dir / "per_class.csv", columns, [])
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
        log.info("clip: %s", NOT_CONFIGURED)
        return metrics
    _check(cfg)
    if not weights.is_file():
        raise PokedexError(f"{weights} is missing; run the train stage first (dvc repro train).")
    classifier = load_model(weights)
    if classifier.task != "classify":
        raise PokedexError(f"the CLIP hybrid needs a classifier, and {weights} is a {classifier.task} model; "
                           "use a classification model (model=lite0) or leave clip.model null.")
    clip = load_clip(cfg.model, cfg.pretrained, cache, str(cfg.device))
    names = class_names(dataset_dir)
    text = class_text_embeddings(clip, names, list(cfg.templates), cache)
    splits = {s: split_images(dataset_dir, s) for s in ("train", "validation", "test")}
    emb = {s: image_embeddings(clip, paths, int(cfg.batch)) for s, (paths, _) in splits.items()}
    truth = {s: labels for s, (_, labels) in splits.items()}

    zero_shot = {s: logit_scale(clip) * emb[s] @ text.T for s in ("validation", "test")}
    w, b, l2 = train_probe((emb["train"], truth["train"]), (emb["validation"], truth["validation"]), len(names),
                           list(cfg.probe.l2), int(cfg.probe.steps))
    probe = {s: emb[s] @ w + b for s in ("validation", "test")}
    own = {s: log_softmax(logits_and_features(classifier, load_uint8(splits[s][0], imgsz))[0])
           for s in ("validation", "test")}
    source = zero_shot if cfg.hybrid.source == "zero_shot" else probe
    weight = choose_fusion_weight(own["validation"], log_softmax(source["validation"]), truth["validation"],
                                  list(cfg.hybrid.weights))
    hybrid = fuse(own["test"], log_softmax(source["test"]), weight)

    results = {name: accuracy_metrics(truth["test"], ranked_by_score(scores), len(names))
               for name, scores in [("classifier", own["test"]), ("zero_shot", zero_shot["test"]),
                                    ("probe", probe["test"]), ("hybrid", hybrid)]}
    metrics = {
        "clip_zero_shot_top1": round(results["zero_shot"]["top1"], 4),
        "clip_zero_shot_top5": round(results["zero_shot"]["top5"], 4),
        "clip_probe_top1": round(results["probe"]["top1"], 4),
        "clip_probe_top5": round(results["probe"]["top5"], 4),
        "classifier_top1": round(results["classifier"]["top1"], 4),  # the same images, read the same way
        "hybrid_top1": round(results["hybrid"]["top1"], 4),
        "hybrid_top5": round(results["hybrid"]["top5"], 4),
        "hybrid_weight": weight,
        "probe_l2": l2,
        "test_images": len(truth["test"]),
        "classes": len(names),
    }
    counts = np.bincount(truth["test"], minlength=len(names))
    per_class = zip(*(results[k]["per_class"] for k in ("classifier", "zero_shot", "probe", "hybrid")))
    write_csv(out_dir / "per_class.csv", columns,
              [(class_label(c, names[c]), int(counts[c]), *(round(v, 4) for v in values))
               for c, values in enumerate(per_class)])
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("clip: %s", metrics)
    return metrics
