"""Seconds an epoch of training takes on this machine, one way against another, in one run: batches drawn by a
thread while the model learns against Ultralytics' own way on a CPU (each batch drawn between two steps), or the
model on 1, 2, ... torch threads while a thread draws the batches.

    python benchmarks/train_speed.py                        # the default recipe, 1 epoch, each way of drawing
    python benchmarks/train_speed.py --epochs 2 --set augment.ramp=0
    python benchmarks/train_speed.py --threads 1 2          # the model on 1, then 2 threads (batches from a thread)
    python benchmarks/train_speed.py --threads 1 2 --stage distill   # the same for the distill stage

Trains the default (conf/ and --set overrides) on the pipeline's dataset (paths.yolo_dataset: `dvc repro
yolo-format` first) for --epochs each way, one after the other in this process, and prints the training seconds
of each (Ultralytics' own count: reports/timings' train_s) and their ratio to the first. The pictures are the
same every way; the model's arithmetic is not. Without --threads the model gets what the stages give it (every
core, less the drawing thread's where a thread draws: pokedex.train.train.use_every_core); with it, that many
threads whatever draws. `--stage distill` trains the K210's network taught by the shipped teacher
(paths.trained_weights: `dvc repro train` first), with distill.train's epochs replaced by --epochs.
`--set augment.ramp=0` measures every epoch at the full scene probability (the default's later epochs); the
default's first epochs draw fewer scenes, so drawing is cheaper there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from pokedex.core.timings import Timings
from pokedex.train import augment
from pokedex.train import train as training
from pokedex.train.distill import distill

from common import argument_parser, compose_cfg, shipped


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--dataset", type=Path, default=shipped("yolo_dataset"))
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, nargs="+", default=None,
                        help="compare the model on these torch thread counts (batches drawn by a thread)")
    parser.add_argument("--stage", choices=["train", "distill"], default="train")
    parser.add_argument("--set", nargs="*", default=[], help="more Hydra overrides, e.g. augment.ramp=0")
    args = parser.parse_args()
    epochs = f"{'distill.' if args.stage == 'distill' else ''}train.epochs={args.epochs}"
    cfg = compose_cfg([epochs, "train.plots=false", *args.set])
    if args.threads:
        ways = [(f"model on {n} thread(s), batches drawn by a thread", True, n) for n in args.threads]
    else:
        ways = [("between steps (Ultralytics)", False, None), ("drawn by a thread (Prefetched)", True, None)]
    seconds = {}
    for way, prefetch, threads in ways:
        augment.PREFETCH = prefetch
        if threads is not None:  # in place of the stages' rule, for this comparison only
            training.use_every_core = lambda _trainer, n=threads: torch.set_num_threads(n)
        timings = Timings()
        with tempfile.TemporaryDirectory() as tmp:
            if args.stage == "distill":
                distill(cfg, shipped("trained_weights"), args.dataset, Path(tmp) / "run", timings=timings)
            else:
                training.train(cfg, args.dataset, Path(tmp) / "run", timings=timings)
        seconds[way] = float(timings["train_s"])
        print(f"{way}: {seconds[way]:.1f} s", flush=True)
    first = next(iter(seconds.values()))
    print(f"\n| {args.stage}: {args.epochs} epoch(s) | training s | ratio |\n|---|---|---|")
    for way, s in seconds.items():
        print(f"| {way} | {s:.1f} | {s / first:.2f} |")


if __name__ == "__main__":
    main()
