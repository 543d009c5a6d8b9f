"""Real-data sources (folder tree, Hugging Face datasets) and preprocessing of every kind of bad file.

Every fixture is built here: small images drawn with PIL, local Hugging Face datasets written with the real
`datasets` library (save_to_disk, parquet, imagefolder), a hand-made PNG header claiming 10 gigapixels.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from pokedex.core.errors import PokedexError
from pokedex.data.classes import ALL_POKEMON, national_dex, read_class_table
from pokedex.data.ingest import ingest
from pokedex.data.preprocess import MAX_PIXELS, preprocess
from pokedex.data.yolo_format import write_yolo_dataset

from .conftest import make_cfg

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def jpeg_bytes(colour, size=(48, 40), mode="RGB", **save) -> bytes:
    buffer = io.BytesIO()
    img = Image.new("RGB", size, colour)
    # a second colour block so that images of one colour but different positions differ
    img.paste(tuple(255 - c for c in colour), (0, 0, size[0] // 3, size[1] // 3))
    img.convert(mode).save(buffer, format="JPEG", **save)
    return buffer.getvalue()


def picture(seed: int, size=(48, 40)) -> Image.Image:
    img = Image.new("RGB", size, COLOURS[seed % len(COLOURS)])
    img.paste((seed * 37 % 256, seed * 91 % 256, seed * 13 % 256), (seed % 20, seed % 15, seed % 20 + 10, seed % 15 + 10))
    return img


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height: what a decompression bomb looks like before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def run_preprocess(raw: Path, tmp_path: Path, min_size: int = 1, max_pixels: int = MAX_PIXELS) -> tuple[dict, dict, int, int]:
    out, manifest, rejects = tmp_path / "out", tmp_path / "manifest.csv", tmp_path / "rejects.csv"
    n_ok, n_bad = preprocess(raw, out, manifest, rejects, size=32, quality=90, workers=2,
                             min_size=min_size, max_pixels=max_pixels)
    kept = {r["source"]: r for r in read_rows(manifest)}
    reasons = {r["source"]: r["reason"] for r in read_rows(rejects)}
    assert n_ok + n_bad == sum(1 for p in raw.rglob("*") if not p.is_dir())  # nothing lost
    assert len(kept) == n_ok and len(reasons) == n_bad and not set(kept) & set(reasons)
    return kept, reasons, n_ok, n_bad


# --- the shipped class names ----------------------------------------------------------------------------------

def test_shipped_table_names_all_1025_pokemon():
    names = national_dex()
    assert len(names) == ALL_POKEMON == len(set(names.values())) and sorted(names) == list(range(1, 1026))
    anchors = {1: "Bulbasaur", 25: "Pikachu", 150: "Mewtwo", 151: "Mew", 386: "Deoxys", 493: "Arceus",
               649: "Genesect", 721: "Volcanion", 809: "Melmetal", 905: "Enamorus", 1025: "Pecharunt"}
    assert {i: names[i] for i in anchors} == anchors
    assert len(national_dex(386)) == 386 and max(national_dex(151)) == 151
    with pytest.raises(PokedexError, match="data.num_classes=1026"):
        national_dex(1026)


# --- preprocessing survives anything ---------------------------------------------------------------------------

def test_preprocess_handles_every_kind_of_bad_and_odd_file(tmp_path):
    raw = tmp_path / "raw"
    c1, c2 = raw / "0001", raw / "0002"
    c1.mkdir(parents=True)
    c2.mkdir()
    for i in range(3):
        picture(i).save(c1 / f"good{i}.jpg")
    (c1 / "zero.jpg").write_bytes(b"")
    (c1 / "text.png").write_text("not an image at all")
    good = (c1 / "good0.jpg").read_bytes()
    (c1 / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (c1 / "bomb.png").write_bytes(png_header_only(100_000, 100_000))
    picture(5, (10, 8)).save(c1 / "tiny.png")
    (c1 / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    os.mkfifo(c1 / "pipe.jpg")
    # odd but usable: each must come out as a 32x32 RGB JPEG
    (c2 / "cmyk.jpg").write_bytes(jpeg_bytes((10, 200, 90), mode="CMYK"))
    Image.new("RGBA", (40, 40), (255, 0, 0, 0)).save(c2 / "alpha.png")
    Image.new("LA", (40, 40), (90, 255)).save(c2 / "grey_alpha.png")
    picture(7).convert("P").save(c2 / "palette.png")
    Image.new("I;16", (40, 40), 40_000).save(c2 / "sixteen_bit.png")
    frames = [picture(8 + k) for k in range(3)]
    frames[0].save(c2 / "animated.gif", save_all=True, append_images=frames[1:], duration=50)
    rotated = Image.new("RGB", (60, 30), (250, 250, 250))
    rotated.paste((0, 0, 0), (0, 0, 30, 30))  # black on the left half
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the black half ends up on top
    rotated.save(c2 / "exif_rotated.jpg", exif=exif.tobytes())
    picture(11).save(c2 / "webp.webp")
    picture(12).save(c2 / "bitmap.bmp")
    (c2 / "z_dup.jpg").write_bytes((c2 / "webp.webp").read_bytes())  # same content, other name

    kept, reasons, n_ok, n_bad = run_preprocess(raw, tmp_path, min_size=16, max_pixels=50_000_000)
    assert reasons["0001/zero.jpg"] == "empty file (0 bytes)"
    assert reasons["0001/text.png"].startswith("not an image")
    assert reasons["0001/truncated.jpg"].startswith("truncated or corrupt image")
    assert reasons["0001/bomb.png"].startswith("decompression bomb refused: 100000x100000")
    assert reasons["0001/tiny.png"] == "too small: 10x8, under data.min_image_size=16"
    assert reasons["0001/dangling.jpg"] == reasons["0001/pipe.jpg"] == "not a regular file (a broken link, FIFO or socket)"
    assert reasons["0002/z_dup.jpg"] == "exact duplicate of 0002/webp.webp"
    usable = {"cmyk.jpg", "alpha.png", "grey_alpha.png", "palette.png", "sixteen_bit.png", "animated.gif",
              "exif_rotated.jpg", "webp.webp", "bitmap.bmp"}
    assert {Path(s).name for s in kept} >= usable | {"good0.jpg", "good1.jpg", "good2.jpg"}
    out = tmp_path / "out"
    for name in usable:
        with Image.open(out / "0002" / f"{name}.jpg" if not name.endswith(".jpg") else out / "0002" / name) as img:
            assert img.size == (32, 32) and img.mode == "RGB", name
    with Image.open(out / "0002" / "sixteen_bit.png.jpg") as img:  # 40000/65535 of full scale, not clipped white
        assert 140 < img.getpixel((16, 16))[0] < 170
    with Image.open(out / "0002" / "exif_rotated.jpg") as img:  # orientation applied: dark on top
        assert sum(img.getpixel((16, 4))) < 150 and sum(img.getpixel((16, 28))) > 600


# Root reads any file (capabilities DAC_OVERRIDE and DAC_READ_SEARCH): as root, the stage runs without them.
WITHOUT_ROOT_READ = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                     "--inh-caps", "-dac_override,-dac_read_search"] if os.geteuid() == 0 else []


@pytest.mark.skipif(WITHOUT_ROOT_READ and not shutil.which("setpriv"), reason="root without util-linux setpriv")
def test_unreadable_file_is_a_reject(tmp_path):
    raw = tmp_path / "raw"
    (raw / "0001").mkdir(parents=True)
    picture(1).save(raw / "0001" / "readable.jpg")
    picture(2).save(raw / "0001" / "locked.jpg")
    (raw / "0001" / "locked.jpg").chmod(0)
    code = ("import sys; from pathlib import Path; from pokedex.data.preprocess import preprocess; "
            "t = Path(sys.argv[1]); preprocess(t / 'raw', t / 'out', t / 'manifest.csv', t / 'rejects.csv', "
            "size=32, quality=90, workers=1, min_size=1, max_pixels=10**8)")
    subprocess.run([*WITHOUT_ROOT_READ, sys.executable, "-c", code, str(tmp_path)], check=True, capture_output=True)
    assert read_rows(tmp_path / "rejects.csv") == [
        {"source": "0001/locked.jpg", "reason": "cannot be read: permission denied"}]
    assert [r["source"] for r in read_rows(tmp_path / "manifest.csv")] == ["0001/readable.jpg"]


# --- folder source ---------------------------------------------------------------------------------------------

def test_folder_source_copies_a_mixed_tree_with_names_and_a_class_subset(tmp_path):
    root = tmp_path / "photos"
    formats = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "bmp": "BMP", "gif": "GIF"}
    for dex in (1, 2, 3, 4):
        (root / f"{dex:04d}").mkdir(parents=True)
        for k, (suffix, fmt) in enumerate(formats.items()):
            picture(dex * 10 + k).save(root / f"{dex:04d}" / f"p{k}.{suffix}", format=fmt)
    (root / "0001" / "readme.txt").write_text("notes")
    (root / "0002" / "dangling.png").symlink_to(tmp_path / "gone.png")
    (root / "classes.csv").write_text("id,name\n1,Bulby\n2,Ivy\n3,Venus\n")
    cfg = make_cfg("data=folder", f"data.folder.root={root}", "data.num_classes=3")
    raw, classes = tmp_path / "raw", tmp_path / "classes.csv"
    ingest(cfg.data, raw, classes, tmp_path / "ingest_rejects.csv")

    assert sorted(p.name for p in raw.iterdir()) == ["0001", "0002", "0003"]  # 0004 is above num_classes
    assert read_class_table(classes) == {1: "Bulby", 2: "Ivy", 3: "Venus"}
    assert read_rows(tmp_path / "ingest_rejects.csv") == [
        {"source": "0002/dangling.png", "reason": "not a regular file (a broken link, FIFO or socket)"}]
    kept, reasons, _, _ = run_preprocess(raw, tmp_path)
    assert set(reasons) == {"0001/readme.txt"} and reasons["0001/readme.txt"].startswith("not an image")
    assert len(kept) == 3 * len(formats)

    with pytest.raises(PokedexError, match="data.folder.root=.*nowhere is not a directory"):
        ingest(make_cfg("data=folder", f"data.folder.root={tmp_path / 'nowhere'}").data, raw, classes,
               tmp_path / "ingest_rejects.csv")


# --- Hugging Face source ---------------------------------------------------------------------------------------

def test_hf_cell_with_a_decompression_bomb_is_written_for_preprocess_to_refuse(tmp_path, monkeypatch):
    """Sniffing the format must not trip over PIL's own bomb check: one such row would stop the whole ingest."""
    from pokedex.data.preprocess import decode
    from pokedex.data.sources.hf import image_bytes

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 89_478_485)  # Pillow's default, whatever ran before
    data, suffix = image_bytes(png_header_only(100_000, 100_000))
    (tmp_path / f"bomb{suffix}").write_bytes(data)
    assert decode(tmp_path / f"bomb{suffix}", 32, 1, 10**8).startswith("decompression bomb refused: 100000x100000")


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # datasets' own cache: never the user's home
    # offline at once, not after the hub client's retries (~24 s): both libraries read the variable when first
    # imported, which under xdist may be another test's doing
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def hf_rows(n_classes: int, per_split: dict[str, int], base: int) -> dict[str, dict[str, list]]:
    rows = {}
    for split, n in per_split.items():
        images, labels = [], []
        for dex in range(1, n_classes + 1):
            for k in range(n):
                images.append(picture(dex * 100 + k + 1000 * len(rows)))
                labels.append(dex - 1 + base)
        rows[split] = {"image": images, "label": labels}
    return rows


