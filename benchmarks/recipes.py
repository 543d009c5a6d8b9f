"""Compare training recipes on field sets: each recipe is a set of Hydra overrides on top of conf/ and --base.

    python benchmarks/recipes.py --field ../shared/fieldsets/render3d/clean ../shared/fieldsets/render3d/camera \
        --base data.num_classes=151 train.epochs=15 \
        --recipe "today:augment.style=0 augment.light=0" --recipe "style+light:" [--out reports/recipes.json]

For each recipe it builds the dataset of its `data:` params (ingest, preprocess, yolo-format: once per distinct
data config, cached under .cache/pokedex/recipes/), trains with the pipeline's own function, and measures: the
clean test split (held-out animations), the scene test, and every field folder (pictures of species the
model was not trained on are left out, so a subset of species can be explored), whole picture and, where a
picture has a box (NNNN/<stem>.txt), cut to its box. Prints one markdown row per recipe, with the training
time; `--out` keeps the figures as JSON. Everything runs on this machine in this process, one recipe after the
other: the times of one run compare with each other.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pokedex import CHECKOUT
from pokedex.core.process import scratch_dir
from pokedex.data.ingest import ingest
from pokedex.data.preprocess import preprocess
from pokedex.data.sources import cache_dir
from pokedex.data.yolo_format import write_yolo_dataset
from pokedex.evaluate.evaluate import evaluate
from pokedex.evaluate.field import score_folder
from pokedex.train.load import load_model
from pokedex.train.train import train


def compose_cfg(overrides: list[str]):
    with initialize_config_dir(str(CHECKOUT / "conf"), version_base=None):
        cfg = compose("config", overrides=overrides)
    OmegaConf.resolve(cfg)
    return cfg


def dataset_for(cfg, cache: Path) -> Path:
    """The YOLO dataset of cfg.data, built once per distinct data config."""
    key = hashlib.sha256(json.dumps(OmegaConf.to_container(cfg.data), sort_keys=True).encode()).hexdigest()[:12]
    base = cache / f"data-{key}"
    if not (base / "yolo" / "data.yaml").is_file():
        raw = base / "raw" / "all_pokemon"
        ingest(cfg.data, raw, base / "raw" / "classes.csv", base / "raw" / "ingest_rejects.csv")
        preprocess(raw, base / "processed", base / "manifest.csv", base / "rejects.csv", size=cfg.data.image_size,
                   quality=cfg.data.jpeg_quality, workers=cfg.data.workers, min_size=cfg.data.min_image_size,
                   max_pixels=cfg.data.max_pixels)
        write_yolo_dataset(base / "manifest.csv", base / "processed", base / "raw" / "classes.csv", base / "yolo",
                           cfg.data.split)
    return base / "yolo"


def field_figures(weights: Path, folders: list[Path], imgsz: int) -> dict:
    model = load_model(weights)
    figures = {}
    for folder in folders:
        for crop in (False, True):
            scored = score_folder(model, folder, imgsz, crop, trained_only=True)
            if scored is not None:
                figures[f"{folder.name}{'_box' if crop else ''}"] = {k: scored[0]["metrics"][k] for k in ("images", "top1", "top5")}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--field", type=Path, nargs="+", required=True)
    parser.add_argument("--base", nargs="*", default=[], help="overrides every recipe shares")
    parser.add_argument("--recipe", action="append", required=True, help="'name:override override ...'")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cache = cache_dir() / "recipes"
    results = {}
    with scratch_dir():
        for recipe in args.recipe:
            name, _, overrides = recipe.partition(":")
            cfg = compose_cfg([*args.base, *overrides.split()])
            yolo = dataset_for(cfg, cache)
            run_dir = cache / "runs" / name
            start = time.perf_counter()
            best = train(cfg, yolo, run_dir)
            minutes = (time.perf_counter() - start) / 60
            test = evaluate(best, yolo, cfg.data.image_size, OmegaConf.merge(cfg.evaluate, {"latency_images": 0}),
                            run_dir / "eval")
            results[name] = {"overrides": [*args.base, *overrides.split()], "train_minutes": round(minutes, 1),
                             "test_top1": test["top1"], "scene_top1": test["scene_top1"],
                             **field_figures(best, args.field, cfg.data.image_size)}
            print(json.dumps({name: results[name]}), flush=True)
    columns = [c for c in next(iter(results.values())) if c != "overrides"]
    print("| recipe | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1))
    for name, r in results.items():
        cells = [f"{r[c]['top1']:.3f}" if isinstance(r[c], dict) else str(r[c]) for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
