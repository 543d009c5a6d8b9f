"""How long parts of a stage took on this machine: logged, recorded in MLflow with the stage's metrics, and
written to reports/timings/<stage>.json, which neither git nor DVC track.

Never into the files DVC compares (metrics, reports, models): those hold what the model does, so the same params
and data give the same bytes, and `dvc metrics diff` shows only real changes.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)


class Timings(dict):
    """{name: value}; the name says the unit (`compile_s`, `latency_ms`)."""

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Seconds the block took, as `name`."""
        start = time.perf_counter()
        yield
        self[name] = round(time.perf_counter() - start, 3)

    def write(self, folder: Path, stage: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stage}.json").write_text(json.dumps(self, indent=2) + "\n", encoding="utf-8")
        log.info("%s timings (not in its metrics): %s", stage, dict(self))
