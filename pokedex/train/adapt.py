"""Adapt: the trained classifier fine-tuned on your labelled pictures (data/user/NNNN/*) for a few epochs, with the
training pictures replayed beside them so that what it knew is not forgotten: minutes, not a training from scratch.

The fine-tune reads an adaptation dataset, a YOLO dataset in a scratch folder: `images/train` holds your pictures
(decoded and shrunk as preprocess does, named `NNNN_user_K.jpg`, seen `adapt.repeat` times an epoch) and links to
a share `adapt.replay` of each species' training pictures (one at least, so no species leaves the head);
validation and test are links to the dataset's own splits, so before and after compare on the same pictures. The
training itself is pokedex.train.train.train from `model.weights` = the trained model (its head kept, a species
it lacks added), with `adapt.train` over the train: group.
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import yaml
from omegaconf import DictConfig, OmegaConf

from pokedex.core.errors import PokedexError
from pokedex.core.io import write_csv
from pokedex.data.preprocess import MAX_PIXELS, decode, square
from pokedex.train.train import train

log = logging.getLogger(__name__)

USER = "user"  # the source name of your pictures in the adaptation dataset's splits.csv (augment.repeat's key)


def adaptation_dataset(dataset_dir: Path, pictures: list[tuple[Path, int]], out: Path, size: int, replay: float,
                       seed: int, quality: int = 95, max_pixels: int = MAX_PIXELS) -> tuple[dict, list[tuple[str, str]]]:
    """Write the adaptation dataset into `out` (empty or missing); its counts, and your pictures that cannot be read."""
    if not 0.0 <= replay <= 1.0:
        raise PokedexError(f"adapt.replay={replay} must be a share of each species' training pictures, 0 to 1.")
    with (dataset_dir / "splits.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[dict]] = {}
    for row in rows:
        if row["split"] == "train":
            by_class.setdefault(row["image"][:4], []).append(row)
    kept = [row for row in rows if row["split"] != "train"]
    for species, own in sorted(by_class.items()):
        n = max(1, round(replay * len(own)))
        kept += [own[i] for i in sorted(rng.choice(len(own), size=n, replace=False))]
    images = out / "images"
    for row in kept:
        link = images / row["split"] / row["image"]
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to((dataset_dir / "images" / row["split"] / row["image"]).resolve())
    rejects, mine = [], []
    (images / "train").mkdir(parents=True, exist_ok=True)
    for k, (path, dex) in enumerate(pictures):
        rgb = decode(path, size, 1, max_pixels)
        if isinstance(rgb, str):
            rejects.append((path.name, rgb))
            continue
        name = f"{dex:04d}_{USER}_{k:05d}.jpg"
        square(rgb, size).save(images / "train" / name, quality=quality)
        mine.append([name, "train", f"{dex:04d}/{USER}.{path.name}", ""])
    write_csv(out / "splits.csv", ["image", "split", "source", "sha256"],
              [[r["image"], r["split"], r["source"], r["sha256"]] for r in kept] + mine)
    data = yaml.safe_load((dataset_dir / "data.yaml").read_text(encoding="utf-8"))
    (out / "data.yaml").write_text(yaml.safe_dump({**data, "path": str(out)}, allow_unicode=True), encoding="utf-8")
    (out / "classes.txt").write_bytes((dataset_dir / "classes.txt").read_bytes())
    counts = {"user_pictures": len(mine), "replayed": sum(r["split"] == "train" for r in kept)}
    return counts, rejects


def adapted_cfg(cfg: DictConfig, weights: Path) -> DictConfig:
    """cfg as pokedex.train.train reads it for the fine-tune: from `weights`, adapt.train over train:, your
    pictures repeated adapt.repeat times (beside augment.repeat's own)."""
    a = cfg.adapt
    if int(a.repeat) < 1:
        raise PokedexError(f"adapt.repeat={a.repeat} must be a whole number, 1 or more.")
    tuned = OmegaConf.create(OmegaConf.to_container(cfg))  # not in struct mode: adapt adds a repeat key
    # adapt.augment over augment: (its repeat key by key), then your pictures' own repeat, which it cannot drop
    return OmegaConf.merge(tuned, {"model": {"weights": str(weights)}, "train": a.train, "augment": a.augment},
                           {"augment": {"repeat": {USER: int(a.repeat)}}})


def adapt(cfg: DictConfig, weights: Path, dataset_dir: Path, pictures: list[tuple[Path, int]], run_dir: Path,
          timings=None) -> tuple[Path, dict, list[tuple[str, str]]]:
    """Fine-tune `weights` on `pictures` ((path, Pokédex id)) with the training pictures replayed: the adapted
    model (run_dir/weights/best.pt: the last epoch's, since the validation split measures sprites, not your
    pictures), the adaptation dataset's counts, and the unreadable pictures."""
    if not pictures:
        raise PokedexError("there are no labelled pictures to adapt to; label some first (`pokedex suggest`, then "
                           "`pokedex label`: docs/labelling.md).")
    if not weights.is_file():
        raise PokedexError(f"{weights} is missing; train the model first (dvc repro train).")
    # beside run_dir under a fixed name, not a random temporary one: the checkpoints name their data
    scratch = run_dir.with_name(f"{run_dir.name}.data")
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        counts, rejects = adaptation_dataset(dataset_dir, pictures, scratch, int(cfg.data.image_size),
                                             float(cfg.adapt.replay), int(cfg.seed), int(cfg.data.jpeg_quality),
                                             int(cfg.data.max_pixels))
        log.info("adapt: %d of your pictures (%d unreadable) beside %d replayed training pictures", counts["user_pictures"],
                 len(rejects), counts["replayed"])
        best = train(adapted_cfg(cfg, weights), scratch, run_dir, timings=timings)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shutil.copyfile(best.with_name("last.pt"), best)
    return best, counts, rejects


def adapt_or_keep(cfg: DictConfig, trained: Path, dataset_dir: Path, labelled: tuple[list[tuple[Path, int]], list],
                  run_dir: Path, timings=None) -> Path:
    """The adapt stage: run_dir/weights/best.pt is `trained` fine-tuned on the `labelled` pictures ((picture, id)
    pairs and the rejects, as pokedex.data.sources.user.labelled_pictures gives them), or, while there are none,
    `trained` itself (the same bytes: every later stage reads this file); run_dir/adapt.json says which,
    run_dir/rejects.csv lists the files that are no labelled picture, with the reason."""
    pictures, rejects = labelled[0], list(labelled[1])
    if run_dir.exists():
        shutil.rmtree(run_dir)
    if pictures:  # adapt checks the trained weights
        best, counts, unreadable = adapt(cfg, trained, dataset_dir, pictures, run_dir, timings)
        rejects += unreadable
    else:
        if not trained.is_file():
            raise PokedexError(f"{trained} is missing; train the model first (dvc repro train).")
        best = run_dir / "weights" / "best.pt"
        best.parent.mkdir(parents=True)
        shutil.copyfile(trained, best)
        counts = {"user_pictures": 0, "replayed": 0}
    report = {"adapted": bool(pictures), **counts, "rejected": len(rejects)}
    (run_dir / "adapt.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_csv(run_dir / "rejects.csv", ["file", "reason"], sorted(rejects))
    log.info("adapt: %s", f"fine-tuned on {counts['user_pictures']} of your pictures" if pictures else
             "no labelled pictures: the trained model as it is")
    return best
