"""What guards a stage run: params checked before and after, one writer per output, leftovers of killed runs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from pokedex.core import mlflow_store, tracking
from pokedex.core.checks import changed_params, check_params, stage_params
from pokedex.core.errors import PokedexError
from pokedex.core.process import output_locks, process_dir
from pokedex.data import preprocess  # noqa: F401 - check_params collects the rules of the modules loaded, as a
from pokedex.deploy import k210
from pokedex.train import augment, train  # noqa: F401 - stage's entrypoint loads the modules that read its params

from .conftest import ROOT, make_cfg


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


@pytest.fixture(scope="module")
def reference() -> dict:
    from omegaconf import OmegaConf
    return OmegaConf.to_container(make_cfg("data=tiny"), resolve=True)


def test_stage_params_are_read_from_dvc_yaml():
    assert stage_params(ROOT, "train") == ["seed", "data.image_size", "model", "train", "augment"]
    assert stage_params(ROOT, "no-such-stage") is None


@pytest.mark.parametrize(("override", "message"), [
    ("train.lr0=abc", "train.lr0='abc' is invalid: it must be a number > 0"),
    ("train.lr0=-5", "train.lr0=-5 is invalid: it must be a number > 0"),
    ("train.epochs=-1", "train.epochs=-1 is invalid: it must be an integer ≥ 1"),
    ("train.epochs=1.5", "train.epochs=1.5 is invalid: it must be an integer ≥ 1"),
    ("train.batch=0", "train.batch=0 is invalid: it must be an integer ≥ 1"),
    ("augment.p=2", "augment.p=2 is invalid: it must be a number ≥ 0 and ≤ 1"),
    ("data.image_size=true", "data.image_size=True is invalid: it must be an integer ≥ 16"),
])
def test_a_bad_param_is_named_with_what_it_must_be(reference, override, message):
    with pytest.raises(PokedexError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        check_params(make_cfg("data=tiny", override), ["data.image_size", "model", "train", "augment", "seed"], reference)


def test_only_the_stages_own_params_are_checked_and_nulls_where_allowed(reference):
    check_params(make_cfg("data=tiny", "train.epochs=-1"), ["data.image_size", "evaluate"], reference)
    check_params(make_cfg("data=tiny", "data.workers=null"), ["data"], reference)
    with pytest.raises(PokedexError, match=r"data.workers=0 is invalid: it must be an integer ≥ 1 \(or null\)"):
        check_params(make_cfg("data=tiny", "data.workers=0"), ["data"], reference)


def test_a_group_replaced_by_a_string_is_named_with_the_way_to_pick_a_group(reference):
    cfg = make_cfg("data=tiny")
    cfg.model = "doesnotexist"
    with pytest.raises(PokedexError, match=r"model='doesnotexist' replaces the whole model: group .* `pokedex params model=<name>`"):
        check_params(cfg, ["model", "train"], reference)


def test_params_changed_during_a_run_are_listed_leaf_by_leaf():
    before = {"train": {"lr0": 0.003, "epochs": 30}, "seed": 0, "evaluate": {"batch": 1}}
    after = {"train": {"lr0": 0.0005, "epochs": 30, "dropout": 0.1}, "seed": 0, "evaluate": {"batch": 2}}
    assert changed_params(before, after, ["train", "seed"]) == ["train.dropout: (absent) → 0.1", "train.lr0: 0.003 → 0.0005"]
    assert changed_params(before, before, ["train", "seed"]) == []


def test_a_second_writer_of_an_output_stops_with_one_sentence_and_a_killed_one_leaves_no_lock(tmp_path):
    locks, out = tmp_path / "locks", tmp_path / "models" / "train"
    with output_locks("train", [out], locks):
        with pytest.raises(PokedexError, match=rf"{out} is being written by train \(pid {os.getpid()}\); wait for it"):
            with output_locks("train", [out], locks):
                pass
        with output_locks("evaluate", [tmp_path / "reports"], locks):  # other outputs: no conflict
            pass
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from pokedex.core.process import output_locks\n"
                               f"with output_locks('train', [Path({str(out)!r})], Path({str(locks)!r})):\n"
                               "    print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(PokedexError, match=f"pid {holder.pid}"):
        with output_locks("train", [out], locks):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with output_locks("train", [out], locks):  # the kernel released the dead process's lock
        pass


def test_folders_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    dead, live = tmp_path / f"x-{_dead_pid()}", tmp_path / f"x-{os.getppid()}"
    dead.mkdir()
    live.mkdir()
    (dead / "partial.bin").write_bytes(b"0" * 10)
    with process_dir(tmp_path, "x-") as mine:
        assert mine == tmp_path / f"x-{os.getpid()}" and mine.is_dir()
        assert not dead.exists() and live.is_dir()
    assert not mine.exists()


def test_a_stage_started_through_sh_ends_when_its_killed_dvc_is_not_yet_reaped(tmp_path):
    """CI's $SHELL is unset: DVC runs `sh -c cmd` and dash stays between DVC and the stage. A SIGKILLed DVC is a
    zombie until its parent reaps it; the stage must not take that for a live DVC."""
    stage = (f"import time, sys; sys.path.insert(0, {str(ROOT)!r}); from pokedex.core.process import stop_with_dvc; "
             f"stop_with_dvc(poll_s=0.1); open({str(tmp_path / 'started')!r}, 'w').close(); time.sleep(60)")
    dvc = ("import subprocess, sys; subprocess.run(['sh', '-c', sys.argv[1] + '; true'])")  # `; true`: sh stays
    fake_dvc = subprocess.Popen([sys.executable, "-c", dvc, f"{sys.executable} -c \"{stage}\""],
                                env=dict(os.environ, DVC_STAGE="train"))
    try:
        while not (tmp_path / "started").exists():
            assert fake_dvc.poll() is None
        shell = psutil.Process(fake_dvc.pid).children()[0]
        python = shell.children()[0]
        fake_dvc.kill()  # not reaped: a zombie while the stage watches
        python.wait(10)
        assert fake_dvc.poll() is not None
    finally:
        fake_dvc.kill()
        fake_dvc.wait()


def test_a_worker_pool_shuts_down_without_tracebacks_in_a_stage_that_stops_on_signals():
    """The pool's SIGTERM to its idle workers at the end of parallel_map used to raise the stage's Stopped in each
    (a 'Process ForkPoolWorker' traceback in preprocess's log of the default pipeline)."""
    code = (f"import sys, time; sys.path.insert(0, {str(ROOT)!r})\n"
            "from pokedex.core.process import stop_on_signals\nfrom pokedex.core.parallel import parallel_map\n"
            "def work(i):\n    time.sleep(0.001 * (i % 7))\n    return i\n"
            "stop_on_signals()\n"
            "for _ in range(5):\n    assert sorted(parallel_map(work, range(200), 200, 2, 'x')) == list(range(200))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]


def test_runs_left_running_by_a_killed_process_end_as_killed(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    client, experiment = mlflow_store.client()
    host = tracking.this_process().rpartition(":")[0]
    owners = {"dead": f"{host}:{_dead_pid()}", "alive": f"{host}:{os.getpid()}", "elsewhere": f"other-host:{_dead_pid()}"}
    runs = {name: client.create_run(experiment, tags={tracking.PROCESS_TAG: owner}).info.run_id
            for name, owner in owners.items()}
    tracking.end_abandoned_runs(client, experiment)
    status = {name: client.get_run(run_id).info.status for name, run_id in runs.items()}
    assert status == {"dead": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING"}


def test_nncase_venv_is_found_beside_the_running_venv_for_queued_experiments(tmp_path, monkeypatch):
    """A queued experiment runs in a temporary copy without venvs; the main checkout's .venv runs it."""
    main = tmp_path / "main"
    python = main / ".venv-nncase" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    monkeypatch.delenv("POKEDEX_NNCASE_PYTHON", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "copy"))
    monkeypatch.setattr(k210, "CHECKOUT", tmp_path / "copy")
    monkeypatch.setattr(sys, "prefix", str(main / ".venv"))
    assert k210.nncase_python() == python
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "elsewhere" / ".venv"))
    with pytest.raises(PokedexError, match=str(tmp_path / "copy" / ".venv-nncase")):
        k210.nncase_python()
    monkeypatch.setenv("DVC_ROOT", str(main))
    assert k210.nncase_python() == python


def test_a_signal_during_a_checkpoint_write_waits_for_the_write_and_then_stops_the_stage(tmp_path):
    """Ultralytics truncates last.pt before writing it: Ctrl-C in between left a checkpoint no resume could read."""
    import signal

    from pokedex.core import process
    from pokedex.core.process import Stopped, stop_on_signals
    from pokedex.train.train import signals_held

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop_on_signals()
    checkpoint = tmp_path / "last.pt"
    try:
        with pytest.raises(Stopped):
            with signals_held():
                checkpoint.write_bytes(b"half")
                signal.raise_signal(signal.SIGTERM)  # arrives mid-write (SIGINT may be ignored: a background job)
                checkpoint.write_bytes(b"half and the rest")
        assert checkpoint.read_bytes() == b"half and the rest"
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        process._stop_requested.clear()  # this pytest process goes on
