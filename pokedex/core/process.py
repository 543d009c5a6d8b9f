"""What a stage process guards against: a second run writing the same outputs, the `dvc repro` that started it
dying, Ctrl-C or SIGTERM mid-work, and temporary files left behind by a run that was killed."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pokedex.core.errors import PokedexError

SCRATCH_PREFIX = "pokedex-scratch-"
SHELLS = {"sh", "dash", "bash", "zsh", "fish", "ksh"}


class Stopped(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or the end of the `dvc repro` that started the stage; args[0] says which."""


_stop_requested: list[str] = []


def _signal_name(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


def exit_on_signals_while_importing() -> None:
    """Until the stage's entrypoint takes over (stages/__init__.py): Ctrl-C or SIGTERM while Python imports
    torch and co. ends the process with one line. Nothing has been touched yet, so there is nothing to clean."""
    def handler(signum, _frame):
        os.write(2, f"stopped by {_signal_name(signum)} before the stage started; nothing was changed.\n".encode())
        os._exit(130)
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # a background job keeps ignoring Ctrl-C
            signal.signal(sig, handler)


def stop_on_signals() -> None:
    """Ctrl-C and SIGTERM raise Stopped in the main thread, so `with` blocks and `finally:` clean up."""
    def handler(signum, _frame):
        _stop_requested.append(_signal_name(signum))
        raise Stopped(_stop_requested[0])  # the first reason: the DVC watch names itself before its SIGTERM
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, handler)


def raise_if_stopped() -> None:
    """A library's bare `except:` may have swallowed the interrupt; it still stops the stage."""
    if _stop_requested:
        raise Stopped(_stop_requested[0])


def pid_alive(pid: int) -> bool:
    """Whether pid runs. A zombie (killed, not yet reaped by its parent) counts as gone: it does nothing more."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    if not Path("/proc/self").is_dir():  # not Linux: os.kill is all there is
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):  # ended meanwhile
        return False


def _parent_chain() -> list[int]:
    """The parent, and the grandparent when the parent is a shell (DVC runs commands through $SHELL -c)."""
    chain = [os.getppid()]
    try:
        if Path(f"/proc/{chain[0]}/comm").read_text().strip() in SHELLS:
            chain.append(int(Path(f"/proc/{chain[0]}/stat").read_text().rsplit(")", 1)[1].split()[1]))
    except (OSError, ValueError, IndexError):
        pass
    return chain


def stop_with_dvc(poll_s: float = 1.0) -> None:
    """Under `dvc repro` (DVC_STAGE is set), end this stage when the DVC process that started it is gone.

    A SIGKILLed `dvc repro` cannot stop its children: the stage would go on writing outputs that a second
    `dvc repro` is rebuilding at the same time.
    """
    if "DVC_STAGE" not in os.environ:
        return
    chain, parent = _parent_chain(), os.getppid()

    def watch() -> None:
        while os.getppid() == parent and all(pid_alive(pid) for pid in chain):
            time.sleep(poll_s)
        _stop_requested.append("the end of the dvc repro that started it")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="pokedex-dvc-watch", daemon=True).start()


@contextmanager
def process_dir(base: Path, prefix: str) -> Iterator[Path]:
    """base/<prefix><pid>, removed at the end; first, those of processes that are gone (SIGKILL skips every
    cleanup) are removed."""
    for old in base.glob(f"{prefix}*"):
        pid = old.name.removeprefix(prefix)
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    mine = base / f"{prefix}{os.getpid()}"
    mine.mkdir(parents=True, exist_ok=True)
    try:
        yield mine
    finally:
        shutil.rmtree(mine, ignore_errors=True)


@contextmanager
def scratch_dir() -> Iterator[Path]:
    """This process's temporary folder: tempfile and $TMPDIR (subprocesses) point into it until the end."""
    saved = tempfile.tempdir, os.environ.get("TMPDIR")
    with process_dir(Path(tempfile.gettempdir()), SCRATCH_PREFIX) as mine:
        tempfile.tempdir, os.environ["TMPDIR"] = str(mine), str(mine)
        try:
            yield mine
        finally:
            tempfile.tempdir = saved[0]
            if saved[1] is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = saved[1]


def lock_dir(root: Path) -> Path:
    """Beside DVC's own locks (.dvc/tmp, ignored by git) when the project is a DVC repository."""
    base = root / ".dvc" / "tmp" if (root / ".dvc").is_dir() else Path(tempfile.gettempdir())
    return base / "pokedex-locks"


@contextmanager
def output_locks(stage: str, outputs: list[Path], directory: Path) -> Iterator[None]:
    """One writer per output path: a second run of a stage writing the same outputs stops with one sentence.

    flock locks die with their process, so a killed run never leaves a stale lock behind.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        for output in sorted({Path(p).resolve() for p in outputs}):
            name = hashlib.sha1(str(output).encode()).hexdigest()[:16]
            handle = stack.enter_context(open(directory / f"{name}.lock", "a+", encoding="utf-8"))
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise PokedexError(f"{output} is being written by {holder}; wait for it to end (or stop it), "
                                   f"then run {stage} again.") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{stage} (pid {os.getpid()})")
            handle.flush()
        yield
