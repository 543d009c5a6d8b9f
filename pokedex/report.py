"""`pokedex report`: one self-contained HTML page comparing DVC experiments, readable offline.

DVC's own `dvc plots` HTML loads its charting library from a CDN and is blank without network. This page
takes the same data through DVC's API (`dvc.api.exp_show` for params and metrics, `dvc.api.read` for each
experiment's `results.csv` and `predictions.csv`), draws the curves with matplotlib and inlines every image
as base64: no script, no link, nothing to fetch. Evaluate's frames.png shows how each experiment's detector
and classifier read a few camera frames. Instead of a confusion matrix (unreadable from 150 classes
up) it shows each experiment's most-confused species pairs and worst classes, with a picture of each.

With `--field DIR ...` (folders of `NNNN/*` pictures: your own, or a field set) the page opens with how the
workspace's models read pictures like those, beside the test split: top-1/top-5 of the classifier on the whole
picture and of plain `pokedex predict` (detector first, pokedex/recognise/views.py), and the K210's network's top-1
both ways; the command prints that table in Markdown too.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pokedex.core.archive import view
from pokedex.core.config import project_paths
from pokedex.core.errors import PokedexError

log = logging.getLogger(__name__)

TOP_PAIRS = 12     # most-confused (actual, predicted) pairs shown per experiment
WORST_CLASSES = 12
CLIP_CHANGES = 12  # species whose top-1 the CLIP hybrid changes most, shown per experiment
# (column in `dvc exp show`, heading, scale): the metrics that matter for this project
KEY_METRICS = [
    ("top1", "test top-1", 1), ("top5", "test top-5", 1), ("scene_top1", "scene top-1", 1),
    ("scene_top1_detected", "scene top-1, detected crop", 1), ("field_top1", "field top-1", 1),
    ("field_top1_detected", "field top-1, detected crop", 1), ("field_accepted", "field accepted", 1),
    ("open_set_auroc", "no-Pokémon AUROC", 1),
    ("kmodel_bytes", "kmodel MB", 1e-6), ("ram_bytes", "K210 RAM MB", 1e-6), ("fits_k210", "fits K210", 1),
    ("kmodel_top1", "kmodel top-1", 1), ("clip_zero_shot_top1", "CLIP zero-shot top-1", 1),
    ("clip_probe_top1", "CLIP probe top-1", 1), ("hybrid_top1", "hybrid top-1", 1),
]
# `dvc exp show` with only what matters: params that differ, the key metrics always, no dependency hashes
# (DVC's own --only-changed/--keep/--drop; the regexes match from the start of a column name).
EXP_SHOW_ARGS = ["--only-changed", "--drop", "Created|Executor|[^:]*/[^:]*$",
                 "--keep", f"(.*:)?({'|'.join(key for key, _, _ in KEY_METRICS)})$"]
CURVES = [("metrics/accuracy_top1", "validation top-1"), ("val/loss", "validation loss"), ("train/loss", "train loss")]
INFO_COLUMNS = {"Experiment", "rev", "typ", "Created", "parent", "State", "Executor"}


@dataclass
class Experiment:
    name: str
    rev: str | None  # None: the workspace
    row: dict
    curves: dict[str, list[float]] = field(default_factory=dict)
    predictions: list[tuple[str, str]] = field(default_factory=list)  # (actual, predicted) per test image
    examples: dict[str, str] = field(default_factory=dict)  # 'NNNN' -> the name of one of its test images
    clip_per_class: list[dict] = field(default_factory=list)  # rows of the clip stage's per_class.csv
    frames: bytes | None = None  # evaluate's frames.png: scene test frames with their boxes and answers


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
    root = Path(repo).resolve()
    paths = {key: path.relative_to(root).as_posix() for key, path in project_paths(root).items()}  # as DVC names them
    experiments = []
    for row in rows:
        if row.get("top1") is None:  # queued, running or failed: nothing to compare yet
            continue
        name = row["Experiment"] or row["rev"]
        if names and name not in names and row["rev"] not in names:
            continue
        rev = None if row["rev"] == "workspace" else row["rev"]
        exp = Experiment(name, rev, row)
        if (results := _read(f"{paths['train_run']}/results.csv", repo, rev)) is not None:
            exp.curves = parse_results(results)
        if (predictions := _read(f"{paths['eval_reports']}/predictions.csv", repo, rev)) is not None:
            rows = list(csv.DictReader(io.StringIO(predictions)))
            exp.predictions = [(r["actual"], r["predicted"]) for r in rows]
            for r in rows:
                exp.examples.setdefault(r["actual"][:4], r["image"])
        exp.frames = _read(f"{paths['eval_reports']}/frames.png", repo, rev, mode="rb")
        if (clip := _read(f"{paths['clip_reports']}/per_class.csv", repo, rev)) is not None:
            exp.clip_per_class = list(csv.DictReader(io.StringIO(clip)))
        experiments.append(exp)
    if len(experiments) > 1 and _same(experiments[0].row, experiments[1].row):
        experiments.pop(0)  # the workspace holds nothing HEAD does not
    if names and (missing := set(names) - {e.name for e in experiments} - {e.rev for e in experiments}):
        raise PokedexError(f"no experiment with metrics named {', '.join(sorted(missing))}; "
                           "see `dvc exp show` for the names.")
    if not experiments:
        raise PokedexError("no experiment has metrics yet; run `dvc repro` or `dvc exp run` first.")
    return experiments


def confused_pairs(predictions: list[tuple[str, str]], top: int = TOP_PAIRS) -> list[tuple[str, str, int, int]]:
    """(actual, predicted, times, test images of actual) for the most frequent mistakes, most first."""
    totals = Counter(actual for actual, _ in predictions)
    mistakes = Counter((a, p) for a, p in predictions if a != p)
    ranked = sorted(mistakes.items(), key=lambda item: (-item[1], item[0]))[:top]
    return [(a, p, n, totals[a]) for (a, p), n in ranked]


def worst_classes(predictions: list[tuple[str, str]], top: int = WORST_CLASSES) -> list[tuple[str, int, int]]:
    """(class, right, test images) for the classes with the lowest top-1, lowest first."""
    totals = Counter(actual for actual, _ in predictions)
    right = Counter(a for a, p in predictions if a == p)
    return sorted(((c, right[c], n) for c, n in totals.items()), key=lambda t: (t[1] / t[2], t[0]))[:top]


def thumbnails(dataset_images: Path) -> dict[str, str]:
    """'NNNN' -> one image of that species from the workspace dataset, as a data URI (test split first)."""
    found: dict[str, str] = {}
    for split in ("test", "validation", "train"):
        for image in sorted((dataset_images / split).glob("*.jpg")) if (dataset_images / split).is_dir() else []:
            if image.name[:4] not in found:  # read one image per species, not the whole dataset
                found[image.name[:4]] = f"data:image/jpeg;base64,{base64.b64encode(image.read_bytes()).decode()}"
    return found


def shown_species(exp: Experiment) -> set[str]:
    pairs = confused_pairs(exp.predictions)
    return ({label[:4] for a, p, _, _ in pairs for label in (a, p)} | {c[:4] for c, _, _ in worst_classes(exp.predictions)}
            | {r["class"][:4] for r in clip_changes(exp.clip_per_class)})


def fill_thumbnails(thumbs: dict[str, str], experiments: list[Experiment], repo: str, test_images: str) -> None:
    """Species shown but absent from the workspace's dataset (e.g. after queued runs only): one test image each,
    read from the experiment's own outputs in the DVC cache."""
    for exp in experiments:
        for dex_id in sorted(shown_species(exp) - set(thumbs)):
            if dex_id in exp.examples and (data := _read(f"{test_images}/{exp.examples[dex_id]}", repo, exp.rev, "rb")):
                thumbs[dex_id] = f"data:image/jpeg;base64,{base64.b64encode(data).decode()}"


