"""`pokedex report`: one self-contained HTML page comparing DVC experiments, readable offline.

DVC's own `dvc plots` HTML loads its charting library from a CDN and is blank without network. This page
takes the same data through DVC's API (`dvc.api.exp_show` for params and metrics, `dvc.api.read` for each
experiment's `results.csv` and confusion matrix from the DVC cache), draws the curves with matplotlib and
inlines every image as base64: no script, no link, nothing to fetch.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pokedex.errors import PokedexError

log = logging.getLogger(__name__)

RESULTS = "models/train/results.csv"
CONFUSION = "reports/eval/confusion_matrix.png"
# (column in `dvc exp show`, heading, scale): the metrics that matter for this project
KEY_METRICS = [
    ("top1", "test top-1", 1), ("top5", "test top-5", 1), ("scene_top1", "scene top-1", 1),
    ("latency_ms", "CPU ms/image", 1),
    ("kmodel_bytes", "kmodel MB", 1e-6), ("ram_bytes", "K210 RAM MB", 1e-6), ("fits_k210", "fits K210", 1),
    ("kmodel_top1", "kmodel top-1", 1),
]
CURVES = [("metrics/accuracy_top1", "validation top-1"), ("val/loss", "validation loss"), ("train/loss", "train loss")]
INFO_COLUMNS = {"Experiment", "rev", "typ", "Created", "parent", "State", "Executor"}


@dataclass
class Experiment:
    name: str
    rev: str | None  # None: the workspace
    row: dict
    curves: dict[str, list[float]] = field(default_factory=dict)
    confusion_png: bytes | None = None


def _read(path: str, repo: str, rev: str | None, mode: str = "r"):
    import dvc.api

    try:
        return dvc.api.read(path, repo=repo, rev=rev, mode=mode)
    except Exception as exc:  # noqa: BLE001 - a missing file leaves a gap in the page, not a crash
        log.warning("report: %s at %s is not available (%s)", path, rev or "workspace", type(exc).__name__)
        return None


def parse_results(text: str) -> dict[str, list[float]]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {key.strip(): [float(r[key]) for r in rows] for key in (rows[0] if rows else {})}


def load_experiments(repo: str = ".", names: list[str] | None = None) -> list[Experiment]:
    """Workspace, HEAD and HEAD's experiments with metrics (as `dvc exp show`), optionally only `names`."""
    import dvc.api

    try:
        rows = dvc.api.exp_show(repo)
    except Exception as exc:  # noqa: BLE001 - e.g. not a DVC repository
        raise PokedexError(f"cannot list the experiments of {Path(repo).resolve()} ({exc}); run `pokedex report` "
                           "inside the project's git + DVC checkout.") from exc
    experiments = []
    for row in rows:
        if row.get("top1") is None:  # queued, running or failed: nothing to compare yet
            continue
        name = row["Experiment"] or row["rev"]
        if names and name not in names and row["rev"] not in names:
            continue
        rev = None if row["rev"] == "workspace" else row["rev"]
        exp = Experiment(name, rev, row)
        if (results := _read(RESULTS, repo, rev)) is not None:
            exp.curves = parse_results(results)
        exp.confusion_png = _read(CONFUSION, repo, rev, mode="rb")
        experiments.append(exp)
    if len(experiments) > 1 and _same(experiments[0].row, experiments[1].row):
        experiments.pop(0)  # the workspace holds nothing HEAD does not
    if names and (missing := set(names) - {e.name for e in experiments} - {e.rev for e in experiments}):
        raise PokedexError(f"no experiment with metrics named {', '.join(sorted(missing))}; "
                           "see `dvc exp show` for the names.")
    if not experiments:
        raise PokedexError("no experiment has metrics yet; run `dvc repro` or `dvc exp run` first.")
    return experiments


def _same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in INFO_COLUMNS)


def changed_params(experiments: list[Experiment], repo: str = ".") -> list[str]:
    """Param columns whose value differs between the experiments (what `dvc exp show --only-changed` keeps)."""
    import dvc.api

    from pokedex.tracking import flatten

    names = flatten(dvc.api.params_show(repo=repo))
    return [k for k in names if len({str(e.row.get(k)) for e in experiments}) > 1]


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def curves_png(experiments: list[Experiment]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(5 * len(CURVES), 3.6))
    for ax, (key, title) in zip(axes, CURVES):
        for exp in experiments:
            if key in exp.curves:
                ax.plot(exp.curves["epoch"], exp.curves[key], marker="o", markersize=3, label=exp.name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    encoded = _png(fig)
    plt.close(fig)
    return encoded


def _cell(value, scale: float = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or value in ("True", "False"):  # dvc.api.exp_show gives booleans as text
        return "yes" if value in (True, "True") else "no"
    if isinstance(value, (int, float)):
        return f"{value * scale:.4g}"
    return html.escape(str(value))


def render(experiments: list[Experiment], params: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["experiment", "rev", *(h for _, h, _ in KEY_METRICS), *params])
    body = "".join(
        "<tr>" + f"<td>{html.escape(e.name)}</td><td>{html.escape(e.rev or 'workspace')}</td>"
        + "".join(f"<td>{_cell(e.row.get(k), s)}</td>" for k, _, s in KEY_METRICS)
        + "".join(f"<td>{_cell(e.row.get(k))}</td>" for k in params) + "</tr>"
        for e in experiments)
    confusions = "".join(
        f"<figure><img alt='confusion matrix of {html.escape(e.name)}' "
        f"src='data:image/png;base64,{base64.b64encode(e.confusion_png).decode()}'>"
        f"<figcaption>{html.escape(e.name)}</figcaption></figure>"
        for e in experiments if e.confusion_png)
    curves = (f"<img alt='training curves' src='data:image/png;base64,{curves_png(experiments)}'>"
              if any(e.curves for e in experiments) else "<p>No training curves found.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pokédex experiments</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }} figure img {{ max-width: 560px; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Pokédex experiments</h1>
<p>{len(experiments)} experiment(s); params listed are those that differ between them.</p>
<h2>Metrics</h2>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Training curves</h2>
{curves}
<h2>Confusion matrices (test split)</h2>
{confusions or "<p>No confusion matrix found.</p>"}
</body></html>
"""


def write_report(output: Path, repo: str = ".", names: list[str] | None = None) -> Path:
    experiments = load_experiments(repo, names)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(experiments, changed_params(experiments, repo)), encoding="utf-8")
    log.info("report: %d experiments -> %s", len(experiments), output)
    return output
