"""Seconds a classifier training takes with its batches drawn by a thread while the model learns, against
Ultralytics' own way on a CPU (each batch drawn between two of the model's steps), on this machine, in one run.

    python benchmarks/train_speed.py                        # the default recipe, 1 epoch, each way
    python benchmarks/train_speed.py --epochs 2 --set augment.ramp=0

Trains the default (conf/ and --set overrides) on the pipeline's dataset (data/yolo_dataset: `dvc repro
yolo-format` first) for --epochs without, then with pokedex.train.augment.Prefetched, one after the other in this
process, and prints the training seconds of each (Ultralytics' own count: reports/timings' train_s) and their
ratio. The pictures are the same both ways; the model's arithmetic is not (every core on the model against all
but the drawing thread's). `--set augment.ramp=0` measures every epoch at the full scene probability (the
default's later epochs); the default's first epochs draw fewer scenes, so drawing is cheaper there.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from pokedex import CHECKOUT
from pokedex.core.timings import Timings
from pokedex.train import augment
from pokedex.train.train import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=CHECKOUT / "data" / "yolo_dataset")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], help="more Hydra overrides, e.g. augment.ramp=0")
    args = parser.parse_args()
    with initialize_config_dir(str(CHECKOUT / "conf"), version_base=None):
        cfg = compose("config", overrides=[f"train.epochs={args.epochs}", "train.plots=false", *args.set])
    OmegaConf.resolve(cfg)
    seconds = {}
    for way, prefetch in (("between steps (Ultralytics)", False), ("drawn by a thread (Prefetched)", True)):
        augment.PREFETCH = prefetch
        timings = Timings()
        with tempfile.TemporaryDirectory() as tmp:
            train(cfg, args.dataset, Path(tmp) / "run", timings=timings)
        seconds[way] = float(timings["train_s"])
        print(f"{way}: {seconds[way]:.1f} s", flush=True)
    first = next(iter(seconds.values()))
    print("\n| batches | training s | ratio |\n|---|---|---|")
    for way, s in seconds.items():
        print(f"| {way} | {s:.1f} | {s / first:.2f} |")


if __name__ == "__main__":
    main()