def _species(label: str, thumbs: dict[str, str]) -> str:
    image = thumbs.get(label[:4])
    picture = f"<img class='thumb' alt='' src='{image}'>" if image else ""
    return f"<span class='species'>{picture}{html.escape(label)}</span>"


def confusion_section(exp: Experiment, thumbs: dict[str, str], matrix_file: str) -> str:
    """What a user can act on at hundreds of classes: the most-confused pairs and the worst classes."""
    if not exp.predictions:
        return f"<h3>{html.escape(exp.name)}</h3><p>No predictions found.</p>"
    pairs = "".join(f"<tr><td>{_species(a, thumbs)}</td><td>{_species(p, thumbs)}</td><td>{n} of {total}</td></tr>"
                    for a, p, n, total in confused_pairs(exp.predictions))
    worst = "".join(f"<tr><td>{_species(c, thumbs)}</td><td>{right} of {n}</td></tr>"
                    for c, right, n in worst_classes(exp.predictions))
    return (f"<h3>{html.escape(exp.name)}</h3><div class='side'>"
            f"<table><caption>Most confused (test split)</caption><thead><tr><th>actual</th><th>taken for</th>"
            f"<th>images</th></tr></thead><tbody>{pairs or '<tr><td colspan=3>no mistakes</td></tr>'}</tbody></table>"
            f"<table><caption>Worst classes</caption><thead><tr><th>class</th><th>right</th></tr></thead>"
            f"<tbody>{worst}</tbody></table></div>"
            + (f"<p class='note'>The full confusion matrix: <code>{html.escape(matrix_file)}</code> "
               f"(and <code>dvc plots show</code>).</p>" if matrix_file else ""))


