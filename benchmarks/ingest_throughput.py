"""Ingest throughput of data=pokeapi: GIF frames decoded per second with 1 worker and with every core, in one run.

    python benchmarks/ingest_throughput.py                 # the configured package (fetched once into the cache)
    python benchmarks/ingest_throughput.py --root /src/sprites

Fetching is excluded: the package is fetched (or found in the cache) before the clock starts. Each run writes
into a temporary folder. Numbers are only comparable within one run: the machines are noisy.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from pokedex.core.parallel import worker_count
from pokedex.data.sources import cache_dir, pokeapi

from common import compose_cfg


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", help="a sprites tree instead of the pinned package")
    args = parser.parse_args()
    data = compose_cfg().data
    cfg = data.pokeapi
    if args.root:
        cfg.root = args.root
    else:
        pokeapi.fetch_package(str(cfg.package), str(cfg.integrity), cache_dir())  # outside the timing
    results = {}
    for workers in sorted({1, worker_count(None)}):
        data.workers = workers
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "raw").mkdir()
            result = pokeapi.ingest(data, Path(tmp) / "raw")
        results[workers] = result.frames_seen / result.seconds
        print(f"{workers} worker(s): {result.files} files, {result.frames_seen} frames decoded, {result.written} "
              f"written in {result.seconds:.1f} s = {results[workers]:.0f} frames/s")
    if len(results) > 1:
        print(f"speed-up with {max(results)} workers: {results[max(results)] / results[1]:.2f}x")


if __name__ == "__main__":
    main()
