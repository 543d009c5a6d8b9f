"""Dataset folders are tracked as one archive each and unpacked where they are read (pokedex.core.archive)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pokedex.core.archive import archive_of, archived_folders, pack, stage_archives, stamp_of, unpacked, view
from pokedex.core.errors import PokedexError

ROOT = Path(__file__).resolve().parent.parent


def _folder(path: Path) -> Path:
    files = {"0001/a.png": b"a" * 600, "0001/b.png": b"b", "0002/c.png": b"c" * 70, "index.csv": b"x\n"}
    for name, data in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_bytes(data)
    (path / "0003").mkdir()  # an empty class folder is part of the layout too
    return path


def _contents(folder: Path) -> dict[str, bytes | None]:
    return {p.relative_to(folder).as_posix(): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_the_same_folder_packs_to_the_same_bytes_wherever_and_whenever_it_was_written(tmp_path):
    first = pack(_folder(tmp_path / "one" / "images")).read_bytes()
    again = _folder(tmp_path / "two" / "images")
    for path in again.rglob("*"):
        os.utime(path, (1_000_000, 1_000_000))  # other times, another parent folder
    assert pack(again).read_bytes() == first
    (again / "0002" / "c.png").write_bytes(b"C" * 70)
    assert pack(again).read_bytes() != first


def test_a_view_is_unpacked_when_missing_or_stale_and_left_alone_when_current(tmp_path):
    folder = _folder(tmp_path / "images")
    archive = pack(folder)
    assert archive == archive_of(folder) == tmp_path / "images.tar"
    expected = _contents(folder)
    assert unpacked(folder) is False  # the stage that packed it left a current view
    assert stamp_of(folder).parent == tmp_path and _contents(folder) == expected  # the stamp is beside, not in it

    shutil.rmtree(folder)  # after `dvc pull`: the archive only
    assert unpacked(folder) is True and _contents(folder) == expected
    assert unpacked(folder) is False

    for edit in (lambda: (folder / "0001" / "a.png").write_bytes(b"edited by hand"),
                 lambda: (folder / "0002" / "new.png").write_bytes(b"new"),
                 lambda: (folder / "index.csv").unlink(),
                 lambda: shutil.rmtree(folder / "0003")):
        edit()
        assert unpacked(folder) is True and _contents(folder) == expected

    other = _folder(tmp_path / "other" / "images")
    (other / "0001" / "b.png").write_bytes(b"another dataset")
    shutil.copy2(pack(other), archive)  # `dvc checkout` of another commit's archive
    assert unpacked(folder) is True and _contents(folder) == _contents(other)
    assert not [p for p in tmp_path.iterdir() if "unpacking" in p.name]


def test_a_folder_read_outside_a_stage_is_unpacked_only_when_it_has_an_archive(tmp_path):
    """`pokedex predict` and `pokedex report` read the dataset through view(): after `dvc pull` it is the archive
    only; a dataset from before archives (no .tar) is read as it is, not refused."""
    old = _folder(tmp_path / "old")
    expected = _contents(old)
    assert view(old) == old and _contents(old) == expected and not archive_of(old).exists()

    folder = _folder(tmp_path / "images")
    pack(folder)
    shutil.rmtree(folder)
    assert view(folder) == folder and _contents(folder) == expected


def test_a_missing_archive_is_one_sentence_naming_it_and_the_fix(tmp_path):
    with pytest.raises(PokedexError, match=r"images\.tar is missing.*`dvc pull`"):
        unpacked(tmp_path / "images")
    (tmp_path / "images").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "link.png").symlink_to(tmp_path / "nowhere.png")
    with pytest.raises(PokedexError, match=r"link\.png is a link"):
        pack(tmp_path / "folder")


def test_dvc_yaml_names_which_archives_each_stage_reads_and_writes():
    assert stage_archives(ROOT, "ingest") == ([], ["raw"])
    assert stage_archives(ROOT, "preprocess") == (["raw"], ["processed"])
    assert stage_archives(ROOT, "detect-format") == (["yolo_dataset"], ["detect_dataset"])
    assert stage_archives(ROOT, "compile-kmodel") == (["detect_dataset", "yolo_dataset"], [])
    assert stage_archives(ROOT, "no-such-stage") == ([], [])
    paths = {key: Path(key) for key in ("raw", "processed", "yolo_dataset", "detect_dataset")}
    assert archived_folders(ROOT, paths) == list(paths.values())
