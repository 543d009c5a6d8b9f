"""No-op `dvc repro` time, and which stages an evaluate-only change would rerun.

    python benchmarks/dvc_timings.py [--repeat 5]

Run after `make run` in the repository root (the pipeline must be up to date). The param change is
made on a copy of params.yaml and undone at the end; `dvc repro --dry` only lists what would run.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path

import yaml


def dvc(*args: str) -> str:
    done = subprocess.run(["dvc", *args], capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        out = dvc("repro")
        times.append(time.perf_counter() - start)
        if "Running stage" in out:
            raise SystemExit("the pipeline is not up to date; run `make run` first")
    print(f"no-op dvc repro: median {statistics.median(times):.2f} s over {args.repeat} runs "
          f"(min {min(times):.2f}, max {max(times):.2f})")

    params = Path("params.yaml")
    backup = Path(".params.yaml.bench")
    shutil.copy2(params, backup)
    try:
        cfg = yaml.safe_load(params.read_text())
        cfg["evaluate"]["latency_images"] += 1
        params.write_text(yaml.safe_dump(cfg, sort_keys=False))
        would_run = re.findall(r"Running stage '([^']+)'", dvc("repro", "--dry"))
        print(f"evaluate.latency_images changed -> stages that would rerun: {would_run}")
    finally:
        shutil.move(backup, params)


if __name__ == "__main__":
    main()
