"""Stage enroll: species from data/enroll/NNNN/* as prototypes beside the trained classes, and the "no Pokémon"
threshold, both calibrated on the validation split: once in the classifier's features (models/enrolled/,
reports/enroll.json) and once in the K210 network's (models/enrolled-k210/, reports/enroll_k210.json), which
compile-kmodel bundles."""

from pathlib import Path

from omegaconf import OmegaConf

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.recognise.enroll import enroll


@stage("enrolled", "enroll_report", "enrolled_k210", "enroll_k210_report")
def main(cfg):
    p, data = cfg.paths, cfg.data
    pictures = dict(dataset_dir=Path(p.yolo_dataset), pictures=Path(p.enroll_pictures), size=int(data.image_size),
                    min_size=int(data.min_image_size), max_pixels=int(data.max_pixels))
    timings = Timings()
    with timings.timer("enroll_s"):
        report = enroll(weights=Path(p.weights), cfg=cfg.enroll, clip=cfg.clip, out_dir=Path(p.enrolled),
                        report_path=Path(p.enroll_report), **pictures)
    with timings.timer("enroll_k210_s"):  # the K210 computes its own network's features only, never CLIP's
        k210 = enroll(weights=Path(p.distilled_weights), cfg=OmegaConf.merge(cfg.enroll, {"embedding": "classifier"}),
                      out_dir=Path(p.enrolled_k210), report_path=Path(p.enroll_k210_report), **pictures)
    numbers = {**report, **{f"k210_{key}": value for key, value in k210.items()}}
    tracking.record("enroll", cfg, Path(p.weights), numbers, [Path(p.enroll_report), Path(p.enroll_k210_report),
                                                              Path(p.enrolled) / "rejects.csv"], timings)


if __name__ == "__main__":
    main()
