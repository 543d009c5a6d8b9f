"""What a user's labels buy: pictures picked from a labelled pool, the model adapted to them, the rest scored.

    python benchmarks/adapt.py --pool ../shared/fieldsets/web149 [--labels 1 3 5] [--pick suggest random per-species]
        [--seeds 0 1] [--spread 0.5] [--out reports/adapt.json]

The pool (`NNNN/*` pictures, labelled) stands in for a user's own pictures. A fixed share of each species'
pictures (`--held-out`, 0.4) is set aside and never labelled, so that every way of picking is scored on the same
pictures; from the others a budget of `--labels` labels per species on average is spent on the pictures `pokedex
suggest` ranks first (`suggest`), on random ones (`random`), or on that many per species (`per-species`), the
labels being the pool's. The held-out pictures are then scored (classifier on the whole picture, 905-way,
top-1/top-5) four ways: as it is; with the labelled pictures enrolled as prototypes of their species, as the
enroll stage enrols data/enroll (pokedex/recognise/enroll.py: no training); fine-tuned on them with the training
pictures replayed (pokedex/train/adapt.py, conf/adapt/); and the fine-tuned model with the same pictures enrolled
on it (calibrated anew on that model). Also shown: the fine-tuned model on every picture not labelled (`rest`:
held-out and pool alike), the sprite test split each way, and the minutes the fine-tune took. `random` and the
fine-tune's seed follow `--seeds`, so the spread between seeds says which differences are results. Runs on the
workspace's trained model and dataset (models/train, data/yolo_dataset: `dvc repro` or `dvc pull` first); nothing
from the pool is written anywhere but the scratch folder and --out.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from pokedex import CHECKOUT
from pokedex.core.archive import view
from pokedex.data.dataset import load_uint8, split_images
from pokedex.data.fieldset import FieldSet, field_set
from pokedex.evaluate.field import load_pictures, score
from pokedex.label.suggest import SPREAD, suggest
from pokedex.predict import class_labels
from pokedex.recognise.enroll import enroll
from pokedex.recognise.openset import Enrolled
from pokedex.recognise.scores import class_scores, input_size
from pokedex.train.adapt import adapt

from common import add_model, argument_parser, compose_cfg, load

METHODS = ("before", "prototypes", "fine_tuned", "fine_tuned_prototypes")
HELD_OUT_SEED = 1234  # the held-out pictures are the same whatever --seeds says


def held_out(pool: FieldSet, share: float) -> set[int]:
    """A fixed share of each species' pictures, never labelled: every pick and method is scored on the same ones."""
    rng, kept = np.random.default_rng(HELD_OUT_SEED), set()
    for dex in sorted(set(pool.dex_ids)):
        own = [i for i, d in enumerate(pool.dex_ids) if d == dex]
        kept.update(rng.choice(own, size=round(share * len(own)), replace=False).tolist())
    return kept


def picked(pick: str, pool: FieldSet, candidates: list[int], budget: int, ranking: list[Path],
           rng: np.random.Generator) -> set[int]:
    """Indices into pool.paths of the pictures labelled, out of `candidates`."""
    if pick == "suggest":
        where = {pool.paths[i]: i for i in candidates}
        return set([where[p] for p in ranking if p in where][:budget])
    if pick == "random":
        return set(rng.choice(candidates, size=budget, replace=False).tolist())
    per, chosen = max(1, round(budget / len({pool.dex_ids[i] for i in candidates}))), set()
    for dex in sorted({pool.dex_ids[i] for i in candidates}):
        own = [i for i in candidates if pool.dex_ids[i] == dex]
        chosen.update(rng.choice(own, size=min(per, len(own)), replace=False).tolist())
    return chosen


def pictures_of(pool: FieldSet, chosen: list[int], size: int) -> tuple[np.ndarray, list[int]]:
    part = FieldSet(pool.root, [pool.paths[i] for i in chosen], [pool.dex_ids[i] for i in chosen], [None] * len(chosen))
    images, kept, _ = load_pictures(part, size)
    return images, [part.dex_ids[i] for i in kept]


def enrolled_with(weights: Path, cfg, dataset: Path, pool: FieldSet, chosen: list[int], size: int, tmp: Path) -> Enrolled:
    """The labelled pictures enrolled on `weights` as the enroll stage enrols data/enroll (calibrated on that
    model): prototypes of known species, on the landed model or the fine-tuned one."""
    folder = tmp / "enroll"
    for i in chosen:
        link = folder / f"{pool.dex_ids[i]:04d}" / f"{i:05d}{pool.paths[i].suffix.lower()}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(pool.paths[i].resolve())
    enroll(weights, dataset, folder, size, int(cfg.data.min_image_size), int(cfg.data.max_pixels), cfg.enroll,
           tmp / "enrolled", tmp / "enroll.json")
    return Enrolled.load(tmp / "enrolled")


def figures(model, parts: dict[str, tuple[np.ndarray, list[int]]], test: tuple[np.ndarray, np.ndarray],
            enrolled: Enrolled | None = None) -> dict:
    """top-1 / top-5 on each part of the pool (`held_out`, `rest`), and the sprite test split's top-1."""
    found = {}
    for name, (images, dex_ids) in parts.items():
        result = score(class_scores(model, images, enrolled), dex_ids, len(model.names), enrolled)["metrics"]
        found.update({f"{name}_top1": result["top1"], f"{name}_top5": result["top5"], name: len(dex_ids)})
    test_top1 = float((class_scores(model, test[0], enrolled)[:, :len(model.names)].argmax(1) == test[1]).mean())
    return {**found, "test_top1": round(test_top1, 4)}


