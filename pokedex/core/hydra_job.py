"""Which Hydra job this process runs: a stage may be one job of a multirun (`python -m stages.train -m ...`)."""

from __future__ import annotations

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode


def multirun_job():
    """Hydra's config of this multirun job, or None outside a multirun."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return HydraConfig.get()
    return None
