"""Ultralytics, kept offline and inside the project.

Ultralytics reaches for the network (font download, hub sync, pip auto-install, pretrained weights) and
for the user's home directory (settings). Importing it through `ultralytics_offline()` points its config
at `<project>/.ultralytics`, turns those off, and provides the font it would download.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / ".ultralytics"


def ultralytics_offline():
    """Import ultralytics with network and home-directory side effects disabled; returns the module."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(CONFIG_DIR))
    user_dir = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    # Plots want Arial and download it when missing; matplotlib's bundled DejaVu Sans stands in for it.
    font = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (user_dir / name).exists():
            shutil.copyfile(font, user_dir / name)

    import ultralytics
    from ultralytics.utils import SETTINGS

    wanted = {
        "sync": False,  # no analytics
        "datasets_dir": str(CONFIG_DIR / "datasets"),
        "weights_dir": str(CONFIG_DIR / "weights"),
        "runs_dir": str(CONFIG_DIR / "runs"),
        # integrations that would start their own tracking runs inside ours
        "clearml": False, "comet": False, "dvc": False, "mlflow": False, "raytune": False,
        "tensorboard": False, "wandb": False,
    }
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)
    return ultralytics
