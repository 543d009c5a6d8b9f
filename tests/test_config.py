"""params.yaml, conf/ and dvc.yaml agree with each other; `pokedex params`; the multirun launcher configs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from pokedex.core.config import compose_params
from pokedex.core.stage import hydra_argv

from .conftest import ROOT, make_cfg
from .test_layout import import_graph, project_modules, reachable


def test_committed_params_equal_composition_of_conf(tmp_path):
    composed = tmp_path / "params.yaml"
    compose_params(composed)
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == yaml.safe_load(composed.read_text()), (
        "params.yaml is stale: run `make params` after editing conf/"
    )


def rule_keys(path: Path) -> set[str]:
    """The keys a module's top-level PARAM_RULES declares."""
    from pokedex.core.checks import RULES_NAME

    return {key.value for node in ast.parse(path.read_text(encoding="utf-8")).body if isinstance(node, ast.Assign)
            and any(getattr(t, "id", None) == RULES_NAME for t in node.targets) for key in node.value.keys}


def test_each_param_rule_is_declared_once_by_the_module_that_reads_the_key():
    """PARAM_RULES live with the code that reads the keys (the stage decorator collects those of the modules a stage
    loaded): no key in two modules, none in core (which knows nothing of Pokémon), each one a key of params.yaml."""
    import importlib

    from pokedex.core.checks import declared_rules

    owners: dict[str, list[str]] = {}
    for module, path in sorted(project_modules().items()):
        for key in rule_keys(path):
            owners.setdefault(key, []).append(module)
            importlib.import_module(module)
    assert {key: mods for key, mods in owners.items() if len(mods) > 1} == {}
    assert not [key for key, (mod,) in owners.items() if not mod.startswith("pokedex.") or mod.startswith("pokedex.core")]
    assert len(owners) >= 45 and set(declared_rules()) == set(owners)
    params = OmegaConf.create(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert [key for key in owners if OmegaConf.select(params, key, default="absent") == "absent"] == []


def test_every_stage_checks_each_rule_of_the_params_it_reads():
    """A stage collects the PARAM_RULES of the modules loaded when it starts (its entrypoint's module-level imports,
    and theirs): for each stage, every declared rule of a key it lists in dvc.yaml is among them."""
    from pokedex.core.checks import _covered, stage_params

    rules = {module: rule_keys(path) for module, path in project_modules().items()}
    declared = set().union(*rules.values())
    graph = import_graph(module_level=True)  # module level only: what runs before the stage checks its params
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, spec in stages.items():
        checked = set().union(*(rules[module] for module in reachable(graph, spec["cmd"].split()[-1])))
        watched = stage_params(ROOT, name)
        assert sorted(k for k in declared if _covered(k, watched) and k not in checked) == [], name


def test_the_detectors_training_keys_come_from_the_train_group():
    """detector.train is conf/train/detector.yaml: the classifier's recipe (conf/train/default.yaml) with the
    detector's own keys over it, so a key they share is written once; conf/detector/ writes none of them."""
    cfg = make_cfg()
    own = yaml.safe_load((ROOT / "conf" / "train" / "detector.yaml").read_text())
    shared = yaml.safe_load((ROOT / "conf" / "train" / "default.yaml").read_text())
    assert own["defaults"] == ["default", "_self_"]
    own_keys = set(own) - {"defaults"}
    assert dict(cfg.detector.train) == {**shared, **{k: own[k] for k in own_keys}}
    assert {"batch", "optimizer", "cache"} <= set(shared) - own_keys  # written once, for both models
    assert cfg.detector.train.epochs == own["epochs"]  # its own: the classifier's follow its repeated art
    detector_group = yaml.safe_load((ROOT / "conf" / "detector" / "default.yaml").read_text())
    assert "train" not in detector_group and "model" not in detector_group
    assert dict(cfg.detector.model) == yaml.safe_load((ROOT / "conf" / "model" / "k210n-det.yaml").read_text())
    assert "clip" not in cfg.enroll  # one CLIP block: enroll.embedding=clip reads clip.model and clip.pretrained


def test_every_dvc_param_key_exists_in_params():
    params = OmegaConf.create(yaml.safe_load((ROOT / "params.yaml").read_text()))
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        for key in stage.get("params", []):
            assert OmegaConf.select(params, key, default="<missing>") != "<missing>", f"{name}: {key}"


def test_group_switches_compose():
    detect = make_cfg("model=yolov8n", "train=aggressive", "train.lr0=0.02")
    assert detect.model.task == "detect"
    assert detect.train.optimizer == "SGD" and detect.train.lr0 == 0.02 and detect.train.mixup == 0.3
    baseline = make_cfg("train=baseline")
    assert baseline.train.lr0 == 1e-4 and baseline.train.warmup_epochs == 5 and baseline.train.batch == 16
    assert baseline.train.cos_lr is True and baseline.train.mosaic == 0.0 and baseline.train.fliplr == 0.5


def test_named_experiments_compose_as_dvc_exp_run_composes_them(tmp_path):
    """conf/experiment/NAME.yaml is `dvc exp run -S +experiment=NAME`: DVC's own Hydra helper composes it into
    params.yaml, and it changes what it says it changes."""
    composed = {}
    for name in sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")):
        compose_params(tmp_path / f"{name}.yaml", [f"+experiment={name}", "seed=1"])
        composed[name] = yaml.safe_load((tmp_path / f"{name}.yaml").read_text())
        assert composed[name]["seed"] == 1
    default = make_cfg()
    assert default.model.arch != "k210n-cls.yaml" and default.distill.soft > 0
    scratch = composed["scratch"]
    assert scratch["model"]["arch"] == "k210n-cls.yaml" and scratch["model"]["weights"] is None
    assert scratch["train"]["epochs"] == 23 and scratch["train"]["lr0"] == 0.003
    assert composed["untaught"]["distill"]["soft"] == 0.0
    assert composed["untaught"]["model"] == OmegaConf.to_container(default.model, resolve=True)


def test_default_data_is_real_pokemon_and_the_synthetic_configs_stay():
    default = make_cfg().data
    assert list(default.source) == ["pokeapi", "pokesprite"] and default.num_classes >= 905
    assert default.split.group_by == "animation" and default.pokesprite.folders == ["pokemon-gen8", "pokemon-gen7x"]
    animated = [f for f in default.pokeapi.folders if "animated" in f]
    assert len(animated) == 8 and [f for f in default.pokeapi.folders if f not in animated] == \
        ["other/dream-world", "other/dream-world/female"]  # every drawing that installs
    assert list(default.split.train_only) == ["other-dream-world"]  # a species' one piece of art trains
    assert make_cfg("data=synthetic").data.synthetic.num_classes >= 50
    assert make_cfg("data=synthetic_1025").data.synthetic.num_classes == 1025


def test_hydra_settings_are_added_unless_the_user_gives_them():
    argv = hydra_argv(["train.epochs=1"], ROOT)
    assert "hydra.run.dir=." in argv and "hydra.output_subdir=null" in argv and argv[-1] == "train.epochs=1"
    argv = hydra_argv(["hydra.run.dir=elsewhere"], ROOT)
    assert "hydra.run.dir=." not in argv and "hydra.run.dir=elsewhere" in argv


def test_multirun_keeps_hydra_sweep_dirs_and_finds_our_launchers():
    argv = hydra_argv(["train.lr0=0.1,0.2", "--multirun"], ROOT, name="train")
    assert argv == ["--multirun", f"hydra.searchpath=[file://{ROOT / 'conf'}]", "hydra.job.name=train",
                    "train.lr0=0.1,0.2"]


def test_debug_quick_is_a_one_word_override():
    quick = make_cfg("debug=quick")
    assert quick.data.synthetic.num_classes == 4 and quick.train.epochs == 1 and quick.kmodel.eval_images == 4
    assert make_cfg("debug=quick", "train.epochs=2").train.epochs == 2  # later overrides still win


def test_pokedex_params_writes_the_params_of_the_project_it_is_run_in(tmp_path):
    """Not those of the checkout the package was installed from (`pip install -e` of another clone)."""
    import shutil
    import subprocess
    import sys

    project = tmp_path / "other-clone"
    shutil.copytree(ROOT / "conf", project / "conf")
    (project / "conf" / "train" / "default.yaml").write_text(
        re.sub(r"^epochs: \d+", "epochs: 7", (ROOT / "conf" / "train" / "default.yaml").read_text(), flags=re.M))
    (project / "deep" / "er").mkdir(parents=True)
    before = (ROOT / "params.yaml").read_text()
    done = subprocess.run([sys.executable, "-m", "pokedex.cli", "params", "seed=3"], cwd=project / "deep" / "er",
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    written = yaml.safe_load((project / "params.yaml").read_text())
    assert written["train"]["epochs"] == 7 and written["seed"] == 3
    assert (ROOT / "params.yaml").read_text() == before
    outside = subprocess.run([sys.executable, "-m", "pokedex.cli", "params"], cwd=tmp_path, capture_output=True, text=True)
    assert outside.returncode == 1 and "is not inside a Pokédex project (no conf/config.yaml here or above)" in outside.stderr


def launcher_config(name: str):
    with initialize_config_dir(str(ROOT), version_base="1.3"):
        cfg = compose("params", return_hydra_config=True,
                      overrides=[f"hydra.searchpath=[file://{ROOT / 'conf'}]", f"hydra/launcher={name}"])
    return cfg.hydra.launcher


def test_local_launcher_is_hydras_basic_one():
    # Hydra refuses to instantiate its own internal classes from a config; it builds this one itself.
    assert launcher_config("local")._target_ == "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


@pytest.mark.parametrize("launcher, target", [("parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launcher_configs_compose_and_instantiate(launcher, target):
    """The stages' multirun launchers (conf/hydra/launcher/); SLURM has no cluster here, so this is its test."""
    launcher_cfg = launcher_config(launcher)
    assert type(instantiate(launcher_cfg)).__name__ == target
    if launcher == "slurm":
        assert launcher_cfg.gpus_per_node == 1 and launcher_cfg.timeout_min == 120


def test_the_environment_is_the_lock_and_the_lock_holds_every_pin():
    """`make setup` installs requirements.lock: every package in it is installed at its version here, and each
    exact pin of pyproject.toml is in it at that version (`make lock` writes it from them)."""
    import re
    import tomllib
    from importlib.metadata import PackageNotFoundError, version

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lines = (ROOT / "requirements.lock").read_text().splitlines()
    locked = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert len(locked) > 100 and all(v and "*" not in v for v in locked.values())
    missing = []
    for name, pinned in locked.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != pinned:
            missing.append(f"{name}=={pinned} (installed: {installed})")
    assert not missing, f"the environment differs from requirements.lock (run `make setup`): {missing}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [d.split("#")[0].strip() for d in project["dependencies"] + project["optional-dependencies"]["dev"]]
    exact = dict(p.split("==") for p in pins if "==" in p)
    by_name = {canonical(n): v for n, v in locked.items()}
    assert {n: v for n, v in exact.items() if by_name.get(canonical(n)) != v} == {}, "run `make lock`"