def clip_changes(rows: list[dict], top: int = CLIP_CHANGES) -> list[dict]:
    """The species whose test top-1 the hybrid moves most from the classifier's, largest change first."""
    def change(row: dict) -> float:
        return abs(float(row["hybrid_top1"]) - float(row["classifier_top1"]))
    measured = [r for r in rows if r["classifier_top1"] != "nan"]
    return sorted((r for r in measured if change(r) > 0), key=lambda r: (-change(r), r["class"]))[:top]


def clip_section(exp: Experiment, thumbs: dict[str, str]) -> str:
    """Per-species CLIP results of one experiment (nothing when it ran without a CLIP model)."""
    if not exp.clip_per_class:
        return ""
    cells = ["classifier_top1", "zero_shot_top1", "probe_top1", "hybrid_top1"]
    rows = "".join(f"<tr><td>{_species(r['class'], thumbs)}</td><td>{r['images']}</td>"
                   + "".join(f"<td>{_cell(float(r[c]))}</td>" for c in cells) + "</tr>"
                   for r in clip_changes(exp.clip_per_class))
    return (f"<h3>{html.escape(exp.name)}</h3><table><caption>Species whose top-1 the CLIP hybrid changes most "
            f"(test split)</caption><thead><tr><th>class</th><th>images</th><th>classifier</th><th>CLIP zero-shot"
            f"</th><th>CLIP probe</th><th>hybrid</th></tr></thead>"
            f"<tbody>{rows or '<tr><td colspan=6>the hybrid changes no species</td></tr>'}</tbody></table>")


def _same(a: dict, b: dict) -> bool:
    return all(a.get(k) == b.get(k) for k in set(a) | set(b) if k not in INFO_COLUMNS and not k.startswith("paths."))


def changed_params(experiments: list[Experiment], repo: str = ".") -> list[str]:
    """Param columns whose value differs between the experiments (what `dvc exp show --only-changed` keeps),
    except where the stages write (paths.*), which is no experiment's choice."""
    import dvc.api

    from pokedex.core.tracking import flatten

    names = flatten(dvc.api.params_show(repo=repo))
    return [k for k in names if not k.startswith("paths.") and len({str(e.row.get(k)) for e in experiments}) > 1]


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


@dataclass
class FieldFigures:
    """How the workspace's models read one folder of pictures."""
    folder: str
    whole: dict  # score()'s metrics: images, species, top1, top5, ...
    predicted: dict | None  # the same through the detector, as `pokedex predict` answers; None without a detector


