"""Drive nncase 1.x (K210 compiler and simulator) in its own Python 3.10 venv.

nncase 1.x ships wheels only for Python <= 3.10, and importing it next to onnxruntime crashes, so it runs
as a subprocess (pokedex/deploy/nncase_worker.py) under `.venv-nncase`, which `make setup` creates.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from pokedex import CHECKOUT, project_dir
from pokedex.core.errors import PokedexError

WORKER = Path(__file__).resolve().parent / "nncase_worker.py"
MEMORY_LINE = re.compile(r"^\s*\.?(input|output|data|MODEL|TOTAL)\s+[\d.]+\s+\w+\s+\((\d+) B\)", re.MULTILINE)


def nncase_python() -> Path:
    """The nncase venv's interpreter: $POKEDEX_NNCASE_PYTHON, else the first .venv-nncase/bin/python found in
    the project, in DVC_ROOT, or beside the running venv: a queued experiment runs in a temporary copy of the
    project that has neither venv, with the main checkout's .venv on PATH and in DVC_ROOT."""
    if os.environ.get("POKEDEX_NNCASE_PYTHON"):
        candidates = [Path(os.environ["POKEDEX_NNCASE_PYTHON"])]
    else:
        homes = [CHECKOUT, project_dir(), Path(sys.prefix).parent]
        candidates = [home / ".venv-nncase" / "bin" / "python" for home in homes]
    python = next((c for c in candidates if c.exists()), candidates[0])
    if not python.exists():
        raise PokedexError(
            f"The nncase environment {python} is missing; install Python 3.10 (e.g. `pyenv install 3.10` or "
            "your distribution's python3.10 package) and run `make setup` to create it."
        )
    return python


# ADDR_NO_RANDOMIZE (linux/personality.h): nncase 1.9 leaves stack bits in reserved fields of a kmodel (the top
# nibble of each batchnorm word); with the same addresses, environment and arguments they are the same bits.
NO_ADDRESS_RANDOMIZATION = 0x0040000
WORKER_ENV = {"PATH": os.defpath, "LC_ALL": "C"}


def _same_addresses() -> None:
    """Run between fork and exec of the worker: no address space randomisation for it (Linux only)."""
    import ctypes

    libc = ctypes.CDLL(None)
    libc.personality(NO_ADDRESS_RANDOMIZATION | (libc.personality(0xFFFFFFFF) & 0xFFFFFFFF))


def _run(args: list[str], work: Path) -> str:
    """The worker on files in `work`, named by the same relative paths every time, so the same inputs compile
    to the same kmodel bytes; nncase also writes kmodel_info.txt there."""
    shutil.copyfile(WORKER, work / WORKER.name)
    done = subprocess.run([str(nncase_python()), WORKER.name, *args], capture_output=True, text=True, cwd=work,
                          env=WORKER_ENV, preexec_fn=_same_addresses if sys.platform.startswith("linux") else None)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PokedexError(f"nncase failed ({args[0]}): {tail[0]}")
    return done.stdout


def parse_memory_summary(text: str) -> dict[str, int]:
    """nncase's 'MEMORY USAGES' block as bytes: input, output, data, model, total."""
    found = {name.lower(): int(size) for name, size in MEMORY_LINE.findall(text)}
    if set(found) != {"input", "output", "data", "model", "total"}:
        raise PokedexError("nncase printed no complete memory summary; its output format may have changed.")
    return found


def compile_kmodel(onnx: Path, calibration: np.ndarray, out: Path, method: str,
                   mean: tuple[float, float, float] = (0.0, 0.0, 0.0),
                   std: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> dict[str, int]:
    """Compile with uint8 post-training quantisation; calibration is uint8 NCHW. Returns the memory summary."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copyfile(onnx, work / "model.onnx")
        np.save(work / "calib.npy", np.ascontiguousarray(calibration, dtype=np.uint8))
        stdout = _run(["compile", "model.onnx", "calib.npy", "model.kmodel", "--method", method,
                       "--mean", *map(str, mean), "--std", *map(str, std)], work)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(work / "model.kmodel", out)
    return parse_memory_summary(stdout)


def simulate(kmodel: Path, images: np.ndarray) -> np.ndarray:
    """Outputs of the kmodel in nncase's K210 simulator, one row per uint8 NCHW image."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copyfile(kmodel, work / "model.kmodel")
        np.save(work / "inputs.npy", np.ascontiguousarray(images, dtype=np.uint8))
        _run(["simulate", "model.kmodel", "inputs.npy", "outputs.npy"], work)
        return np.load(work / "outputs.npy")
