"""Ultralytics, kept offline and inside the project.

Ultralytics reaches for the network (font download, hub sync, pip auto-install, pretrained weights) and
for the user's home directory (settings). Importing it through `ultralytics_offline()` points its config
at `<project>/.ultralytics`, turns those off, and provides the font it would download.
"""

from __future__ import annotations

import csv
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import yaml

from pokedex import CHECKOUT
from pokedex.core.errors import PokedexError

CONFIG_DIR = CHECKOUT / ".ultralytics"


def ultralytics_offline():
    """Import ultralytics with network and home-directory side effects disabled; returns the module."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "0")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(CONFIG_DIR))
    os.environ.setdefault("MPLCONFIGDIR", str(CONFIG_DIR / "matplotlib"))  # matplotlib's font cache, not ~/.cache
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


def training_repeats(dataset_dir: Path, repeat: Mapping[str, int] | None) -> dict[str, int]:
    """Training image name -> how many times it is seen per epoch, for the images whose source (splits.csv)
    holds a key of `repeat` (`augment.repeat`, e.g. {other-dream-world: 4}); the others once. None or {}
    (augment=none): every picture once."""
    if not repeat:
        return {}
    for part, times in repeat.items():
        if not str(part) or not isinstance(times, int) or times < 1:
            raise PokedexError(f"augment.repeat.{part}={times!r} must map a non-empty part of a source name to a whole "
                               "number of times, 1 or more (e.g. augment.repeat={other-dream-world: 4}).")
    table = dataset_dir / "splits.csv"
    if not table.is_file():
        raise PokedexError(f"augment.repeat needs {table}, which names each picture's source; rebuild the dataset "
                           "(dvc repro yolo-format) or set augment.repeat={}.")
    with table.open(newline="", encoding="utf-8") as f:
        rows = [row for row in csv.DictReader(f) if row["split"] == "train"]
    times = {row["image"]: max([n for part, n in repeat.items() if str(part) in Path(row["source"]).name] or [1])
             for row in rows}
    return {image: n for image, n in times.items() if n > 1}


@contextmanager
def ultralytics_data(dataset_dir: Path, task: str, repeat: Mapping[str, int] | None = None) -> Iterator[Path]:
    """What Ultralytics reads for a task, as links to the YOLO dataset in a temporary folder.

    classify: a class-folder tree `{train,validation,test}/{id:04d}/*.jpg` (returns its root); a training image
    of a source named in `repeat` gets that many links (`<stem>~r<k>.jpg`), so it is drawn that many times an epoch;
    detect: `images/` and `labels/` with a data.yaml (returns the data.yaml).
    Ultralytics writes caches next to what it reads (train.cache, labels/train.cache); in this folder they
    vanish with it instead of changing the DVC-tracked dataset. Links, not copies: building it is cheap.
    """
    dataset_dir = dataset_dir.resolve()
    extra = training_repeats(dataset_dir, repeat) if task == "classify" else {}
    with tempfile.TemporaryDirectory(prefix="pokedex-data-") as tmp:
        view = Path(tmp)
        for split_dir in sorted((dataset_dir / "images").iterdir()):
            for image in sorted(split_dir.iterdir()):
                # class folder = Pokédex id; Ultralytics numbers sorted folders, so index = id - 1
                link = (view / split_dir.name / image.name[:4] if task == "classify" else view / "images" / split_dir.name) / image.name
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(image)
                for k in range(1, extra.get(image.name, 1) if split_dir.name == "train" else 1):
                    link.with_name(f"{image.stem}~r{k}{image.suffix}").symlink_to(image)
        if task == "classify":
            yield view
            return
        # Image folders hold file links (Ultralytics resolves folder paths); label folders may be links.
        (view / "labels").mkdir()
        for split in (dataset_dir / "labels").iterdir():
            (view / "labels" / split.name).symlink_to(split, target_is_directory=True)
        data = yaml.safe_load((dataset_dir / "data.yaml").read_text(encoding="utf-8"))
        (view / "data.yaml").write_text(yaml.safe_dump({**data, "path": str(view)}, allow_unicode=True), encoding="utf-8")
        yield view / "data.yaml"