def field_figures(folders: list[Path], readers: list[tuple[Path, Path | None]], detector: Path | None,
                  conf: float = 0.25) -> list[list[FieldFigures]]:
    """For each (classifier weights, its enrolled species' folder or None) of `readers`, each folder scored as
    `pokedex predict --whole` and plain `pokedex predict` would answer it (with the enrolled species and the "no
    Pokémon" rule when the folder holds them, as predict does by default). Classifiers of one input size read
    one decoding of each folder and one run of the detector."""
    from pokedex.evaluate.field import score_folder_by
    from pokedex.model.detector import box_finder
    from pokedex.model.load import load_model
    from pokedex.recognise.openset import Enrolled
    from pokedex.recognise.scores import input_size

    for folder in folders:
        if not folder.is_dir():
            raise PokedexError(f"--field {folder} is not a folder; give folders of NNNN/* pictures.")
    for weights, _ in readers:
        if not weights.is_file():
            raise PokedexError(f"{weights} is missing: train a model (`dvc repro`) or `make pull` before --field.")
    models = [load_model(weights) for weights, _ in readers]
    enrolled = [Enrolled.load(folder) if folder is not None and folder.is_dir() else None for _, folder in readers]
    find = None
    if detector is not None and detector.is_file():
        found_by = load_model(detector)
        find = box_finder(found_by, input_size(found_by), conf)
    figures: list[list[FieldFigures]] = [[] for _ in readers]
    sizes = [input_size(model) for model in models]
    for size in dict.fromkeys(sizes):
        same = [k for k, s in enumerate(sizes) if s == size]
        pairs = [(models[k], enrolled[k]) for k in same]
        for folder in folders:
            wholes = score_folder_by(pairs, folder, size)
            predicted = score_folder_by(pairs, folder, size, find_box=find) if find else [None] * len(same)
            for k, whole, through in zip(same, wholes, predicted):
                figures[k].append(FieldFigures(str(folder), whole[0]["metrics"], through[0]["metrics"] if through else None))
    return figures


def field_rows(figures: list[FieldFigures], test: dict,
               k210: list[FieldFigures] | None = None) -> tuple[list[str], list[list]]:
    """The table of pictures like the user's, the test split first: the classifier whole and through predict,
    and with `k210` (the same folders read by the K210's network) its two figures beside."""
    header = ["pictures", "images", "species", "top-1 whole", "top-5 whole", "top-1 predict", "top-5 predict",
              "detector found"] + (["K210 network: top-1 whole", "K210 network: top-1 predict"] if k210 else [])
    rows = [["test split (held-out sprites)", test.get("test_images"), test.get("classes"), test.get("top1"),
             test.get("top5"), None, None, None] + ([test.get("k210_top1"), None] if k210 else [])]
    for f, small in zip(figures, k210 or [None] * len(figures)):
        predicted = f.predicted or {}
        rows.append([f.folder, f.whole.get("images"), f.whole.get("species"), f.whole.get("top1"), f.whole.get("top5"),
                     predicted.get("top1"), predicted.get("top5"), predicted.get("found")]
                    + ([small.whole.get("top1"), (small.predicted or {}).get("top1")] if small else []))
    return header, rows


def field_section(figures: list[FieldFigures], test: dict, k210: list[FieldFigures] | None = None) -> str:
    """field_rows() as the page's first table."""
    header, rows = field_rows(figures, test, k210)
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(c)) if i == 0 else _cell(c)}</td>"
                                     for i, c in enumerate(row)) + "</tr>" for row in rows)
    return ("<h2>Pictures like yours</h2><p class='note'>The workspace's classifier on each whole picture, and plain "
            "<code>pokedex predict</code> (the detector first, then the whole picture or its crop, whichever the "
            "classifier is surer of); beside them the K210's network, as the board reads them. A species the model "
            "was not trained on counts as wrong.</p><table><thead><tr>"
            + "".join(f"<th>{html.escape(h)}</th>" for h in header) + f"</tr></thead><tbody>{cells}</tbody></table>")


def field_markdown(figures: list[FieldFigures], test: dict, k210: list[FieldFigures] | None = None) -> str:
    """field_rows() as a Markdown table (what `pokedex report --field` prints)."""
    header, rows = field_rows(figures, test, k210)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) if i == 0 else ("" if c is None else _cell(c)) for i, c in enumerate(row)) + " |"
              for row in rows]
    return "\n".join(lines)


def _cell(value, scale: float = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool) or value in ("True", "False"):  # dvc.api.exp_show gives booleans as text
        return "yes" if value in (True, "True") else "no"
    if isinstance(value, (int, float)):
        return f"{value * scale:.4g}"
    return html.escape(str(value))


