"""The benchmarks share one frame (benchmarks/common.py): each answers --help, most import the frame, and a model
argument defaults to what the pipeline ships (params.yaml's paths), not to an intermediate model."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
import yaml

from .conftest import ROOT

BENCHMARKS = sorted(p for p in (ROOT / "benchmarks").glob("*.py") if p.name != "common.py")


def test_most_benchmarks_stand_on_the_shared_frame_and_the_index_names_every_one():
    users = [p.name for p in BENCHMARKS if any(isinstance(node, ast.ImportFrom) and node.module == "common"
                                               for node in ast.parse(p.read_text(encoding="utf-8")).body)]
    assert len(users) >= 0.75 * len(BENCHMARKS), f"only {users} import benchmarks/common.py"
    index = (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")
    assert [p.name for p in BENCHMARKS if f"`{p.name}" not in index] == [], "benchmarks/README.md is the index"


HELP_EACH = """
import runpy, sys
sys.path.insert(0, "benchmarks")
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as done:
        if done.code not in (0, None):
            raise
    else:
        raise SystemExit(f"{script} ran instead of answering --help")
"""


@pytest.mark.slow
def test_each_benchmark_answers_help_without_running():
    """One process reads every script's --help: its imports resolve and nothing is measured."""
    done = subprocess.run([sys.executable, "-c", HELP_EACH, *(str(p.relative_to(ROOT)) for p in BENCHMARKS)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("usage:") == len(BENCHMARKS)


def test_a_model_argument_defaults_to_the_model_the_pipeline_ships():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import common
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    paths = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["paths"]
    parser = common.argument_parser(None)
    common.add_model(parser)
    common.add_detector(parser, default=True)
    common.add_enrolled(parser)
    common.add_field(parser)
    args = parser.parse_args(["--field", "somewhere"])
    assert args.model == ROOT / paths["weights"] and paths["weights"].startswith("models/adapted/")
    assert args.detector == ROOT / paths["detector_weights"] and args.enrolled == ROOT / paths["enrolled"]
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --field is required where a script reads folders
