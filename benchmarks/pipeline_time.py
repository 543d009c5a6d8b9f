"""Wall time of the whole default pipeline, stage by stage: `dvc repro --force` in the repository root.

    python benchmarks/pipeline_time.py

Run with the project's venv active (after `make setup`). Rebuilds every stage from scratch, so it takes as
long as `make run` minus the set-up; prints seconds per stage and the total, then the metrics.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

from common import argument_parser

STAGE = re.compile(r"Running stage '([^']+)'")


def main() -> None:
    argument_parser(__doc__).parse_args()  # no options: --help says what it does before it rebuilds everything
    start = time.perf_counter()
    marks: list[tuple[str, float]] = []
    proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "--force"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if m := STAGE.search(line):
            marks.append((m.group(1), time.perf_counter()))
    if proc.wait() != 0:
        raise SystemExit("dvc repro failed")
    end = time.perf_counter()
    for (name, t0), (_, t1) in zip(marks, marks[1:] + [("", end)]):
        print(f"{name:<12} {t1 - t0:7.1f} s")
    print(f"{'total':<12} {end - start:7.1f} s")
    for report in ("reports/eval/metrics.json", "reports/onnx_parity.json", "reports/kmodel_metrics.json"):
        print(report, json.loads(Path(report).read_text()))


if __name__ == "__main__":
    main()
