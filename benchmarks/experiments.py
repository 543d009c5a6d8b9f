"""Experiment workflows, timed: a queued experiment against a plain `dvc repro` of the same change, sharing
through the default remote (push, then `dvc pull` + no-op `dvc repro` in a fresh clone), and `pokedex report`.

    python benchmarks/experiments.py [--config debug=quick] [--screenshot report.png]

Runs in a scratch git repository holding a copy of the project (nothing in this checkout changes), with
params composed from `--config` (default `debug=quick`: the overheads, not the training, are measured).
The three runs change `train.lr0` to three different values, so that DVC's run cache serves none of them.
With `--screenshot`, headless Chromium renders the report to a PNG (Debian package `chromium`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pokedex.core.config import compose_params  # noqa: E402
from pokedex.deploy.k210 import nncase_python  # noqa: E402
from tests.project_copy import commit, copy_project  # noqa: E402 - the scratch repository the tests use too

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def run(args: list[str], cwd: Path) -> float:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               POKEDEX_NNCASE_PYTHON=str(nncase_python()))
    env.pop("MLFLOW_TRACKING_URI", None)
    start = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def back_to_head(repo: Path) -> None:
    """Workspace (params.yaml, dvc.lock, metrics and outputs) as committed in HEAD."""
    run(["git", "checkout", "--", "."], repo)
    run(["dvc", "checkout", "--force"], repo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="*", default=["debug=quick"], help="Hydra overrides for the scratch params")
    parser.add_argument("--screenshot", type=Path, help="render the report to this PNG with headless Chromium")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="pokedex-bench-") as tmp:
        base = Path(tmp)
        repo = copy_project(base / "repo", args.config)
        full = run(["dvc", "repro"], repo)
        commit(repo, "baseline")
        print(f"config {' '.join(args.config)}: first full dvc repro {full:.1f} s")

        # The same change (train.lr0, so train -> evaluate, export-onnx, compile-kmodel rerun) three ways.
        compose_params(repo / "params.yaml", [*args.config, "train.lr0=0.0031"], root=repo)
        plain = run(["dvc", "repro"], repo)
        back_to_head(repo)
        # `dvc exp run -S` composes conf/ afresh: the config overrides go along with the change
        config = [arg for override in args.config for arg in ("-S", override)]
        workspace_exp = run(["dvc", "exp", "run", *config, "-S", "train.lr0=0.0032"], repo)
        back_to_head(repo)
        queue = run(["dvc", "exp", "run", "--queue", *config, "-S", "train.lr0=0.0033"], repo)
        queued = run(["dvc", "exp", "run", "--run-all"], repo)
        print(f"train.lr0 change: dvc repro {plain:.1f} s; dvc exp run {workspace_exp:.1f} s "
              f"({workspace_exp / plain:.2f}x); queued: --queue {queue:.1f} s + --run-all {queued:.1f} s "
              f"= {queue + queued:.1f} s ({(queue + queued) / plain:.2f}x of dvc repro)")

        push = run(["dvc", "push"], repo)
        clone = base / "clone"
        run(["git", "clone", "-q", str(repo), str(clone)], base)
        pull = run(["dvc", "pull"], clone)
        noop = run(["dvc", "repro"], clone)
        print(f"dvc push {push:.1f} s; fresh clone: dvc pull {pull:.1f} s + no-op dvc repro {noop:.1f} s "
              f"= {pull + noop:.1f} s")

        page = repo / "reports" / "experiments.html"
        report = run(["pokedex", "report", "-o", str(page)], repo)
        print(f"pokedex report {report:.1f} s ({page.stat().st_size / 1e3:.0f} kB, self-contained)")
        if args.screenshot:
            chromium = shutil.which("chromium") or shutil.which("chromium-browser")
            if chromium is None:
                raise SystemExit("--screenshot needs headless Chromium: apt-get install chromium")
            run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={base / 'chromium'}", "--window-size=1400,1800",
                 f"--screenshot={args.screenshot.resolve()}", page.as_uri()], base)
            print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
