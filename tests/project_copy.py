"""A throwaway git repository holding a copy of the project, as a fresh clone has it: for the pipeline tests
and benchmarks/experiments.py, which run the real `dvc` there instead of in this checkout."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pokedex.config import compose_params

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["dvc.yaml", "conf", "stages", "pokedex", "pyproject.toml", ".gitignore", "data/external",
                 "data/enroll/README.md", "data/field/README.md"]


def git(args: list[str], repo: Path) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def identify(repo: Path) -> None:
    """A git identity in the repository itself: DVC commits experiments, and HOME may be empty."""
    git(["config", "user.name", "pokedex-test"], repo)
    git(["config", "user.email", "test@pokedex.invalid"], repo)


def commit(repo: Path, message: str) -> None:
    git(["add", "-A"], repo)
    git(["commit", "-q", "--allow-empty", "-m", message], repo)


def copy_project(repo: Path, overrides: list[str]) -> Path:
    """repo/ = the project's files, its committed .dvc/config (analytics off, Hydra on) and params.yaml composed
    with `overrides`, committed in a new git repository."""
    repo.mkdir(parents=True)
    for name in PROJECT_FILES:
        src = ROOT / name
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
         if src.is_dir() else shutil.copy2(src, repo / name))
    (repo / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy2(ROOT / ".dvc" / name, repo / ".dvc" / name)
    compose_params(repo / "params.yaml", overrides, root=repo)
    git(["init", "-q"], repo)
    identify(repo)
    commit(repo, "project")
    return repo