def hf_dataset(rows: dict, representation: str, path: Path) -> Path:
    """The rows written as a real Hugging Face dataset in one of the representations users have."""
    import datasets

    def table(split_rows):
        if representation == "pil":
            return datasets.Dataset.from_dict(split_rows, features=datasets.Features(
                {"image": datasets.Image(), "label": datasets.Value("int64")}))
        encoded = []
        for i, img in enumerate(split_rows["image"]):
            buffer = io.BytesIO()
            img.save(buffer, format="PNG")
            encoded.append(buffer.getvalue())
        if representation == "bytes":
            return datasets.Dataset.from_dict({"image": encoded, "label": split_rows["label"]})
        files = []
        for i, data in enumerate(encoded):  # representation == "path"
            file = path.parent / "files" / f"{len(files)}-{i}-{id(split_rows)}.png"
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
            files.append(str(file))
        return datasets.Dataset.from_dict({"image": files, "label": split_rows["label"]})

    tables = datasets.DatasetDict({split: table(r) for split, r in rows.items()})
    if representation == "bytes":  # parquet files, as the hub serves them
        for split, ds in tables.items():
            ds.to_parquet(str(path / f"{split}-00000-of-00001.parquet"))
    else:
        tables.save_to_disk(str(path))
    return path


@pytest.mark.parametrize("representation, base", [("pil", 0), ("bytes", 1), ("path", 0)])
def test_hf_local_dataset_goes_through_ingest_to_a_leak_free_split(representation, base, tmp_path, hf_home):
    rows = hf_rows(3, {"train": 4, "validation": 1, "test": 1}, base)
    rows["train"]["image"][1] = rows["test"]["image"][0]  # a train/test duplicate within class 0001
    rows["train"]["image"][5] = rows["train"]["image"][0]  # the same image labelled 0001 and 0002
    rows["train"]["label"][5] = 1 + base
    path = hf_dataset(rows, representation, tmp_path / "hf")
    cfg = make_cfg("data=hf", f"data.hf.path={path}", f"data.hf.label_base={base}", "data.num_classes=3",
                   "data.image_size=32")
    paths = {k: tmp_path / k for k in ("raw", "processed", "yolo")}
    ingest(cfg.data, paths["raw"], tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    assert read_class_table(tmp_path / "classes.csv") == {1: "Bulbasaur", 2: "Ivysaur", 3: "Venusaur"}
    files = sorted(p.relative_to(paths["raw"]).as_posix() for p in paths["raw"].rglob("*") if p.is_file())
    assert len(files) == 18 and "0001/train-000000.png" in files

    kept, reasons, _, _ = run_preprocess(paths["raw"], tmp_path, min_size=16)
    assert len(reasons) == 3  # one duplicate dropped, both copies of the mislabelled image
    assert sum("label noise" in r for r in reasons.values()) == 2
    counts = write_yolo_dataset(tmp_path / "manifest.csv", tmp_path / "out", tmp_path / "classes.csv",
                                paths["yolo"], cfg.data.split)
    assert sum(counts.values()) == len(kept) == 15
    labels = {int(p.read_text().split()[0]) for p in (paths["yolo"] / "labels").rglob("*.txt")}
    assert labels == {0, 1, 2}  # 0-based class ids whatever the label base
    splits = read_rows(paths["yolo"] / "splits.csv")
    by_hash: dict[str, set] = {}
    for row in splits:
        by_hash.setdefault(row["sha256"], set()).add(row["split"])
    assert all(len(s) == 1 for s in by_hash.values())  # no image in two splits


def test_hf_source_splits_are_kept_when_asked(tmp_path, hf_home):
    path = hf_dataset(hf_rows(2, {"train": 3, "validation": 1, "test": 2}, 0), "pil", tmp_path / "hf")
    cfg = make_cfg("data=hf", f"data.hf.path={path}", "data.num_classes=2", "data.split.source_splits=true")
    ingest(cfg.data, tmp_path / "raw", tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    run_preprocess(tmp_path / "raw", tmp_path)
    counts = write_yolo_dataset(tmp_path / "manifest.csv", tmp_path / "out", tmp_path / "classes.csv",
                                tmp_path / "yolo", cfg.data.split)
    assert counts == {"train": 6, "validation": 2, "test": 4}


def test_hf_imagefolder_of_dex_folders_maps_folder_names_to_ids(tmp_path, hf_home):
    root = tmp_path / "imagefolder"
    for dex in (1, 2, 5):
        (root / "train" / f"{dex:04d}").mkdir(parents=True)
        for k in range(3):
            picture(dex * 10 + k).save(root / "train" / f"{dex:04d}" / f"{k}.jpg")
    cfg = make_cfg("data=hf", f"data.hf.path={root}", "data.num_classes=5")
    ingest(cfg.data, tmp_path / "raw", tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == ["0001", "0002", "0005"]


def test_hf_errors_are_one_sentence(tmp_path, hf_home):
    offline = make_cfg("data=hf", "data.hf.path=liuhuanjim013/pokemon-yolo-1025")
    with pytest.raises(PokedexError, match="hub cannot be reached for data.hf.path=liuhuanjim013/pokemon-yolo-1025"):
        ingest(offline.data, tmp_path / "raw", tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    path = hf_dataset(hf_rows(1, {"train": 3}, 0), "pil", tmp_path / "hf")
    with pytest.raises(PokedexError, match="no column 'img'.*data.hf.image_column"):
        ingest(make_cfg("data=hf", f"data.hf.path={path}", "data.hf.image_column=img").data, tmp_path / "raw",
               tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "train-00000-of-00001.parquet").write_bytes(b"PAR1 truncated download")
    with pytest.raises(PokedexError, match=f"data.hf.path={broken}"):
        ingest(make_cfg("data=hf", f"data.hf.path={broken}").data, tmp_path / "raw", tmp_path / "classes.csv",
               tmp_path / "ingest_rejects.csv")
    with pytest.raises(PokedexError, match="data.hf.splits lists validation"):
        ingest(make_cfg("data=hf", f"data.hf.path={path}", "data.hf.splits=[validation]").data, tmp_path / "raw",
               tmp_path / "classes.csv", tmp_path / "ingest_rejects.csv")


def test_a_non_image_is_named_so_even_after_ultralytics_patched_pillow(tmp_path):
    """Importing Ultralytics replaces PIL.Image.open with a version that retries unknown files with the
    (absent) pi-heif plugin and raises ImportError; preprocess must still say 'not an image'."""
    from pokedex.data.preprocess import decode
    from pokedex.model.ultra import ultralytics_offline

    ultralytics_offline()
    import ultralytics.utils.patches  # noqa: F401 - the patch itself

    (tmp_path / "notes.jpg").write_text("plain text")
    assert decode(tmp_path / "notes.jpg", 32, 1, 10**8) == "not an image (no known image format)"


def test_a_local_parquet_dataset_is_read_without_the_network_or_the_home_cache(tmp_path, monkeypatch):
    """No HF_HUB_OFFLINE here (a user's shell): `datasets` still must not reach out (its download-count request)
    nor lock files under ~/.cache/huggingface when data.hf.path is a local folder."""
    import socket

    from pokedex.data.sources.hf import open_hf

    path = hf_dataset(hf_rows(2, {"train": 2}, 0), "bytes", tmp_path / "hf")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("POKEDEX_CACHE", str(tmp_path / "cache"))
    attempts = []

    def refuse(sock, address, *args):
        attempts.append(address)
        raise OSError("network is off in this test")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    splits = open_hf(make_cfg("data=hf", f"data.hf.path={path}").data.hf)
    assert sum(1 for _ in splits["train"]) == 4
    assert attempts == []
    assert list((tmp_path / "cache" / "huggingface").iterdir()), "datasets' cache belongs in the project's cache"
