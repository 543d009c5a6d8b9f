"""Stage yolo-format: the per-class 70/15/15 YOLO dataset (images/, labels/, data.yaml, classes.txt)."""

from pathlib import Path

from pokedex.core.stage import stage
from pokedex.data.yolo_format import write_yolo_dataset


@stage("yolo_dataset")
def main(cfg):
    p = cfg.paths
    write_yolo_dataset(manifest=Path(p.manifest), processed_root=Path(p.processed), class_table=Path(p.classes),
                       out=Path(p.yolo_dataset), split=cfg.data.split)


if __name__ == "__main__":
    main()
