"""No-op `dvc repro` time, and which stages an evaluate-only change would rerun; and how DVC's no-op time grows
with the number of files a stage writes, tracked as a folder or as one archive of it (as this project does).

    python benchmarks/dvc_timings.py [--repeat 5]                    # this project, after `make run`
    python benchmarks/dvc_timings.py --growth 10000 50000 100000     # synthetic: one stage writing N files

Run the first in the repository root (the pipeline must be up to date). The param change is made on a copy
of params.yaml and undone at the end; `dvc repro --dry` only lists what would run. The second builds a
throwaway git + DVC repository per N and layout whose one stage writes N small images into NNNN/ folders (as
ingest does), runs it once, then times the no-op `dvc repro`: DVC checks every file of a folder it tracks
(`folder`), one file for an archive (`archive`: the stage packs the folder with pokedex.core.archive.pack and
dvc.yaml names the .tar, the folder is git-ignored).
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

# the synthetic stage: N files of ~1 KB (unique bytes each, so DVC stores N objects) in 1000-file folders
WRITE_FILES = """
import sys
from pathlib import Path
n = int(sys.argv[1])
for i in range(n):
    path = Path("data/images") / f"{i // 1000 + 1:04d}" / f"{i:06d}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(i.to_bytes(4, "little") * 256)
if sys.argv[2] == "archive":
    from pokedex.core.archive import pack
    pack(Path("data/images"))
"""
LAYOUTS = {"folder": "data/images", "archive": "data/images.tar"}  # what dvc.yaml names as the stage's output


def dvc(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(["dvc", *args], capture_output=True, text=True, check=True, cwd=cwd)
    return done.stdout + done.stderr


def no_op_seconds(repeat: int, cwd: Path | None = None) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = dvc("repro", cwd=cwd)
        times.append(time.perf_counter() - start)
        if "Running stage" in out:
            raise SystemExit(f"the pipeline in {cwd or Path.cwd()} is not up to date; run `dvc repro` first")
    return times


def growth_seconds(n: int, layout: str, repeat: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="dvc-growth-") as tmp:
        repo = Path(tmp)
        subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
        dvc("init", "-q", cwd=repo)
        dvc("config", "core.analytics", "false", cwd=repo)
        (repo / "write_files.py").write_text(WRITE_FILES)
        (repo / ".gitignore").write_text("/data/images/\n")
        (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"write": {
            "cmd": f"python write_files.py {n} {layout}", "deps": ["write_files.py"], "outs": [LAYOUTS[layout]]}}}))
        dvc("repro", cwd=repo)
        return no_op_seconds(repeat, repo)


def growth(counts: list[int], repeat: int) -> None:
    print("| files a stage writes | tracked as | no-op `dvc repro` (median s) | min | max |\n|---:|---|---:|---:|---:|")
    for n in counts:
        for layout in LAYOUTS:
            times = growth_seconds(n, layout, repeat)
            print(f"| {n:,} | {layout} | {statistics.median(times):.2f} | {min(times):.2f} | {max(times):.2f} |",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--growth", type=int, nargs="+", metavar="N", help="synthetic stages writing N files each")
    args = parser.parse_args()
    if args.growth:
        growth(args.growth, args.repeat)
        return

    times = no_op_seconds(args.repeat)
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
