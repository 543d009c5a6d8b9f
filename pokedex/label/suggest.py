"""`pokedex suggest`: which pictures of an unlabelled folder a label would teach the model most, written as an
annotation package: suggestions.csv (one row per picture, best first, with an empty `label` column to fill in
for `pokedex label`), index.html (thumbnails with the model's guesses, in the same order) and unreadable.csv.

Each picture is read as `pokedex predict` reads it (the whole picture, or the detector's crop where the classifier
is surer of it) and scored:
- uncertainty: 1 - (best - second best softmax score): the model hesitates between species;
- novelty: 1 - the best cosine between the picture's pooled features and the last layer's class weights (each
  species' direction in the space the classifier reads): the picture is unlike every species as trained.
The ranking is greedy: each next picture is the one with the most uncertainty + novelty, less `spread` times its
best cosine to the pictures ranked before it, so ten near-copies of one scene do not fill the top of the list.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.data.boxes import Box, crop_to_box
from pokedex.data.preprocess import MAX_PIXELS, decode, square
from pokedex.recognise.features import logits_and_features
from pokedex.recognise.openset import normalise, softmax
from pokedex.recognise.views import crop_is_surer

GUESSES = 3  # the model's guesses shown per picture
SPREAD = 0.5  # how much a picture's likeness to one ranked before it (cosine) costs it
COLUMNS = ["rank", "path", "x0", "y0", "x1", "y1", *(f"{k}{i}" for i in range(1, GUESSES + 1) for k in ("guess", "score")),
           "uncertainty", "novelty", "label"]
THUMBNAIL = 160  # px, the longer side in index.html
CHUNK = 64  # pictures decoded and classified at a time: a pool of any size fits in memory


@dataclass
class Suggestion:
    path: Path
    box: tuple[float, float, float, float] | None  # x0, y0, x1, y1 in the picture's pixels; None: the whole picture
    guesses: list[tuple[str, float]]  # (label, softmax score), best first
    uncertainty: float
    novelty: float


def _square(picture: Image.Image, size: int) -> np.ndarray:
    return np.asarray(square(picture, size)).transpose(2, 0, 1)


def _corners(box: Box, picture: Image.Image) -> tuple[float, float, float, float]:
    cx, cy, w, h = box
    return ((cx - w / 2) * picture.width, (cy - h / 2) * picture.height,
            (cx + w / 2) * picture.width, (cy + h / 2) * picture.height)


def read_pool(files: list[Path], root: Path, model, size: int, find_box: Callable[[Image.Image], Box | None] | None,
              max_pixels: int = MAX_PIXELS, progress: bool = True):
    """Each readable picture's logits and pooled features, from the view `pokedex predict` answers from, and its box
    (None: the whole picture); unreadable files as (path relative to root, reason)."""
    from tqdm import tqdm

    kept, boxes, logits, features, rejects = [], [], [], [], []
    bar = tqdm(total=len(files), desc="suggest", unit="picture", disable=not progress)
    for start in range(0, len(files), CHUNK):
        wholes, crops, found = [], [], []
        for path in files[start:start + CHUNK]:
            rgb = decode(path, size * 4, 1, max_pixels)  # 4x the input: a crop keeps the picture's own pixels
            if isinstance(rgb, str):
                rejects.append((path.relative_to(root).as_posix(), rgb))
                continue
            box = find_box(rgb) if find_box is not None else None
            kept.append(path)
            wholes.append(_square(rgb, size))
            crops.append(_square(crop_to_box(rgb, box), size) if box is not None else None)
            found.append(box is not None)
            boxes.append(_corners(box, rgb) if box is not None else None)
        bar.update(min(CHUNK, len(files) - start))
        if not wholes:
            continue
        chunk_logits, chunk_features = logits_and_features(model, np.stack(wholes))
        boxed = np.flatnonzero(found)
        if len(boxed):  # the crops, where the detector found something: each answers where the classifier is surer
            crop_logits, crop_features = logits_and_features(model, np.stack([crops[i] for i in boxed]))
            surer = crop_is_surer(softmax(chunk_logits[boxed]).max(1), softmax(crop_logits).max(1), True)
            chunk_logits[boxed[surer]], chunk_features[boxed[surer]] = crop_logits[surer], crop_features[surer]
            for i in boxed[~surer]:
                boxes[len(boxes) - len(found) + i] = None  # the whole picture answered
        logits.append(chunk_logits)
        features.append(chunk_features)
    bar.close()
    dim = model.model.model[-1].linear.in_features
    return (kept, boxes, np.concatenate(logits) if logits else np.zeros((0, len(model.names))),
            np.concatenate(features) if features else np.zeros((0, dim)), rejects)


def uncertainty(probabilities: np.ndarray) -> np.ndarray:
    """1 - (best - second best score) per picture: 1 where two species tie, near 0 where one is certain."""
    top2 = np.sort(probabilities, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def novelty(features: np.ndarray, class_weights: np.ndarray) -> np.ndarray:
    """1 - the best cosine between each picture's features and the class weight vectors of the last layer."""
    return 1.0 - (normalise(features) @ normalise(class_weights).T).max(1)