def render(experiments: list[Experiment], params: list[str], thumbs: dict[str, str] | None = None,
           matrix_file: str = "", field: str = "") -> str:
    """The page; `field`: field_section()'s table, shown first."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in
                   ["experiment", "rev", *(h for _, h, _ in KEY_METRICS), *params])
    body = "".join(
        "<tr>" + f"<td>{html.escape(e.name)}</td><td>{html.escape(e.rev or 'workspace')}</td>"
        + "".join(f"<td>{_cell(e.row.get(k), s)}</td>" for k, _, s in KEY_METRICS)
        + "".join(f"<td>{_cell(e.row.get(k))}</td>" for k in params) + "</tr>"
        for e in experiments)
    confusions = "".join(confusion_section(e, thumbs or {}, matrix_file) for e in experiments)
    clip = "".join(clip_section(e, thumbs or {}) for e in experiments) or (
        "<p>No experiment ran with a CLIP model (<code>dvc exp run -S clip=vit-b-32 -S clip.pretrained=&lt;file&gt;"
        "</code>).</p>")
    frames = "".join(
        f"<h3>{html.escape(e.name)}</h3><img alt='scene test frames' src='data:image/png;base64,"
        f"{base64.b64encode(e.frames).decode()}'>" for e in experiments if e.frames) or "<p>No frames found.</p>"
    curves = (f"<img alt='training curves' src='data:image/png;base64,{curves_png(experiments)}'>"
              if any(e.curves for e in experiments) else "<p>No training curves found.</p>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pokédex experiments</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; font-size: 14px; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: right; }}
th {{ background: #f0f0f0; }} td:first-child, td:nth-child(2) {{ text-align: left; }}
img {{ max-width: 100%; }}
.side {{ display: flex; gap: 2em; align-items: flex-start; }} caption {{ font-weight: bold; text-align: left; }}
.side th, .side td {{ text-align: left; }} .side td:last-child {{ text-align: right; }}
.species {{ display: inline-flex; align-items: center; gap: 6px; }} .thumb {{ width: 40px; height: 40px; }}
.note {{ color: #666; font-size: 13px; }}
</style></head><body>
<h1>Pokédex experiments</h1>
<p>{len(experiments)} experiment(s); params listed are those that differ between them.</p>
{field}
<h2>Metrics</h2>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
<h2>Training curves</h2>
{curves}
<h2>Frames (scene test): true box white, detected box green, answer under it</h2>
{frames}
<h2>Confusions (test split)</h2>
{confusions}
<h2>CLIP per species</h2>
{clip}
</body></html>
"""


def write_report(output: Path, repo: str = ".", names: list[str] | None = None,
                 field_folders: list[Path] | None = None) -> tuple[Path, str]:
    """The page, and with field_folders its first table in Markdown (else "")."""
    experiments = load_experiments(repo, names)
    paths = project_paths(Path(repo).resolve())
    field = table = ""
    if field_folders:
        readers = [(paths["weights"], paths["enrolled"])]
        small = paths.get("distilled_weights")  # the K210's network, with its own enrolled species and rule
        if small is not None and small.is_file():
            readers.append((small, paths.get("enrolled_k210")))
        figures, *beside = field_figures(field_folders, readers, paths["detector_weights"])
        k210 = beside[0] if beside else None
        test = json.loads(paths["eval_reports"].joinpath("metrics.json").read_text()) \
            if paths["eval_reports"].joinpath("metrics.json").is_file() else {}
        field, table = field_section(figures, test, k210), field_markdown(figures, test, k210)
    thumbs = thumbnails(view(paths["yolo_dataset"]) / "images")  # its test images are the thumbnails
    dataset = paths["yolo_dataset"].relative_to(Path(repo).resolve()).as_posix()
    fill_thumbnails(thumbs, experiments, repo, f"{dataset}/images/test")
    matrix = (paths["eval_reports"] / "confusion_matrix.png").relative_to(Path(repo).resolve()).as_posix()
    page = render(experiments, changed_params(experiments, repo), thumbs, matrix, field)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    log.info("report: %d experiments -> %s", len(experiments), output)
    return output, table
