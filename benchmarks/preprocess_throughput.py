"""Preprocess throughput: the parallel stage vs a plain single-process PIL loop over the same files.

    python benchmarks/preprocess_throughput.py [--files 2400] [--size 96]
    python benchmarks/preprocess_throughput.py --memory 2000 20000   # peak RSS of the stage per dataset size

Makes a mixed-size set of JPEGs and PNGs (synthetic creatures rendered at 96-512 px) in a temporary
folder laid out like data/raw/all_pokemon, then times both over it in one run and prints images/s and
the ratio. Numbers are only comparable within one run: the machines are noisy.
"""

from __future__ import annotations

import argparse
import io
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from pokedex.core.parallel import worker_count
from pokedex.data.preprocess import MAX_PIXELS, preprocess
from pokedex.data.synthetic import make_species, render


def make_files(root: Path, n_files: int, classes: int = 20) -> None:
    species = make_species(classes, seed=0)
    rng = np.random.default_rng(0)
    base = {sp.dex_id: render(sp, 0, 0, 512) for sp in species}
    for i in range(n_files):
        sp = species[i % classes]
        side = int(rng.integers(96, 513))
        img = base[sp.dex_id].rotate(float(rng.uniform(-20, 20))).resize((side, int(side * rng.uniform(0.6, 1.4))))
        folder = root / f"{sp.dex_id:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        if i % 4 == 0:
            img.save(folder / f"{i:05d}.png")
        else:
            img.save(folder / f"{i:05d}.jpg", quality=90)


def pil_loop(root: Path, out: Path, size: int) -> int:
    n = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        with Image.open(path) as img:
            rgb = img.convert("RGB").resize((size, size), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        rgb.save(buf, format="JPEG", quality=95)
        (out / f"{n:05d}.jpg").write_bytes(buf.getvalue())
        n += 1
    return n


def measure_memory(raw: Path, out: Path, size: int) -> None:
    """In a fresh process: run the stage, print peak RSS (MB) of the main process and of its worst worker."""
    preprocess(raw, out / "stage", out / "manifest.csv", out / "rejects.csv", size=size, quality=95, workers=None,
               min_size=1, max_pixels=MAX_PIXELS)
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"{main_mb:.0f} {worker_mb:.0f}")


def memory_table(counts: list[int], size: int) -> None:
    for n in counts:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            make_files(tmp / "raw", n)
            done = subprocess.run([sys.executable, __file__, "--measure-memory", str(tmp), "--size", str(size)],
                                  capture_output=True, text=True, check=True)
            main_mb, worker_mb = done.stdout.split()[-2:]
            print(f"{n:6d} files: peak RSS main process {main_mb} MB, largest worker {worker_mb} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2400)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--memory", type=int, nargs="+", help="file counts to measure peak RSS for")
    parser.add_argument("--measure-memory", type=Path, help=argparse.SUPPRESS)  # internal: one fresh process
    args = parser.parse_args()
    if args.measure_memory:
        return measure_memory(args.measure_memory / "raw", args.measure_memory, args.size)
    if args.memory:
        return memory_table(args.memory, args.size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_files(tmp / "raw", args.files)
        (tmp / "loop").mkdir()
        start = time.perf_counter()
        n = pil_loop(tmp / "raw", tmp / "loop", args.size)
        loop_s = time.perf_counter() - start
        seconds = {}
        for workers in (1, None):  # the stage's code on one process, then on every core
            start = time.perf_counter()
            kept, rejected = preprocess(tmp / "raw", tmp / "stage", tmp / "manifest.csv", tmp / "rejects.csv",
                                        size=args.size, quality=95, workers=workers,
                                        min_size=1, max_pixels=MAX_PIXELS)
            seconds[workers] = time.perf_counter() - start
            assert kept + rejected == n
    print(f"files: {n} mixed-size (96-512 px, 1/4 PNG), output {args.size} px, cores: {worker_count(None)}")
    print(f"single-process PIL loop        : {n / loop_s:8.1f} img/s ({loop_s:.2f} s)")
    print(f"preprocess stage, 1 process    : {n / seconds[1]:8.1f} img/s ({seconds[1]:.2f} s)")
    print(f"preprocess stage, all cores    : {n / seconds[None]:8.1f} img/s ({seconds[None]:.2f} s)")
    print(f"speed-up of the stage vs loop  : {loop_s / seconds[None]:.2f}x")


if __name__ == "__main__":
    main()
