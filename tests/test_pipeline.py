"""The real `dvc repro` on a tiny config, in a throwaway git repository holding a copy of the project."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from mlflow import MlflowClient

from pokedex.core.config import compose_params
from pokedex.core.mlflow_store import follow_moved_store
from pokedex.core.process import SHELLS

from .conftest import _nncase_missing, needs_nncase
from .project_copy import TINY, commit, copy_project, identify, stage_env, stage_temp_dir
from .tiny_clip import make_tiny_clip

STAGES = ["ingest", "preprocess", "yolo-format", "detect-format", "train-detector", "train", "distill", "adapt", "enroll",
          "evaluate", "clip", "export-onnx", "compile-kmodel"]


# Test folders whose stages run with MLflow off (tests marked `untracked`): they check what DVC reruns and
# writes; importing MLflow costs a tracking stage ~3 s, and tracking has tests of its own (test 1, the
# experiment, multirun and kill tests, tests/test_tracking.py).
UNTRACKED: set[Path] = set()


def _env(home: Path) -> dict:
    env = stage_env(home)
    if home.parent in UNTRACKED:
        env["POKEDEX_TRACKING"] = "off"
    return env


def _run(args: list[str], cwd: Path) -> str:
    env = _env(cwd.parent / "home")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


def _json(args: list[str], cwd: Path):
    done = subprocess.run(args, cwd=cwd, env=_env(cwd.parent / "home"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def _mlflow_runs(repo: Path) -> dict:
    """{run name: run} of the classifier's runs in the repository's default MLflow store (the detector's training
    and the K210 network's distillation are runs of their own, of the same name)."""
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pokedex")
    return {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])
            if r.data.tags.get("pokedex.stage") not in ("train-detector", "distill")}


BUNDLE = ["classes.txt", "detector.kmodel", "enrolled.json", "main.py", "manifest.json", "model.kmodel", "prototypes.bin"]


