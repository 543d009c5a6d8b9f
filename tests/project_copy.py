"""A throwaway git repository holding a copy of the project, as a fresh clone has it: for the pipeline tests
and benchmarks/experiments.py, which run the real `dvc` there instead of in this checkout.

`python -m tests.project_copy BASE` builds the tiny pipeline once for a whole test session (see
tests/conftest.py): BASE/repo after its first `dvc repro`, committed; the pipeline tests work on copies of it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from pokedex.core.config import compose_params

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["dvc.yaml", ".dvcignore", "conf", "stages", "pokedex", "pyproject.toml", ".gitignore", "data/external",
                 "data/enroll/README.md", "data/field/README.md", "data/user/README.md"]
TINY = ["debug=quick"]
BUILT_OK, BUILT_FAILED = "built.ok", "built.failed"  # what a build leaves in BASE when it ends

# sitecustomize for the first `dvc repro`: which project modules each stage loaded (tests/test_pipeline.py)
TRACE_IMPORTS = '''
import atexit, json, os, sys

def _dump():
    stage = os.path.basename(sys.argv[0])
    if os.path.basename(os.path.dirname(sys.argv[0])) != "stages":
        return
    # files, not names: a module may be loaded under a second name (pokedex/model/load.py's alias)
    files = sorted({os.path.relpath(m.__file__) for n, m in list(sys.modules.items())
                    if n.split(".")[0] in ("pokedex", "stages") and getattr(m, "__file__", None)})
    with open(os.environ["POKEDEX_IMPORT_LOG"], "a") as f:
        f.write(json.dumps({"stage": stage, "files": files}) + "\\n")

atexit.register(_dump)
'''


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


def stage_temp_dir(home: Path) -> Path:
    """$TMPDIR of the stages run with stage_env(home)."""
    folder = home.parent / "tmp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def stage_env(home: Path) -> dict:
    """The venv first on PATH (DVC runs `python`), an empty HOME to prove nothing is written there, and a
    temporary folder of the test's own beside it (stage_temp_dir): a stage clears the scratch folders of dead
    processes in $TMPDIR, so under xdist another test's stage would remove the one a test checks is left.

    No MLFLOW_TRACKING_URI: the stages use their default store, mlflow.db at the repository's root.
    """
    # SHELL as on CI (unset: DVC runs `sh -c cmd`, and dash stays between DVC and the stage; bash would exec).
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", HOME=str(home),
               SHELL="/bin/sh", TMPDIR=str(stage_temp_dir(home)))
    # No POKEDEX_NNCASE_PYTHON either: the copy has no .venv-nncase, so it is found beside the running venv, as
    # for a queued experiment in DVC's temporary copy.
    for name in ("MLFLOW_TRACKING_URI", "DVC_EXP_NAME", "DVC_ROOT", "POKEDEX_NNCASE_PYTHON"):
        env.pop(name, None)
    return env


def build_tiny_project(base: Path) -> None:
    """base/repo: the project on the tiny config after `dvc repro` (every stage under an import tracer, whose log
    is base/imports.jsonl; DVC's output in base/first.txt), committed; then base/built.ok, or base/built.failed
    with the reason."""
    try:
        repo = copy_project(base / "repo", TINY)
        for folder in ("home", "trace"):
            (base / folder).mkdir()
        (base / "trace" / "sitecustomize.py").write_text(TRACE_IMPORTS)
        env = dict(stage_env(base / "home"), PYTHONPATH=str(base / "trace"),
                   POKEDEX_IMPORT_LOG=str(base / "imports.jsonl"))
        done = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
        (base / "first.txt").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise RuntimeError(f"dvc repro failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        commit(repo, "built")
    except Exception as exc:
        (base / BUILT_FAILED).write_text(f"{type(exc).__name__}: {exc}")
        raise
    (base / BUILT_OK).touch()


if __name__ == "__main__":
    build_tiny_project(Path(sys.argv[1]))
