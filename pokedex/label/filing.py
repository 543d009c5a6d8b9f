"""`pokedex label`: the labelled rows of a suggestions.csv (pokedex/label/suggest.py) filed into data/user/NNNN/.

A label is a Pokédex id (25, 0025, or a guess as shown, "0025 Pikachu"), a species name (any case, without
punctuation: "mr mime"), `accept` (the model's first guess) or `none` (no Pokémon: filed into data/user/none/).
Every label is checked before anything is copied, so one typo files nothing. A picture is filed once: one whose
bytes are already under data/user is reported, not copied again (so `pokedex label` can be run again after adding
labels), and a name already taken gets the picture's hash instead of overwriting. Every row's outcome is written
to <table>.filed.csv beside the table.
"""

from __future__ import annotations

import csv
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pokedex.core.errors import PokedexError
from pokedex.core.io import file_digest, write_csv
from pokedex.data.classes import ALL_POKEMON, national_dex
from pokedex.data.sources.user import NONE_DIR
from pokedex.recognise.openset import NO_POKEMON

ACCEPT, NONE = "accept", "none"
LEADING_ID = re.compile(r"^(\d+)\b")


def _key(name: str) -> str:
    return re.sub(r"[^0-9a-z♀♂]", "", name.casefold())


@dataclass
class Filed:
    filed: dict[str, int] = field(default_factory=dict)  # folder -> pictures filed now
    already: int = 0  # pictures whose bytes were under user_dir already
    unlabelled: int = 0
    missing: list[str] = field(default_factory=list)  # "row N: path" of pictures that are gone
    report: Path | None = None


def folder_for(label: str, first_guess: str, names: dict[str, int]) -> str | None:
    """The folder a label files its picture into (0025, none), or None when the label names nothing."""
    text = label.strip()
    if text.casefold() == ACCEPT:
        text = first_guess.strip()
        if text == NO_POKEMON:  # the model's first guess was no Pokémon; an empty guess names nothing
            return NONE_DIR
    if text.casefold() == NONE:
        return NONE_DIR
    if number := LEADING_ID.match(text):
        dex = int(number.group(1))
        return f"{dex:04d}" if 1 <= dex <= ALL_POKEMON else None
    dex = names.get(_key(text))
    return f"{dex:04d}" if dex else None


def _rows(table: Path) -> list[dict[str, str]]:
    if not table.is_file():
        raise PokedexError(f"{table} does not exist; give the suggestions.csv that `pokedex suggest` wrote.")
    with table.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "label"} - set(reader.fieldnames or [])
        if missing:
            raise PokedexError(f"{table} has no {' or '.join(sorted(missing))} column; give the suggestions.csv that "
                               "`pokedex suggest` wrote.")
        return list(reader)


def _digests(folder: Path) -> dict[str, Path]:
    return {file_digest(p).hexdigest(): p for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "README.md"}


def file_labels(table: Path, user_dir: Path) -> Filed:
    """File every labelled row of `table` into user_dir/NNNN/ (or user_dir/none/)."""
    rows, names = _rows(table), {_key(name): dex for dex, name in national_dex().items()}
    targets, wrong = [], []
    for line, row in enumerate(rows, start=2):  # line 1 is the header
        label = (row.get("label") or "").strip()
        folder = folder_for(label, row.get("guess1") or "", names) if label else ""
        if folder is None:
            wrong.append(f"row {line} ({Path(row['path']).name}): label {label!r} is neither a Pokédex id "
                         f"(1-{ALL_POKEMON}), a species name, '{ACCEPT}' nor '{NONE}'")
        targets.append(folder)
    if wrong:
        more = f" ({len(wrong) - 1} more row(s) like it)" if len(wrong) > 1 else ""
        raise PokedexError(f"{table}: {wrong[0]}{more}; fix the label and run again (nothing was filed).")
    done, known, outcomes = Filed(), _digests(user_dir) if user_dir.is_dir() else {}, []
    for line, (row, folder) in enumerate(zip(rows, targets), start=2):
        source = Path(row["path"])
        if not folder:
            done.unlabelled += 1
            outcomes.append((line, row["path"], "", "not labelled"))
            continue
        if not source.is_file():
            done.missing.append(f"row {line}: {source}")
            outcomes.append((line, row["path"], folder, "not filed: the picture is gone"))
            continue
        digest = file_digest(source).hexdigest()
        if digest in known:
            done.already += 1
            there = known[digest].relative_to(user_dir)
            moved = "" if there.parts[0] == folder else ", under another label: move it there by hand if this one is right"
            outcomes.append((line, row["path"], folder, f"already filed as {there.as_posix()}{moved}"))
            continue
        target = user_dir / folder / source.name
        if target.exists():  # another picture of that name: never overwritten
            target = target.with_name(f"{source.stem}-{digest[:8]}{source.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        known[digest] = target
        done.filed[folder] = done.filed.get(folder, 0) + 1
        outcomes.append((line, row["path"], folder, f"filed as {target.relative_to(user_dir).as_posix()}"))
    done.report = table.with_name(f"{table.stem}.filed.csv")
    write_csv(done.report, ["row", "path", "folder", "outcome"], outcomes)
    return done