def _ran(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


def _listing(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def repo(request, tmp_path) -> Path:
    """A repository of its own for the test: a copy of the built tiny project (its outputs, DVC cache and MLflow
    store included) where the K210 compiler is installed, else the project unbuilt."""
    (tmp_path / "home").mkdir()
    if request.node.get_closest_marker("untracked"):
        UNTRACKED.add(tmp_path)
    if _nncase_missing():  # the tests that need the built DAG are skipped (needs_nncase)
        return copy_project(tmp_path / "repo", TINY)
    built = request.getfixturevalue("built")
    repo = Path(shutil.copytree(built / "repo", tmp_path / "repo", symlinks=True))
    uri = f"sqlite:///{repo / 'mlflow.db'}"  # as the copy's first stage would: its artifacts go into the copy
    experiment = MlflowClient(uri).get_experiment_by_name("pokedex")
    follow_moved_store(uri, experiment.experiment_id, experiment.artifact_location)
    return repo


@pytest.mark.slow
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_dvc_repro_builds_everything_then_nothing_then_only_dependents(built, repo):
    first = (built / "first.txt").read_text()
    assert _ran(first) == STAGES

    yolo = repo / "data" / "yolo_dataset"
    for split in ("train", "validation", "test"):
        assert len(list((yolo / "images" / split).glob("*.jpg"))) == len(list((yolo / "labels" / split).glob("*.txt"))) > 0
    assert (yolo / "classes.txt").read_text().count("\n") == 4
    detector = json.loads((repo / "reports" / "detector" / "metrics.json").read_text())
    assert detector["test"]["images"] == 6 and set(detector["test"]) >= {"map50", "precision", "recall"}
    assert (repo / "models" / "train" / "weights" / "best.pt").is_file()
    assert (repo / "models" / "model.onnx").is_file()
    metrics = json.loads((repo / "reports" / "eval" / "metrics.json").read_text())
    assert set(metrics) >= {"top1", "top5", "per_class_top1_min", "scene_top1", "scene_top1_box",
                            "scene_top1_detected", "scene_found", "no_pokemon_boxed", "no_pokemon_named_detected"}
    assert (repo / "reports" / "eval" / "frames.png").is_file()
    parity = json.loads((repo / "reports" / "onnx_parity.json").read_text())
    assert parity["top1_agreement"] == 1.0
    kmodel = json.loads((repo / "reports" / "kmodel.json").read_text())
    assert kmodel["fits_k210"] and kmodel["memory_bytes"]["total"] > 0 and kmodel["eval_images"] == 4
    assert kmodel["memory_bytes_both"] > kmodel["memory_bytes"]["total"] and kmodel["detector"]["stride"] == 16
    clip = json.loads((repo / "reports" / "clip" / "metrics.json").read_text())  # no CLIP model: says so, no number
    assert list(clip) == ["clip"] and clip["clip"].startswith("not configured")
    bundle = repo / "deploy" / "k210"
    assert sorted(p.name for p in bundle.iterdir()) == BUNDLE
    assert (bundle / "classes.txt").read_text() == (yolo / "classes.txt").read_text()
    assert not (repo / "outputs").exists() and not (repo / ".hydra").exists() and not list(repo.glob("*.log"))
    assert not any((built / "home").iterdir()), "the pipeline must not write into the home directory"
    run = _mlflow_runs(repo)["workspace"]  # one run: train opened it, the later stages added to it
    (found_by,) = [r for r in _mlflow_runs_all(repo) if r.data.tags.get("pokedex.stage") == "train-detector"]
    assert found_by.data.metrics["detector/test/map50"] == detector["test"]["map50"] and "metrics/mAP50B" in found_by.data.metrics
    assert run.data.metrics["evaluate/top1"] == metrics["top1"] and "metrics/accuracy_top1" in run.data.metrics
    assert metrics["k210_top1"] >= 0 and "k210_scene_top1_detected" in metrics  # the K210's network beside it
    (k210,) = [r for r in _mlflow_runs_all(repo) if r.data.tags.get("pokedex.stage") == "distill"]
    assert "metrics/accuracy_top1" in k210.data.metrics and k210.data.params["distill.model.arch"] == "k210n-cls.yaml"
    assert k210.data.metrics["export-onnx/top1_agreement"] == 1.0 and k210.data.metrics["compile-kmodel/fits_k210"] == 1
    assert run.data.params["model.arch"] == "lite0-cls.yaml"

    assert _ran(_run(["dvc", "repro"], repo)) == []
    assert "up to date" in _run(["dvc", "status"], repo)

    # the CLI's defaults are the paths of the project it runs in, from any of its folders
    image = sorted((yolo / "images" / "test").iterdir())[0]
    predicted = subprocess.run(["pokedex", "predict", str(image), "--top", "1"], cwd=repo / "data",
                               env=_env(repo.parent / "home"), capture_output=True, text=True)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    # a one-epoch model may answer "(no Pokémon)" before its best guess: the enrolled output's open-set rule
    assert predicted.stdout.splitlines()[0].startswith(str(image))  # "[box …]" after it: the detector's crop
    assert predicted.stdout.splitlines()[1].strip().startswith(("1. 000", "1. (no Pokémon)")), predicted.stdout

    shown = _run(["dvc", "metrics", "show", "--json"], repo)
    assert "top1" in shown and "kmodel_bytes" in shown and "ram_bytes" in shown
    assert "max_abs_diff" not in shown and "memory_bytes" not in shown  # details stay out of comparisons
    assert "Training curves" in _run(["dvc", "plots", "show", "--json"], repo)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["latency_images"] = 4
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _ran(_run(["dvc", "repro"], repo)) == ["evaluate"]

    # a user's field photos: only evaluate reruns, and scores them (with the no-Pokémon rule)
    assert metrics["field"].startswith("not measured")
    photos = sorted((yolo / "images" / "test").glob("0002_*.jpg"))
    (repo / "data" / "field" / "0002").mkdir()
    for photo in photos:
        shutil.copyfile(photo, repo / "data" / "field" / "0002" / photo.name)
    assert _ran(_run(["dvc", "repro"], repo)) == ["evaluate"]
    scored = json.loads((repo / "reports" / "eval" / "metrics.json").read_text())
    assert scored["field_images"] == len(photos) and 0 <= scored["field_top1"] <= scored["field_top5"] <= 1
    assert 0 <= scored["field_accepted"] <= 1 and "field" not in scored
    assert 0 <= scored["field_top1_detected"] <= 1 and 0 <= scored["field_found"] <= 1 and "field_top1_box" not in scored
    assert (repo / "reports" / "eval" / "field_per_class.csv").read_text().count("\n") == 2  # header + 0002

    # pictures of a species to add: enroll and what uses it rerun, never train (a bad picture is a reject)
    pictures = [str(p) for p in sorted((yolo / "images" / "test").glob("0001_*.jpg"))[:2]]
    added = subprocess.run(["pokedex", "enroll", *pictures, "--id", "5"], cwd=repo, env=_env(repo.parent / "home"),
                           capture_output=True, text=True)
    assert added.returncode == 0 and _ran(added.stdout) == ["enroll"], added.stdout[-2000:] + added.stderr[-2000:]
    new_species = repo / "data" / "enroll" / "0005"
    assert len(list(new_species.iterdir())) == 2
    (new_species / "notes.jpg").write_text("not a picture")
    assert _ran(_run(["dvc", "repro"], repo)) == ["enroll", "evaluate", "compile-kmodel"]
    enrolled = json.loads((bundle / "enrolled.json").read_text())
    assert enrolled["ids"] == [5] and enrolled["owners"] == [0, 0] and (bundle / "prototypes.bin").stat().st_size == 2 * 256 * 4
    assert "0005/notes.jpg,not an image" in (repo / "models" / "enrolled" / "rejects.csv").read_text()
    assert json.loads((repo / "reports" / "eval" / "metrics.json").read_text())["enrolled_species"] == 1


@pytest.mark.slow
@pytest.mark.untracked
@needs_nncase  # the DAG must be up to date first, compile-kmodel included
def test_the_detectors_params_rerun_its_stages_and_its_readers_never_the_classifier(repo):
    """detect-format, train-detector, evaluate (which reads its crops) and compile-kmodel (its kmodel) rerun."""
    compose_params(repo / "params.yaml", [*TINY, "detector.data.seed=1"], root=repo)
    assert _ran(_run(["dvc", "repro"], repo)) == ["detect-format", "train-detector", "evaluate", "compile-kmodel"]


@pytest.mark.slow
@needs_nncase  # the DAG must be up to date first, compile-kmodel included
def test_labelled_pictures_adapt_the_model_without_retraining_it(repo):
    trained = (repo / "models" / "train" / "weights" / "best.pt").read_bytes()
    assert (repo / "models" / "adapted" / "weights" / "best.pt").read_bytes() == trained  # no pictures: train's own
    pictures = sorted((repo / "data" / "yolo_dataset" / "images" / "test").glob("0002_*.jpg"))[:2]
    table = repo.parent / "suggestions.csv"
    table.write_text("rank,path,guess1,label\n" + "".join(f"{k},{p},,2\n" for k, p in enumerate(pictures, start=1)))
    assert "filed 2 picture(s)" in _run(["pokedex", "label", str(table)], repo)
    assert len(list((repo / "data" / "user" / "0002").iterdir())) == 2
    # ingest reruns (data/user is a source's folder) and gives the same data, so only adapt and what reads it follow
    # (the K210's network learnt from the trained model, not the adapted one: export-onnx and compile-kmodel stay)
    assert _ran(_run(["dvc", "repro"], repo)) == ["ingest", "adapt", "enroll", "evaluate", "clip"]
    report = json.loads((repo / "models" / "adapted" / "adapt.json").read_text())
    assert report["adapted"] and report["user_pictures"] == 2 and report["replayed"] > 0
    assert (repo / "models" / "train" / "weights" / "best.pt").read_bytes() == trained
    assert (repo / "models" / "adapted" / "weights" / "best.pt").read_bytes() != trained


@pytest.mark.slow
@pytest.mark.untracked
@needs_nncase  # the DAG must be up to date first, compile-kmodel included
def test_new_splits_rerun_everything_after_the_data_stages(repo):
    compose_params(repo / "params.yaml", [*TINY, "data.split.seed=1"], root=repo)
    assert _ran(_run(["dvc", "repro"], repo)) == ["yolo-format", "detect-format", "train-detector", "train", "distill",
                                                  "adapt", "enroll", "evaluate", "clip", "export-onnx", "compile-kmodel"]


@pytest.mark.slow
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_a_forced_repro_of_every_stage_gives_the_same_bytes(repo):
    """The same params, data and code give the same files, models and kmodels included: after `dvc repro --force`
    git has nothing to commit (no dvc.lock hash, metric or report changed); timings went to reports/timings/."""
    _run(["dvc", "repro", "--force"], repo)
    status = subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout
    assert status == "", status + subprocess.run(["git", "diff"], cwd=repo, capture_output=True, text=True).stdout
    timings = json.loads((repo / "reports" / "timings" / "evaluate.json").read_text())
    assert timings["latency_ms"] > 0 and "latency_ms" not in (repo / "reports" / "eval" / "metrics.json").read_text()


@pytest.mark.slow
@pytest.mark.untracked
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_dvc_exp_run_composes_conf_and_shows_experiments(repo):
    """`dvc exp run -S` composes conf/ with the overrides (DVC's Hydra integration) into params.yaml."""
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro"], repo)
    commit(repo, "baseline")
    overrides = [arg for o in TINY + ["evaluate.latency_images=5"] for arg in ("-S", o)]
    out = _run(["dvc", "exp", "run", "-n", "latency5", *overrides], repo)
    assert _ran(out) == ["evaluate"]
    assert yaml.safe_load((repo / "params.yaml").read_text())["evaluate"]["latency_images"] == 5
    table = _run(["dvc", "exp", "show", "--md", "--no-pager"], repo)
    assert "latency5" in table and "top1" in table


@pytest.mark.slow
@needs_nncase  # the DAG must be up to date first, compile-kmodel included
def test_dvc_exp_run_with_a_clip_model_reruns_only_what_reads_clip(repo, tmp_path):
    """`dvc exp run -S clip.model=... -S clip.pretrained=<file>`: CLIP's metrics land beside the classifier's;
    enroll, which reads the same CLIP block, reruns with the same outputs, so nothing after it reruns (the tiny
    model stands for a real checkpoint)."""
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro"], repo)
    commit(repo, "built")
    config, checkpoint = make_tiny_clip(tmp_path)
    overrides = [*TINY, f"clip.model={config}", f"clip.pretrained={checkpoint}", "clip.probe.steps=20"]
    out = _run(["dvc", "exp", "run", "-n", "with-clip", *(arg for o in overrides for arg in ("-S", o))], repo)
    assert sorted(_ran(out)) == ["clip", "enroll"], out[-3000:]
    shown = _json(["dvc", "exp", "show", "--json"], repo)
    metrics = json.dumps(shown)
    assert "clip_zero_shot_top1" in metrics and "hybrid_top1" in metrics and "kmodel_top1" in metrics
    clip = json.loads((repo / "reports" / "clip" / "metrics.json").read_text())
    assert clip["classes"] == 4 and 0 <= clip["hybrid_top1"] <= 1
    assert len((repo / "reports" / "clip" / "per_class.csv").read_text().splitlines()) == 5
    run = _mlflow_runs(repo)["with-clip"]  # logged beside the training run's figures
    assert run.data.metrics["clip/hybrid_top1"] == clip["hybrid_top1"]

    # species enrolled in CLIP embeddings: enroll and evaluate rerun; the K210, which cannot compute them, keeps
    # its own network's (the same bytes: compile-kmodel does not rerun)
    enrol = [*overrides, "enroll.embedding=clip"]
    out = _run(["dvc", "exp", "run", "-n", "clip-enrolled", *(arg for o in enrol for arg in ("-S", o))], repo)
    assert _ran(out) == ["enroll", "evaluate"], out[-3000:]
    assert json.loads((repo / "models" / "enrolled" / "enrolled.json").read_text())["embedding"]["kind"] == "clip"
    assert json.loads((repo / "models" / "enrolled-k210" / "enrolled.json").read_text())["embedding"]["kind"] == "classifier"
    assert (repo / "deploy" / "k210" / "prototypes.bin").exists()


@pytest.mark.slow
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_queued_grid_sweep_runs_and_is_compared_in_exp_show_mlflow_and_the_report(repo):
    """`dvc exp run --queue` with Hydra's sweep syntax, `--run-all` in temporary copies, all visible afterwards
    (the sweep is over the scene test's seed, so each experiment reruns evaluate only)."""
    queued = _run(["dvc", "exp", "run", "--queue", "-S", "debug=quick", "-S", "evaluate.scene.seed=1,2"], repo)
    assert queued.count("Queued experiment") == 2
    _run(["dvc", "exp", "run", "--run-all"], repo)

    rows = _json(["dvc", "exp", "show", "--json"], repo)
    exps = {e["name"]: e for row in rows for e in (row.get("experiments") or []) if e.get("name")}
    swept = {name: exp["revs"][0]["data"] for name, exp in exps.items()
             if exp["revs"][0]["data"]["params"]["params.yaml"]["data"]["evaluate"]["scene"]["seed"] in (1, 2)}
    assert len(swept) == 2
    for data in swept.values():
        assert "top1" in data["metrics"]["reports/eval/metrics.json"]["data"]
        assert data["metrics"]["reports/kmodel_metrics.json"]["data"]["fits_k210"] is True

    # The queued runs ran in temporary copies, yet logged into the repository's MLflow store, named after them.
    runs = _mlflow_runs(repo)
    for name in swept:
        assert "evaluate/top1" in runs[name].data.metrics, name
        assert runs[name].data.tags["dvc.exp_name"] == name

    # The offline report compares them: metrics, curves and confusions, nothing fetched from anywhere.
    page = repo / "reports" / "experiments.html"
    _run(["pokedex", "report", "-o", str(page), *swept], repo)
    text = page.read_text()
    assert all(name in text for name in swept) and "evaluate.scene.seed" in text and text.count("data:image/png;base64,") == 3
    assert text.count("alt='scene test frames'") == 2  # each experiment's frames.png: boxes and answers
    assert text.count("Most confused") == 2 and "<img class='thumb' alt='' src='data:image/jpeg;base64," in text
    assert "<script" not in text and "http" not in text
    bad = subprocess.run(["pokedex", "report", "no-such-exp"], cwd=repo, env=_env(repo.parent / "home"),
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "no experiment with metrics named no-such-exp" in bad.stderr


@pytest.mark.slow
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_hydra_multirun_writes_each_job_into_its_sweep_dir_and_leaves_dvc_outputs_alone(repo):
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro"], repo)
    best = repo / "models" / "train" / "weights" / "best.pt"
    before = best.read_bytes()
    out = _run([sys.executable, "-m", "stages.train", "-m", "hydra/launcher=parallel", "hydra.sweep.dir=sweep",
                "train.lr0=0.01,0.001"], repo)
    assert "is launching 2 jobs" in out  # joblib
    for job in ("0", "1"):
        assert (repo / "sweep" / job / "models" / "train" / "weights" / "best.pt").is_file()
        assert (repo / "sweep" / job / ".hydra" / "overrides.yaml").is_file()
    assert best.read_bytes() == before
    assert "up to date" in _run(["dvc", "status"], repo)
    runs = _mlflow_runs(repo)
    assert {runs[f"workspace-multirun-{job}"].data.tags["hydra.overrides"] for job in "01"} == {
        "train.lr0=0.01", "train.lr0=0.001"}
    shutil.rmtree(repo / "sweep")


@pytest.mark.slow
@pytest.mark.untracked
def test_stage_cli_overrides_and_user_errors(repo):
    """Ad-hoc Hydra overrides reach the stage; a user mistake is one sentence, exit code 2, no traceback."""
    env = _env(repo.parent / "home")
    bad = subprocess.run([sys.executable, "-m", "stages.ingest", "data.source=nowhere"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    out = bad.stdout + bad.stderr
    assert "data.source='nowhere' is not supported" in out and "Traceback" not in out
    bad = subprocess.run([sys.executable, "-m", "stages.train", "+train.bogus=1"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "train.bogus is not an Ultralytics train argument" in bad.stdout + bad.stderr
    # the script path works as well as `-m`, and an override reaches the stage without touching params.yaml
    params_before = (repo / "params.yaml").read_text()
    bad = subprocess.run([sys.executable, "stages/yolo_format.py", "data.split.train=0.5"], cwd=repo, env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "data.split fractions" in bad.stdout + bad.stderr
    assert (repo / "params.yaml").read_text() == params_before


@pytest.mark.slow
@pytest.mark.untracked
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_bad_params_stop_a_stage_before_it_touches_its_outputs(repo):
    """Each mistake is one sentence naming the key, exit code 2, and the outputs DVC recorded stay as they were."""
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro"], repo)
    best = (repo / "models" / "train" / "weights" / "best.pt").read_bytes()
    for override, message in [("train.lr0=abc", "train.lr0='abc' is invalid"),
                              ("train.epochs=-1", "train.epochs=-1 is invalid: it must be an integer ≥ 1"),
                              ("train.batch=0", "train.batch=0 is invalid"),
                              ("+train.dropout=x", "'train.dropout=x' is of invalid type str"),
                              ("model=doesnotexist", "model='doesnotexist' replaces the whole model: group")]:
        bad = subprocess.run([sys.executable, "-m", "stages.train", override], cwd=repo, env=_env(repo.parent / "home"),
                             capture_output=True, text=True)
        out = (bad.stdout + bad.stderr).strip()
        assert bad.returncode == 2 and message in out and "Traceback" not in out, (override, out[-2000:])
        assert len(out.splitlines()) == 1, out
    assert (repo / "models" / "train" / "weights" / "best.pt").read_bytes() == best
    assert "up to date" in _run(["dvc", "status"], repo)


class Started:
    """A command running in the background, its output (stdout and stderr) collected line by line."""

    def __init__(self, args: list[str], cwd: Path, **popen):
        import threading

        self.lines: list[str] = []
        # Ctrl-C acts as in a terminal even when this test runs as a background job (which ignores it)
        popen.setdefault("preexec_fn", lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.process = subprocess.Popen(args, cwd=cwd, env=_env(cwd.parent / "home"), stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, **popen)
        self.reader = threading.Thread(target=lambda: self.lines.extend(self.process.stdout), daemon=True)
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert self.process.poll() is None, f"ended before {text!r}:\n" + "".join(self.lines)[-3000:]
            assert time.monotonic() < deadline, f"no {text!r} after {timeout} s"
            time.sleep(0.05)

    def stage_process(self, module: str) -> psutil.Process:
        """The `python -m stages.X` that `dvc repro` started (a child, or a grandchild through $SHELL)."""
        for _ in range(600):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                if child.name() not in SHELLS and module in " ".join(child.cmdline()):
                    return child
            time.sleep(0.05)
        raise AssertionError(f"no {module} process under {self.process.pid}")

    def end(self, timeout: float = 60) -> str:
        self.process.wait(timeout)
        self.reader.join(timeout)
        return "".join(self.lines)


def _scratch_dirs(repo: Path) -> set[str]:
    return {p.name for p in stage_temp_dir(repo.parent / "home").glob("pokedex-scratch-*")}


@pytest.mark.slow
def test_ctrl_c_a_second_writer_and_a_killed_dvc_repro_end_train_cleanly(repo):
    """Ctrl-C: one line, the MLflow run KILLED, no temporary folder left. A second writer of the same outputs
    stops with one sentence. SIGKILL of `dvc repro` ends the train it started instead of leaving it running."""
    compose_params(repo / "params.yaml", [*TINY, "train.epochs=300"], root=repo)
    _run(["dvc", "repro", "yolo-format"], repo)
    train = Started([sys.executable, "-m", "stages.train"], repo)
    train.wait_for("Starting training")
    second = subprocess.run([sys.executable, "-m", "stages.train"], cwd=repo, env=_env(repo.parent / "home"),
                            capture_output=True, text=True)
    assert second.returncode == 2
    assert f"models/train is being written by train (pid {train.process.pid}); wait for it" in second.stdout + second.stderr
    scratch = f"pokedex-scratch-{train.process.pid}"
    assert scratch in _scratch_dirs(repo)
    train.process.send_signal(signal.SIGINT)
    out = train.end()
    assert train.process.returncode == 130 and "Traceback" not in out
    assert out.strip().splitlines()[-1] == ("train stopped by Ctrl-C; its outputs are incomplete and DVC records "
                                            "nothing: run it again to rebuild them.")
    assert scratch not in _scratch_dirs(repo)
    killed = [r for r in _mlflow_runs_all(repo) if r.data.tags.get("pokedex.process", "").endswith(f":{train.process.pid}")]
    assert [r.info.status for r in killed] == ["KILLED"]

    repro = Started(["dvc", "repro", "train"], repo)
    stage = repro.stage_process("stages.train")
    try:
        repro.wait_for("Starting training")
        repro.process.kill()  # not reaped until repro.end(): a zombie DVC must count as gone
        stage.wait(30)  # ends within the watch's poll, not after 300 epochs (psutil gives no code: not our child)
        assert "train stopped by the end of the dvc repro that started it" in repro.end()
    finally:  # a live or unreaped DVC would hold .dvc/tmp/rwlock for the tests that follow
        if stage.is_running():
            stage.kill()
        repro.process.kill()
        repro.process.wait()
    compose_params(repo / "params.yaml", TINY, root=repo)


@pytest.mark.slow
@pytest.mark.untracked
def test_an_interrupted_training_resumes_to_its_planned_epochs_and_only_with_its_own_params(repo):
    compose_params(repo / "params.yaml", [*TINY, "train.epochs=40"], root=repo)
    _run(["dvc", "repro", "yolo-format"], repo)
    results = repo / "models" / "train" / "results.csv"
    train = Started([sys.executable, "-m", "stages.train"], repo)
    train.wait_for("Starting training")
    while not results.is_file() or len(results.read_text().splitlines()) < 1 + 3:
        assert train.process.poll() is None, "".join(train.lines)[-2000:]
        time.sleep(0.05)
    train.process.send_signal(signal.SIGINT)
    train.end()
    done_before = len(results.read_text().splitlines()) - 1
    assert train.process.returncode == 130 and 3 <= done_before < 40

    env = _env(repo.parent / "home")
    other = subprocess.run([sys.executable, "-m", "stages.train", "train.resume=true", "train.lr0=0.01"], cwd=repo,
                           env=env, capture_output=True, text=True)
    assert other.returncode == 2 and "was trained with other params (lr0=0.001 there, 0.01 now)" in other.stdout + other.stderr
    out = _run([sys.executable, "-m", "stages.train", "train.resume=true"], repo)
    assert "Resuming training" in out
    epochs = [int(row.split(",")[0]) for row in results.read_text().splitlines()[1:]]
    assert epochs == list(range(1, 41))  # the rows before the interruption, then the rest: each epoch once
    assert (repo / "models" / "train" / "weights" / "best.pt").is_file()
    finished = subprocess.run([sys.executable, "-m", "stages.train", "train.resume=true"], cwd=repo, env=env,
                              capture_output=True, text=True)
    assert finished.returncode == 2 and "is from a training that finished; nothing to resume" in finished.stdout + finished.stderr
    compose_params(repo / "params.yaml", TINY, root=repo)


def _mlflow_runs_all(repo: Path) -> list:
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("pokedex")
    return client.search_runs([experiment.experiment_id])


@pytest.mark.slow
@pytest.mark.untracked
def test_params_changed_while_a_stage_runs_fail_it_instead_of_being_recorded(repo):
    """A refused `dvc exp run -S` has already rewritten params.yaml: the running stage must not let DVC record
    its outputs under the new value (dvc.lock and the run cache would then restore the wrong model)."""
    compose_params(repo / "params.yaml", [*TINY, "train.epochs=4"], root=repo)
    lock_before = (repo / "dvc.lock").read_text()
    repro = Started(["dvc", "repro", "train"], repo)
    repro.wait_for("Starting training")
    compose_params(repo / "params.yaml", [*TINY, "train.epochs=4", "train.lr0=0.0005"], root=repo)
    out = repro.end(300)
    assert repro.process.returncode != 0
    assert "params.yaml changed while train ran (train.lr0: 0.001 → 0.0005)" in out
    assert (repo / "dvc.lock").read_text() == lock_before
    assert "train" in _run(["dvc", "status", "train"], repo)  # not up to date: the next repro trains with 0.0005
    compose_params(repo / "params.yaml", TINY, root=repo)


def _compiling(repo: Path, stage: psutil.Process) -> bool:
    return any("nncase_worker.py" in " ".join(child.cmdline()) for child in stage.children(recursive=True))


def _written_since(folder: Path, start: float) -> bool:
    """An image of this run in the folder (the last run's are there until the stage clears the folder)."""
    try:
        return any(path.stat().st_mtime > start for path in folder.rglob("*.jpg"))
    except FileNotFoundError:  # the stage is clearing the folder
        return False


# stage: (what makes its work last long enough to be caught, the moment to kill it)
KILL_MOMENTS = {
    "preprocess": (["data.synthetic.images_per_class=300"],
                   lambda repo, stage: _written_since(repo / "data" / "processed" / "images", stage.create_time())),
    "train": (["train.epochs=300"], lambda repo, _: (repo / "models" / "train" / "results.csv").is_file()),
    "compile-kmodel": ([], _compiling),
}
KILL_STAGES = [pytest.param("preprocess", marks=pytest.mark.untracked), "train",  # train: its MLflow run ends KILLED
               pytest.param("compile-kmodel", marks=[needs_nncase, pytest.mark.untracked])]


@pytest.mark.slow
@pytest.mark.parametrize("stage", KILL_STAGES)
def test_a_stage_killed_mid_work_is_rebuilt_by_the_next_repro(repo, stage):
    """SIGKILL at a real moment of the stage's work (images half written, an epoch done, nncase compiling): DVC
    calls the stage changed, the next `dvc repro` rebuilds it, and nothing of the killed run is left behind."""
    overrides, moment = KILL_MOMENTS[stage]
    compose_params(repo / "params.yaml", [*TINY, *overrides], root=repo)
    _run(["dvc", "repro", STAGES[STAGES.index(stage) - 1]], repo)
    repro = Started(["dvc", "repro", "--force", "--single-item", stage], repo)
    process = repro.stage_process("stages." + stage.replace("-", "_"))
    deadline = time.monotonic() + 120
    while not moment(repo, process):
        assert process.is_running() and time.monotonic() < deadline, f"{stage} ended before the moment to kill it"
        time.sleep(0.02)
    process.kill()
    repro.end()
    assert repro.process.returncode != 0
    assert stage in _run(["dvc", "status", stage], repo)

    assert f"pokedex-scratch-{process.pid}" in _scratch_dirs(repo)  # SIGKILL skips every cleanup

    if stage == "train":  # the rebuild need not train 300 epochs
        compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro", "--force", "--single-item", stage], repo)  # forced: DVC could restore a run of these params from its cache
    assert "up to date" in _run(["dvc", "status", stage], repo)
    assert f"pokedex-scratch-{process.pid}" not in _scratch_dirs(repo)  # the next stage run removed it
    if stage == "train":
        killed = [r for r in _mlflow_runs_all(repo) if r.data.tags.get("pokedex.process", "").endswith(f":{process.pid}")]
        assert [r.info.status for r in killed] == ["KILLED"]
    compose_params(repo / "params.yaml", TINY, root=repo)


@pytest.mark.slow
@pytest.mark.untracked
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_push_then_a_fresh_clone_pulls_everything_and_reruns_nothing(repo):
    """The default remote (a folder beside the repository) round trip: push, clone, pull, nothing to redo;
    experiments travel with `dvc exp push/pull`, and `dvc get` fetches just the K210 bundle."""
    compose_params(repo / "params.yaml", TINY, root=repo)
    _run(["dvc", "repro"], repo)
    commit(repo, "results")
    _run(["dvc", "push"], repo)
    assert (repo.parent / "pokedex-dvc-storage" / "files" / "md5").is_dir()
    origin = repo.parent / "origin.git"
    _run(["git", "init", "-q", "--bare", str(origin)], repo.parent)
    _run(["git", "remote", "add", "origin", str(origin)], repo)
    _run(["git", "push", "-q", "origin", "HEAD"], repo)
    _run(["dvc", "exp", "run", "-n", "shared-exp", "-S", "debug=quick", "-S", "evaluate.latency_images=2"], repo)
    _run(["dvc", "exp", "push", "origin", "shared-exp"], repo)  # git refs to origin, outputs to the DVC remote

    clone = repo.parent / "clone"
    _run(["git", "clone", "-q", str(origin), str(clone)], repo.parent)
    identify(clone)
    assert not (clone / "deploy" / "k210").exists()
    _run(["dvc", "pull"], clone)
    for path in ("deploy/k210/model.kmodel", "models/model.onnx", "models/train/weights/best.pt", "models/adapted/weights/best.pt",
                 "data/yolo_dataset.tar"):
        assert (clone / path).read_bytes() == (repo / path).read_bytes(), path
    assert "up to date" in _run(["dvc", "status"], clone)
    assert _ran(_run(["dvc", "repro"], clone)) == []
    # the dataset folders are archives in DVC (pokedex.core.archive): `pokedex unpack` (make pull) lays them out
    assert not (clone / "data" / "yolo_dataset").exists()
    assert "data/yolo_dataset: unpacked" in _run(["pokedex", "unpack"], clone)
    for folder in ("data/raw/all_pokemon", "data/processed/images", "data/yolo_dataset", "data/detect_dataset"):
        assert _listing(clone / folder) == _listing(repo / folder), folder
    assert "data/yolo_dataset: up to date" in _run(["pokedex", "unpack"], clone)

    _run(["dvc", "exp", "pull", "origin", "shared-exp"], clone)
    _run(["dvc", "exp", "apply", "shared-exp"], clone)
    assert yaml.safe_load((clone / "params.yaml").read_text())["evaluate"]["latency_images"] == 2
    assert "up to date" in _run(["dvc", "status"], clone)

    bundle = repo.parent / "just-the-bundle"
    _run(["dvc", "get", str(repo), "deploy/k210", "-o", str(bundle)], repo.parent)
    assert sorted(p.name for p in bundle.iterdir()) == BUNDLE
    assert (bundle / "model.kmodel").read_bytes() == (repo / "deploy" / "k210" / "model.kmodel").read_bytes()


@pytest.mark.slow
@pytest.mark.untracked
def test_folder_source_through_dvc_reruns_from_ingest_when_photos_are_added(repo, tmp_path):
    """data=folder under DVC: the photo folder is a dependency of ingest, so adding a photo reruns the data
    stages; the rejects of both stages account for every file."""
    from PIL import Image

    photos = tmp_path / "photos"
    for dex in (1, 2, 3):
        (photos / f"{dex:04d}").mkdir(parents=True)
        for k in range(4):
            Image.new("RGB", (40, 40), (dex * 60, k * 50, 90)).save(photos / f"{dex:04d}" / f"{k}.png")
    (photos / "0002" / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    compose_params(repo / "params.yaml", ["data=folder", f"data.folder.root={photos}", "data.num_classes=3",
                                          "data.image_size=32"], root=repo)
    out = _run(["dvc", "repro", "yolo-format"], repo)
    assert _ran(out) == ["ingest", "preprocess", "yolo-format"]
    assert "13 files in, 12 processed, 1 rejected" in out
    rejects = (repo / "data" / "processed" / "rejects.csv").read_text()
    assert "0002/broken.jpg,not an image" in rejects
    assert (repo / "data" / "yolo_dataset" / "classes.txt").read_text() == "Bulbasaur\nIvysaur\nVenusaur\n"

    assert _ran(_run(["dvc", "repro", "yolo-format"], repo)) == []
    # DVC tracks the raw folder as one archive; the folder is its view: a hand edit there is not an input (the
    # photo folder is), and a stage reading the folder first restores it from the archive
    edited = repo / "data" / "raw" / "all_pokemon" / "0001" / "0.png"
    original = edited.read_bytes()
    Image.new("RGB", (40, 40), (0, 0, 0)).save(edited)
    assert "up to date" in _run(["dvc", "status", "--with-deps", "yolo-format"], repo)
    restored = _run(["dvc", "repro", "--force", "--single-item", "preprocess"], repo)
    assert "unpacked data/raw/all_pokemon from its archive" in restored and _ran(restored) == ["preprocess"]
    assert edited.read_bytes() == original and "up to date" in _run(["dvc", "status", "--with-deps", "yolo-format"], repo)
    row = f"0001/0.png,{len(original)},{hashlib.sha256(original).hexdigest()}"
    assert row in (repo / "data" / "raw" / "files.csv").read_text().splitlines()

    Image.new("RGB", (40, 40), (10, 200, 10)).save(photos / "0003" / "new.png")
    assert _ran(_run(["dvc", "repro", "yolo-format"], repo)) == ["ingest", "preprocess", "yolo-format"]
    compose_params(repo / "params.yaml", TINY, root=repo)


@pytest.mark.slow
@pytest.mark.untracked
def test_pokeapi_package_through_dvc_then_a_noop_repro_needs_neither_npm_nor_the_package(repo, tmp_path):
    """data=pokeapi with no root: the package (here one made with `npm pack <folder>`, offline) is fetched into
    the cache beside DVC's root; once built, `dvc repro` reruns nothing, even with the package and cache gone."""
    from .sprites import GEN5, VIEWS, npm_pack, sprite_tree

    folder = sprite_tree(tmp_path / "pkg", species=(1, 2, 3))
    _, integrity = npm_pack(folder, tmp_path / "packed")
    quick_detector = ["detector.data.image_size=64", "detector.data.scenes.train=24", "detector.data.scenes.validation=6",
                      "detector.data.scenes.test=6", "detector.train.epochs=1", "detector.train.batch=8"]
    compose_params(repo / "params.yaml", ["data=pokeapi", f"data.pokeapi.package='{folder}'",
                                          f"data.pokeapi.integrity='{integrity}'", "data.pokeapi.frames_per_animation=3",
                                          f"data.pokeapi.folders=[{','.join(VIEWS + [GEN5 + '/female'])}]",
                                          "data.image_size=32", "train.epochs=1", "train.batch=8", "train.plots=false",
                                          "distill.train.epochs=1", "evaluate.latency_images=2", *quick_detector],
                   root=repo)
    out = _run(["dvc", "repro", "evaluate"], repo)
    assert _ran(out) == ["ingest", "preprocess", "yolo-format", "detect-format", "train-detector", "train", "distill",
                         "adapt", "enroll", "evaluate"]
    assert list((repo / ".cache" / "pokedex").glob("npm-*.tgz"))
    assert sorted(p.name for p in (repo / "data" / "raw" / "all_pokemon").iterdir()) == ["0001", "0002", "0003"]
    assert "substitute.gif,not named by a species number" in (repo / "data" / "raw" / "ingest_rejects.csv").read_text()
    metrics = json.loads((repo / "reports" / "eval" / "metrics.json").read_text())
    assert {"scene_top1", "scene_top5", "scene_per_class_top1_min"} <= set(metrics)
    assert metrics["test_groups"] >= 3 and metrics["test_groups_seen_in_training"] == 0

    shutil.rmtree(folder)
    shutil.rmtree(repo / ".cache")
    assert _ran(_run(["dvc", "repro", "evaluate"], repo)) == []
    compose_params(repo / "params.yaml", TINY, root=repo)



@pytest.mark.slow
@needs_nncase  # runs the whole DAG, compile-kmodel included
def test_every_module_a_stage_runs_is_a_dependency_of_that_stage_in_dvc_yaml(built):
    """Each stage run under an import tracer (sitecustomize): every project module it loaded, however late
    (lazy imports, unpickling), must be inside a code folder or file the stage lists in dvc.yaml, or DVC would
    call stale outputs up to date (tests/test_layout.py checks the same statically)."""
    log = built / "imports.jsonl"  # the first `dvc repro` of every stage ran under the tracer
    stages = yaml.safe_load((built / "repo" / "dvc.yaml").read_text())["stages"]
    by_module = {spec["cmd"].split()[-1].split(".")[-1] + ".py": name for name, spec in stages.items()}
    missing, loaded = [], {name: set() for name in stages}
    for line in log.read_text().splitlines():
        run = json.loads(line)
        name = by_module[run["stage"]]
        deps = [d for d in stages[name]["deps"] if "${" not in d]
        loaded[name].add(f"stages/{run['stage']}")  # the entrypoint itself runs as __main__
        for path in run["files"]:
            loaded[name].add(path)
            if not any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps):
                missing.append(f"{name}: {path}")
    assert sorted({json.loads(line)["stage"] for line in log.read_text().splitlines()}) == sorted(by_module)
    assert not missing, "dvc.yaml lacks these code deps:\n" + "\n".join(sorted(set(missing)))
    # and no code folder or file a stage never loads: a change there would rerun the stage for nothing
    extra = [f"{name}: {dep}" for name, spec in stages.items() for dep in spec["deps"]
             if dep.startswith(("pokedex", "stages")) and not any(p == dep or p.startswith(dep + "/") for p in loaded[name])]
    assert not extra, "dvc.yaml lists code deps the stage never loads:\n" + "\n".join(extra)
