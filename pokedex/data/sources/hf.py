"""`data=hf`: a Hugging Face dataset, from the hub or a local copy (save_to_disk folder, parquet files, image folder).

Nothing is decoded here: each row's image bytes are written as they come to raw/NNNN/<split>-<row>.<ext>, and
preprocess decides what is usable. A row without image bytes goes to the ingest rejects report; rows of classes
above `data.num_classes` are skipped and counted.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig

from pokedex.core.errors import PokedexError
from pokedex.data.classes import ALL_POKEMON
from pokedex.data.sources.base import IngestResult, cache_dir

UNLABELLED = "unlabelled"  # rows whose label is no Pokédex id: preprocess rejects everything outside NNNN/
SPLIT_NAMES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
               "test": "test"}
PIL_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "GIF": ".gif", "TIFF": ".tif",
              "MPO": ".jpg"}


@contextmanager
def offline_datasets(datasets) -> Iterator[None]:
    """A local copy is read without the network: `datasets` would still send its download-count request."""
    saved = datasets.config.HF_HUB_OFFLINE, datasets.config.HF_UPDATE_DOWNLOAD_COUNTS
    datasets.config.HF_HUB_OFFLINE, datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = True, False
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_UPDATE_DOWNLOAD_COUNTS = saved


def _is_saved_to_disk(path: Path) -> bool:
    return any((path / name).is_file() for name in ("dataset_dict.json", "state.json"))


def open_hf(cfg: DictConfig) -> dict:
    """{split: dataset} from a hub repo id or a local copy (save_to_disk folder, parquet files or an imagefolder).

    Never with `trust_remote_code`; the token, if any, comes from the environment (HF_TOKEN), as the
    `datasets` library reads it. Streaming (or memory-mapped Arrow for save_to_disk) keeps RAM flat.
    """
    import datasets

    path = str(cfg.path)
    local = Path(path).expanduser()
    streaming = bool(cfg.streaming)
    # datasets' cache and its locks in ours, not under ~/.cache/huggingface
    local_kwargs = {"streaming": streaming, "cache_dir": str(cache_dir() / "huggingface")}
    try:
        if local.is_dir() and _is_saved_to_disk(local):
            loaded = datasets.load_from_disk(str(local))  # memory-mapped, never all in RAM
        elif local.is_dir() and any(local.rglob("*.parquet")):
            with offline_datasets(datasets):
                loaded = datasets.load_dataset("parquet", data_dir=str(local), **local_kwargs)
        elif local.is_dir():
            with offline_datasets(datasets):
                loaded = datasets.load_dataset("imagefolder", data_dir=str(local), **local_kwargs)
        elif local.exists() or path.startswith((".", "/", "~")):
            raise PokedexError(f"data.hf.path={path} is not a dataset folder (save_to_disk output, parquet files "
                               "or an image folder tree).")
        else:
            loaded = datasets.load_dataset(path, name=cfg.get("name"), revision=cfg.get("revision"),
                                           streaming=streaming)
    except PokedexError:
        raise
    except (ConnectionError, OSError) as exc:
        if local.exists():
            raise PokedexError(f"data.hf.path={path} cannot be read as a dataset ({type(exc).__name__}: {exc}).") from exc
        raise PokedexError(f"the Hugging Face hub cannot be reached for data.hf.path={path} and no local cache "
                           "holds it; where there is network, save it with `datasets` (save_to_disk) or download "
                           "its parquet files, then set data.hf.path to that folder.") from exc
    except Exception as exc:  # noqa: BLE001 - e.g. DatasetNotFoundError, a gated repo without HF_TOKEN
        raise PokedexError(f"data.hf.path={path} could not be loaded ({type(exc).__name__}: {exc}); check the "
                           "repo id, data.hf.name/revision, and HF_TOKEN for a gated dataset.") from exc
    splits = dict(loaded) if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)) else {"train": loaded}
    wanted = list(cfg.splits) if cfg.get("splits") else list(splits)
    if missing := [s for s in wanted if s not in splits]:
        raise PokedexError(f"data.hf.splits lists {', '.join(missing)}, but {path} has only {', '.join(splits)}.")
    return {s: splits[s] for s in wanted}


def image_bytes(value) -> tuple[bytes | None, str]:
    """(bytes, file suffix) of an image cell: {'bytes', 'path'} (Image feature, undecoded), raw bytes, a file
    path, or a PIL image. The suffix comes from the path, else from the bytes' header (.bin if unknown)."""
    from PIL import Image, UnidentifiedImageError

    data, name = None, ""
    if isinstance(value, dict):
        data, name = value.get("bytes"), value.get("path") or ""
        if data is None and name and Path(name).is_file():
            data = Path(name).read_bytes()
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str):
        name = value
        data = Path(value).read_bytes() if Path(value).is_file() else None
    elif isinstance(value, Image.Image):
        buffer = io.BytesIO()
        value.save(buffer, format="PNG")
        data, name = buffer.getvalue(), "image.png"
    suffix = Path(name).suffix.lower()
    if data is not None and suffix not in {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif"}:
        try:
            with Image.open(io.BytesIO(data)) as img:
                suffix = PIL_SUFFIX.get(img.format or "", ".bin")
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
            suffix = ".bin"  # written anyway: preprocess tells what is wrong with it (it reads the content)
    return data, suffix


def label_to_dex(label, base: int, class_names: list[str] | None) -> int | None:
    """Pokédex id of a label cell: an int (0- or 1-based, per data.hf.label_base), or a ClassLabel whose
    names are the ids themselves ('0001', as an imagefolder of NNNN folders yields)."""
    if label is None:
        return None
    if class_names and all(n.isdigit() for n in class_names):
        return int(class_names[int(label)])
    try:
        return int(label) + 1 - base
    except (TypeError, ValueError):
        return None


def ingest(data: DictConfig, raw_dir: Path) -> IngestResult:
    """Write every row's image bytes to raw_dir/NNNN/<split>-<row>.<ext> (split names normalised)."""
    import datasets

    cfg, num_classes = data.hf, int(data.num_classes)
    if int(cfg.label_base) not in (0, 1):
        raise PokedexError(f"data.hf.label_base={cfg.label_base} must be 0 (label 0 is #0001) or 1 (label 1 is #0001).")
    result = IngestResult(num_classes=num_classes)
    for split, ds in open_hf(cfg).items():
        features = ds.features or {}
        for column in (cfg.image_column, cfg.label_column):
            if features and column not in features:
                raise PokedexError(f"{cfg.path} has no column {column!r} (columns: {', '.join(features)}); "
                                   "set data.hf.image_column / data.hf.label_column.")
        if isinstance(features.get(cfg.image_column), datasets.Image):
            ds = ds.cast_column(cfg.image_column, datasets.Image(decode=False))  # the bytes, undecoded
        label_feature = features.get(cfg.label_column)
        class_names = label_feature.names if isinstance(label_feature, datasets.ClassLabel) else None
        split_name = SPLIT_NAMES.get(split, split)
        try:
            _write_rows(ds, split, split_name, cfg, class_names, raw_dir, num_classes, result)
        except (PokedexError, KeyboardInterrupt):
            raise
        except Exception as exc:  # noqa: BLE001 - a broken shard or file: one sentence, not a traceback
            raise PokedexError(f"reading split {split!r} of data.hf.path={cfg.path} failed ({type(exc).__name__}: "
                               f"{exc}); its files may be incomplete or corrupt: download them again.") from exc
    return result


def _write_rows(ds, split: str, split_name: str, cfg: DictConfig, class_names: list[str] | None, raw_dir: Path,
                num_classes: int, result: IngestResult) -> None:
    """Each row's image bytes to raw_dir/NNNN/<split>-<row>.<ext>; rows above num_classes are counted."""
    for row_index, row in enumerate(ds):
        source = f"{split}[{row_index}]"
        dex = label_to_dex(row.get(cfg.label_column), int(cfg.label_base), class_names)
        if dex is not None and num_classes < dex <= ALL_POKEMON:
            result.skipped += 1
            continue
        data, suffix = image_bytes(row.get(cfg.image_column))
        if data is None:
            result.rejects.append((source, f"no image bytes in column {cfg.image_column!r}"))
            continue
        folder = f"{dex:04d}" if dex is not None and 1 <= dex <= ALL_POKEMON else UNLABELLED
        target = raw_dir / folder / f"{split_name}-{row_index:06d}{suffix}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        result.written += 1
