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


# a fixed, minimal environment: nothing from the caller's shell changes what nncase writes
WORKER_ENV = {"PATH": os.defpath, "LC_ALL": "C"}

# nncase 1.9 builds each KPU activation table (16 segment words, then two words of biases) on the stack without
# clearing it, so the 4 reserved bits at the top of each segment word hold whatever the stack held: they differ
# between runs and machines. The KPU ignores them; they are cleared after compiling, so one ONNX and one
# calibration set give one kmodel on every machine. A table is recognised by its shape: 8-byte words whose first
# segment starts at the lowest 36-bit x (nncase writes it as {x_start=0x800000000, mul=0, shift=0}) and whose 16
# segment starts (bits 24-59, signed) never decrease.
RESERVED_BITS = np.uint64(0xF000_0000_0000_0000)
FIRST_SEGMENT = np.uint64(0x0800_0000_0000_0000)
SEGMENTS = 16


def clear_reserved_bits(kmodel: bytes) -> tuple[bytes, int]:
    """The kmodel with the reserved bits of every KPU activation table cleared, and how many tables it found."""
    words = np.frombuffer(kmodel[: len(kmodel) // 8 * 8], dtype="<u8").copy()
    tables = 0
    for start in np.flatnonzero((words & ~RESERVED_BITS) == FIRST_SEGMENT):
        segment = words[start:start + SEGMENTS]
        if len(segment) < SEGMENTS:
            continue
        x_start = ((segment >> np.uint64(24)) & np.uint64(2**36 - 1)).astype(np.int64)
        x_start = np.where(x_start >= 2**35, x_start - 2**36, x_start)
        if (np.diff(x_start) >= 0).all():
            words[start:start + SEGMENTS] &= ~RESERVED_BITS
            tables += 1
    return words.tobytes() + kmodel[len(words) * 8:], tables


def _run(args: list[str], work: Path) -> str:
    """The worker on files in `work` (nncase also writes kmodel_info.txt there)."""
    shutil.copyfile(WORKER, work / WORKER.name)
    done = subprocess.run([str(nncase_python()), WORKER.name, *args], capture_output=True, text=True, cwd=work,
                          env=WORKER_ENV)
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
        kmodel, _ = clear_reserved_bits((work / "model.kmodel").read_bytes())
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(kmodel)
    return parse_memory_summary(stdout)


def simulate(kmodel: Path, images: np.ndarray) -> np.ndarray:
    """Outputs of the kmodel in nncase's K210 simulator, one row per uint8 NCHW image."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        shutil.copyfile(kmodel, work / "model.kmodel")
        np.save(work / "inputs.npy", np.ascontiguousarray(images, dtype=np.uint8))
        _run(["simulate", "model.kmodel", "inputs.npy", "outputs.npy"], work)
        return np.load(work / "outputs.npy")
