"""Stage enroll: species from data/enroll/NNNN/* as prototypes beside the trained classes, and the "no Pokémon"
threshold, both calibrated on the validation split (models/enrolled/, reports/enroll.json)."""

from pathlib import Path

from pokedex import tracking
from pokedex.enroll import enroll
from pokedex.stage import stage


@stage("enrolled", "enroll_report")
def main(cfg):
    p, data = cfg.paths, cfg.data
    report = enroll(Path(p.weights), Path(p.yolo_dataset), Path(p.enroll_pictures), int(data.image_size),
                    int(data.min_image_size), int(data.max_pixels), cfg.enroll, Path(p.enrolled), Path(p.enroll_report))
    tracking.record("enroll", cfg, Path(p.weights), report, [Path(p.enroll_report), Path(p.enrolled) / "rejects.csv"])


if __name__ == "__main__":
    main()
