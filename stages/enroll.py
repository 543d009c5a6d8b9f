"""Stage enroll: species from data/enroll/NNNN/* as prototypes beside the trained classes, and the "no Pokémon"
threshold, both calibrated on the validation split (models/enrolled/, reports/enroll.json)."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.evaluate.enroll import enroll


@stage("enrolled", "enroll_report")
def main(cfg):
    p, data = cfg.paths, cfg.data
    timings = Timings()
    with timings.timer("enroll_s"):
        report = enroll(weights=Path(p.weights), dataset_dir=Path(p.yolo_dataset), pictures=Path(p.enroll_pictures),
                        size=int(data.image_size), min_size=int(data.min_image_size), max_pixels=int(data.max_pixels),
                        cfg=cfg.enroll, clip=cfg.clip, out_dir=Path(p.enrolled), report_path=Path(p.enroll_report))
    tracking.record("enroll", cfg, Path(p.weights), report, [Path(p.enroll_report), Path(p.enrolled) / "rejects.csv"],
                    timings)


if __name__ == "__main__":
    main()