def species_covered(pool: FieldSet, chosen: set[int]) -> int:
    return len({pool.dex_ids[i] for i in chosen})


def print_coverage(pool: FieldSet, candidates: list[int], budgets: list[int], picks: list[str], ranking: list[Path],
                   draws: int = 20) -> None:
    """How many species each way of picking labels, per budget, without adapting anything: `random` and
    `per-species` over `draws` seeds (mean and standard deviation). A species no label reaches is learnt by neither
    the prototypes nor the fine-tune."""
    species = len({pool.dex_ids[i] for i in candidates})
    print(f"| labels | picked by | species labelled (of {species}) |\n|---|---|---|")
    for budget in budgets:
        for pick in picks:
            covered = [species_covered(pool, picked(pick, pool, candidates, budget, ranking, np.random.default_rng(s)))
                       for s in range(1 if pick == "suggest" else draws)]
            spread = f" ± {np.std(covered):.1f} ({draws} seeds)" if pick != "suggest" else ""
            print(f"| {budget} | {pick} | {np.mean(covered):.1f}{spread} |")


def main() -> None:
    parser = argument_parser(__doc__)
    add_model(parser, "trained_weights", "the classifier your labels adapt, as the adapt stage does")
    parser.add_argument("--pool", type=Path, required=True, help="a labelled folder NNNN/* standing in for your pictures")
    parser.add_argument("--labels", type=float, nargs="+", default=[3], help="labels per species, on average")
    parser.add_argument("--pick", nargs="+", default=["suggest", "random", "per-species"],
                        choices=["suggest", "random", "per-species"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--held-out", type=float, default=0.4,
                        help="share of each species' pictures scored and never labelled (default: %(default)s)")
    parser.add_argument("--spread", type=float, default=SPREAD,
                        help="suggest's cost of a picture's likeness to one ranked before it "
                        "(default: SPREAD in pokedex/label/suggest.py, %(default)s)")
    parser.add_argument("--override", nargs="*", default=[], help="Hydra overrides for the fine-tune, e.g. adapt.train.epochs=2")
    parser.add_argument("--coverage", action="store_true",
                        help="only print how many species each pick's labels reach, per budget (no adapting: seconds)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cfg = compose_cfg(args.override)
    weights, dataset = args.model, view(CHECKOUT / cfg.paths.yolo_dataset)
    model = load(weights)
    size = input_size(model)
    pool = field_set(args.pool)
    species = len(set(pool.dex_ids))
    ranking = [s.path for s in suggest(args.pool, model, class_labels(None, model.names), size=size,
                                         spread=args.spread)[0]]
    aside = held_out(pool, args.held_out)
    candidates = [i for i in range(len(pool.paths)) if i not in aside]
    # a budget beyond the pictures that may be labelled labels them all (5 a species on web149: 745 of 744)
    budgets = {labels: min(round(labels * species), len(candidates)) for labels in args.labels}
    if args.coverage:
        print_coverage(pool, candidates, list(budgets.values()), args.pick, ranking)
        return
    test_paths, test_labels = split_images(dataset, "test")
    test = (load_uint8(test_paths, size), test_labels)
    scored_on = pictures_of(pool, sorted(aside), size)
    rows = []
    print(f"Held out: {len(aside)} pictures; labels picked among the other {len(candidates)}.\n\n"
          "| labels per species | picked by | seed | labelled (species) | held out, none: top-1 / top-5 | prototypes | fine-tuned "
          "| fine-tuned + prototypes | rest, fine-tuned | test top-1 before -> prototypes / fine-tuned | minutes to fine-tune |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for labels in args.labels:
        budget = budgets[labels]
        for pick in args.pick:
            for seed in args.seeds:  # suggest picks the same pictures each time; the fine-tune's seed moves
                chosen = picked(pick, pool, candidates, budget, ranking, np.random.default_rng(seed))
                parts = {"held_out": scored_on,
                         "rest": pictures_of(pool, [i for i in range(len(pool.paths)) if i not in chosen], size)}
                row = {"labels": labels, "pick": pick, "seed": seed, "labelled": len(chosen),
                       "species": species_covered(pool, chosen)}
                row["before"] = figures(model, parts, test)
                with tempfile.TemporaryDirectory(prefix="pokedex-adapt-bench-") as tmp:
                    row["prototypes"] = figures(model, parts, test, enrolled_with(
                        weights, cfg, dataset, pool, sorted(chosen), size, Path(tmp) / "landed"))
                    tuned_cfg = compose_cfg([*args.override, f"seed={seed}"])
                    start = time.perf_counter()
                    best, _, _ = adapt(tuned_cfg, weights, dataset, [(pool.paths[i], pool.dex_ids[i]) for i in sorted(chosen)],
                                       Path(tmp) / "run")
                    row["minutes"] = round((time.perf_counter() - start) / 60, 1)
                    tuned = load(best)
                    row["fine_tuned"] = figures(tuned, parts, test)
                    row["fine_tuned_prototypes"] = figures(
                        tuned, parts, test, enrolled_with(best, tuned_cfg, dataset, pool, sorted(chosen), size,
                                                          Path(tmp) / "tuned"))
                rows.append(row)
                print(f"| {labels:g} | {pick} | {seed} | {len(chosen)} ({row['species']}) | "
                      + " | ".join(f"{row[m]['held_out_top1']:.3f} / {row[m]['held_out_top5']:.3f}" for m in METHODS)
                      + f" | {row['fine_tuned']['rest_top1']:.3f} | {row['before']['test_top1']:.3f} -> "
                      f"{row['prototypes']['test_top1']:.3f} / {row['fine_tuned']['test_top1']:.3f} | {row['minutes']} |",
                      flush=True)
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
