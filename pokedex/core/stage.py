"""The one decorator every stage entrypoint uses: Hydra over the committed params.yaml.

DVC composes conf/ into params.yaml (`dvc exp run -S ...`); stages only read params.yaml, so a sweep
override can never be lost by a stage composing conf/ on its own. Hydra still parses the command line,
so ad-hoc overrides work: `python -m stages.train train.epochs=1`.

A Hydra multirun (`python -m stages.train -m train.lr0=0.001,0.002`) is for quick local sweeps: each job
writes the stage's outputs under its own sweep directory (`multirun/<date>/<time>/<job>/models/train`), never
into the DVC-tracked ones. Launchers: Hydra's basic one (default, one job after another),
`hydra/launcher=parallel` (joblib, jobs in parallel on this machine) and `hydra/launcher=slurm` (submitit),
from conf/hydra/launcher/.
"""

from __future__ import annotations

import functools
import inspect
import logging
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import hydra
from omegaconf import DictConfig, open_dict

from pokedex.core.archive import pack, stage_archives, unpacked
from pokedex.core.checks import changed_params, check_params, read_params, stage_params
from pokedex.core.errors import PokedexError
from pokedex.core.hydra_job import multirun_job
from pokedex.core.process import (
    Stopped,
    lock_dir,
    output_locks,
    raise_if_stopped,
    scratch_dir,
    stop_on_signals,
    stop_with_dvc,
)

# Hydra's own settings live here, not in conf/: DVC drops a `hydra:` block when it composes params.yaml.
HYDRA_SETTINGS = {
    "hydra.run.dir": ".",                 # no outputs/<date>/ folders in the repository
    "hydra.output_subdir": "null",        # no .hydra/ folder
    "hydra/job_logging": "stdout",        # log to the console only, no <stage>.log files
}
MULTIRUN_FLAGS = {"-m", "--multirun"}

log = logging.getLogger("pokedex")


def hydra_argv(argv: list[str], root: Path, name: str = "stage") -> list[str]:
    """Our Hydra settings first, unless the user set the same key on the command line.

    A multirun keeps Hydra's own sweep directories, with each job's config (.hydra/) and log in its folder,
    and finds our launcher configs in conf/hydra/launcher/.
    """
    multirun = [arg for arg in argv if arg in MULTIRUN_FLAGS]
    argv = [arg for arg in argv if arg not in MULTIRUN_FLAGS]
    settings = {"hydra.searchpath": f"[file://{root / 'conf'}]", "hydra.job.name": name} if multirun else HYDRA_SETTINGS
    given = {arg.split("=", 1)[0].lstrip("+~") for arg in argv}
    # the flag first: Hydra's argparse takes no flag between its positional overrides
    return multirun[:1] + [f"{k}={v}" for k, v in settings.items() if k not in given] + argv


def redirect_outputs(cfg: DictConfig, writes: tuple[str, ...], job_dir: Path) -> None:
    """Point the stage's output paths (keys of paths:) into the sweep job's directory; inputs stay where they are."""
    with open_dict(cfg):
        for key in writes:
            cfg.paths[key] = str(job_dir / cfg.paths[key])


def stage(*writes: str) -> Callable[[Callable[[DictConfig], object]], Callable[[], None]]:
    """`@stage("train_run")`: turn `func(cfg)` into a CLI entrypoint reading params.yaml from the repository root.

    `writes` names the keys of `paths:` the stage writes (its DVC outs), so that a multirun job can write them
    into its own directory. Around `func`: the params dvc.yaml lists for the stage are checked before any
    output is touched (pokedex.core.checks) and compared with params.yaml again at the end; one run at a time
    writes those outputs; temporary files live in a scratch folder removed at the end (pokedex.core.process);
    the dataset folders whose archives dvc.yaml lists are unpacked before and packed after (pokedex.core.archive).
    A PokedexError (a mistake the user can fix) ends the run with its one-sentence message and exit code 2;
    Ctrl-C, SIGTERM or the end of the `dvc repro` that started the stage end it with one line and code 130.
    """
    return functools.partial(_entrypoint, writes=writes)


def _entrypoint(func: Callable[[DictConfig], object], writes: tuple[str, ...]) -> Callable[[], None]:
    entry_file = Path(inspect.getfile(func)).resolve()  # stages/<name>.py
    root = entry_file.parent.parent
    name = entry_file.stem.replace("_", "-")  # its stage in dvc.yaml

    def run(cfg: DictConfig) -> None:
        job = multirun_job()
        if job is not None:
            redirect_outputs(cfg, writes, Path(job.runtime.output_dir))
            log.info("multirun job %s writes into %s", job.job.num, job.runtime.output_dir)
        try:
            params_at_start = read_params(root / "params.yaml")
            watched = stage_params(root, name) or list(params_at_start)
            check_params(cfg, watched, params_at_start)
            outputs = [Path(cfg.paths[key]) for key in writes]
            raise_if_stopped()
            reads, packs = stage_archives(root, name)
            with output_locks(name, outputs, lock_dir(root)), scratch_dir():
                for key in reads:  # dataset folders are views of the archives DVC tracks (pokedex.core.archive)
                    if unpacked(Path(cfg.paths[key])):
                        log.info("unpacked %s from its archive", cfg.paths[key])
                for key in packs:  # as DVC removes a stage's outputs before it runs: no file of an old run stays
                    shutil.rmtree(cfg.paths[key], ignore_errors=True)
                func(cfg)
                for key in packs:
                    pack(Path(cfg.paths[key]))
            raise_if_stopped()
            changed = changed_params(params_at_start, read_params(root / "params.yaml"), watched)
            if changed and job is None:
                raise PokedexError(f"params.yaml changed while {name} ran ({'; '.join(changed)}), so its outputs do "
                                   "not match the params DVC would record for them; run it again (dvc repro).")
        except PokedexError as exc:
            log.error("error: %s", exc)
            sys.exit(2)

    @functools.wraps(func)
    def main() -> None:
        if not (root / "params.yaml").is_file():
            sys.exit(f"error: {root / 'params.yaml'} is missing; run `make params` to compose it from conf/.")
        sys.argv[1:] = hydra_argv(sys.argv[1:], root, name=entry_file.stem)
        stop_on_signals()
        stop_with_dvc()
        try:
            hydra.main(config_path=str(root), config_name="params", version_base="1.3")(run)()
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM, or the dvc repro that started us is gone
            why = exc.args[0] if isinstance(exc, Stopped) and exc.args else "Ctrl-C"
            log.error("%s stopped by %s; its outputs are incomplete and DVC records nothing: run it again to rebuild "
                      "them.", name, why)
            sys.exit(130)

    return main