def ranked(priority: np.ndarray, embeddings: np.ndarray, spread: float = SPREAD) -> list[int]:
    """Indices, best first: greedily the highest priority less `spread` times the best cosine (from 0) to any
    picture already ranked. `embeddings`: L2-normalised rows."""
    closest, left, order = np.zeros(len(priority)), np.ones(len(priority), bool), []
    for _ in range(len(priority)):
        i = int(np.where(left, priority - spread * closest, -np.inf).argmax())
        order.append(i)
        left[i] = False
        closest = np.maximum(closest, embeddings @ embeddings[i])
    return order


def suggest(root: Path, model, labels: dict[int, str], find_box: Callable[[Image.Image], Box | None] | None = None,
            size: int = 96, spread: float = SPREAD, max_pixels: int = MAX_PIXELS, progress: bool = True
            ) -> tuple[list[Suggestion], list[tuple[str, str]]]:
    """Every picture under root, the one a label would teach most first; and the files that are no usable picture,
    with their reasons. `model`: an Ultralytics classifier (.pt); `labels`: class index -> '0025 Pikachu'."""
    if not root.is_dir():
        raise PokedexError(f"{root} is not a folder; give the folder of pictures to choose from.")
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith("."))
    kept, boxes, logits, features, rejects = read_pool(files, root, model, size, find_box, max_pixels, progress)
    probabilities = softmax(logits)
    weights = model.model.model[-1].linear.weight.detach().float().numpy()
    unsure, new = uncertainty(probabilities), novelty(features, weights)
    order = ranked(unsure + new, normalise(features - features.mean(0)) if len(features) else features, spread)
    suggestions = []
    for i in order:
        best = probabilities[i].argsort()[::-1][:GUESSES]
        suggestions.append(Suggestion(kept[i], boxes[i], [(labels[int(c)], float(probabilities[i, c])) for c in best],
                                      float(unsure[i]), float(new[i])))
    return suggestions, rejects


def labels_filled(table: Path) -> int:
    if not table.is_file():
        return 0
    with table.open(newline="", encoding="utf-8") as f:
        return sum(bool((row.get("label") or "").strip()) for row in csv.DictReader(f))


def _thumbnail(suggestion: Suggestion) -> str:
    with Image.open(suggestion.path) as img:
        img.draft("RGB", (THUMBNAIL * 2, THUMBNAIL * 2))
        picture = img.convert("RGB")
    scale = THUMBNAIL / max(picture.size)
    if suggestion.box is not None:
        ImageDraw.Draw(picture).rectangle(suggestion.box, outline=(255, 40, 40), width=max(2, round(2 / scale)))
    picture.thumbnail((THUMBNAIL, THUMBNAIL))
    buf = io.BytesIO()
    picture.save(buf, format="JPEG", quality=80)
    return f"data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()}"


def write_package(out: Path, suggestions: list[Suggestion], rejects: list[tuple[str, str]], show: int) -> Path:
    """out/suggestions.csv, out/index.html (the first `show` pictures) and out/unreadable.csv; the CSV's path."""
    table = out / "suggestions.csv"
    if filled := labels_filled(table):
        raise PokedexError(f"{table} already holds {filled} label(s); file them first (`pokedex label {table}`) or "
                           "write the new suggestions elsewhere (--out).")
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for rank, s in enumerate(suggestions, start=1):
        box = [f"{v:.0f}" for v in s.box] if s.box is not None else [""] * 4
        guesses = [v for label, score in s.guesses for v in (label, f"{score:.3f}")]
        guesses += [""] * (2 * GUESSES - len(guesses))
        rows.append([rank, str(s.path.resolve()), *box, *guesses, f"{s.uncertainty:.3f}", f"{s.novelty:.3f}", ""])
    write_csv(table, COLUMNS, rows)
    write_csv(out / "unreadable.csv", ["path", "reason"], sorted(rejects))
    cards = []
    for rank, s in enumerate(suggestions[:show], start=1):
        guesses = "".join(f"<li>{html.escape(label)} <small>{score:.2f}</small></li>" for label, score in s.guesses)
        cards.append(f'<figure><img src="{_thumbnail(s)}" alt=""><figcaption><b>{rank}</b> '
                     f"{html.escape(s.path.name)}<ol>{guesses}</ol><small>uncertainty {s.uncertainty:.2f} · "
                     f"novelty {s.novelty:.2f}</small></figcaption></figure>")
    more = f"<p>{len(suggestions) - show} more in suggestions.csv.</p>" if len(suggestions) > show else ""
    unreadable = f"<p>{len(rejects)} file(s) could not be read: unreadable.csv.</p>" if rejects else ""
    (out / "index.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>Pictures to label</title><style>body{font-family:sans-serif}"
        "figure{display:inline-block;width:180px;vertical-align:top;margin:6px}ol{margin:2px 0;padding-left:18px}"
        f"</style><h1>Pictures to label, most useful first</h1><p>Fill in the <code>label</code> column of "
        f"suggestions.csv (a Pokédex id, a name, <code>accept</code> for the first guess, <code>none</code> for no "
        f"Pokémon), then run <code>pokedex label {html.escape(str(table))}</code>.</p>{unreadable}"
        + "".join(cards) + more + "\n", encoding="utf-8")
    return table
