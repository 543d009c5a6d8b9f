"""Compare training recipes on field sets: each recipe is a set of Hydra overrides on top of conf/ and --base.

    python benchmarks/recipes.py --field ../shared/fieldsets/render3d/clean ../shared/fieldsets/render3d/camera \
        --base data.num_classes=151 train.epochs=15 \
        --recipe "today:augment.style=0 augment.light=0" --recipe "style+light:" [--out reports/recipes.json]

For each recipe it builds the dataset of its `data:` params (ingest, preprocess, yolo-format: once per distinct
data config, cached under .cache/pokedex/recipes/), trains with the pipeline's own function, and measures: the
clean test split (held-out animations), the scene test, and every field folder (pictures of species the
model was not trained on are left out, so a subset of species can be explored), whole picture and, where a
picture has a box (NNNN/<stem>.txt), cut to its box. Prints one markdown row per recipe, with the training
time; `--out` keeps the figures as JSON. `--seeds 0 1` trains each recipe from each seed (`seed=S`) and adds,
per recipe, the mean and the spread (largest minus smallest) of every figure: a recipe change is a result when
it moves a figure by more than that spread. Everything runs on this machine in this process, one recipe after the
other: the times of one run compare with each other. `--teacher PATH` trains each recipe's `distill.model` (the K210's
network) taught by that classifier (pokedex/train/distill.py; `distill.soft=0` is the same training without it).

A named recipe is a recipe like any other: `--recipe scratch:+experiment=scratch` (conf/experiment/). Why a script
beside `dvc exp run`: the field sets it scores on must never enter the pipeline (they are measured, not trained
or chosen on inside the DAG), and a subset of species (`--base data.num_classes=151`) rebuilds the data, which a
DVC experiment would record as a change of the pipeline's data.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from pokedex.core.process import scratch_dir
from pokedex.data.ingest import ingest
from pokedex.data.preprocess import preprocess
from pokedex.data.sources import cache_dir
from pokedex.data.yolo_format import write_yolo_dataset
from pokedex.evaluate.evaluate import evaluate
from pokedex.evaluate.field import score_folder
from pokedex.train.distill import distill
from pokedex.train.train import train

from common import add_field, argument_parser, compose_cfg, load


def dataset_for(cfg, cache: Path) -> Path:
    """The YOLO dataset of cfg.data, built once per distinct data config."""
    key = hashlib.sha256(json.dumps(OmegaConf.to_container(cfg.data), sort_keys=True).encode()).hexdigest()[:12]
    base = cache / f"data-{key}"
    if not (base / "yolo" / "data.yaml").is_file():
        raw = base / "raw" / "all_pokemon"
        ingest(cfg.data, raw, base / "raw" / "classes.csv", base / "raw" / "ingest_rejects.csv")
        preprocess(raw, base / "processed", base / "manifest.csv", base / "rejects.csv", size=cfg.data.image_size,
                   quality=cfg.data.jpeg_quality, workers=cfg.data.workers, min_size=cfg.data.min_image_size,
                   max_pixels=cfg.data.max_pixels, upscale=cfg.data.upscale)
        write_yolo_dataset(base / "manifest.csv", base / "processed", base / "raw" / "classes.csv", base / "yolo",
                           cfg.data.split)
    return base / "yolo"


def field_figures(weights: Path, folders: list[Path], imgsz: int) -> dict:
    model = load(weights)
    figures = {}
    for folder in folders:
        for crop in (False, True):
            scored = score_folder(model, folder, imgsz, crop, trained_only=True)
            if scored is not None:
                figures[f"{folder.name}{'_box' if crop else ''}"] = {k: scored[0]["metrics"][k] for k in ("images", "top1", "top5")}
    return figures


def figure(result: dict, column: str) -> float:
    """A column of one recipe's result as one number: top-1 for a measured folder."""
    value = result[column]
    return float(value["top1"] if isinstance(value, dict) else value)


def seed_spreads(results: dict, columns: list[str]) -> dict:
    """Recipe -> column -> the mean and the spread (largest minus smallest) of its `name@seedS` runs."""
    by_recipe: dict[str, list[dict]] = {}
    for name, result in results.items():
        by_recipe.setdefault(name.rpartition("@")[0], []).append(result)
    return {name: {c: {"mean": sum(figure(r, c) for r in runs) / len(runs),
                       "spread": max(figure(r, c) for r in runs) - min(figure(r, c) for r in runs)} for c in columns}
            for name, runs in by_recipe.items()}


def main() -> None:
    parser = argument_parser(__doc__)
    add_field(parser)
    parser.add_argument("--base", nargs="*", default=[], help="overrides every recipe shares")
    parser.add_argument("--recipe", action="append", required=True, help="'name:override override ...'")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="train each recipe from each of these seeds")
    parser.add_argument("--teacher", type=Path, default=None, help="a trained classifier the recipes' distill.model "
                        "learns from (its classes must be the dataset's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    cache = cache_dir() / "recipes"
    results = {}
    runs = [(name, overrides) for name, _, overrides in (r.partition(":") for r in args.recipe)]
    if args.seeds:
        runs = [(f"{name}@seed{seed}", f"{overrides} seed={seed}") for name, overrides in runs for seed in args.seeds]
    with scratch_dir():
        for name, overrides in runs:
            cfg = compose_cfg([*args.base, *overrides.split()])
            yolo = dataset_for(cfg, cache)
            run_dir = cache / "runs" / name
            start = time.perf_counter()
            best = distill(cfg, args.teacher.resolve(), yolo, run_dir) if args.teacher else train(cfg, yolo, run_dir)
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
        print(f"| {name} | " + " | ".join(f"{figure(r, c):.3f}" for c in columns) + " |")
    if args.seeds:
        spreads = seed_spreads(results, columns)
        for name, spread in spreads.items():
            print(f"| {name}: mean ± spread | " + " | ".join(f"{v['mean']:.3f} ± {v['spread']:.3f}" for v in spread.values()) + " |")
        results.update({f"{name} (mean and spread over seeds {' '.join(map(str, args.seeds))})": s for name, s in spreads.items()})
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
