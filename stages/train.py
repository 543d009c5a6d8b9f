"""Stage train: Ultralytics from a bundled model YAML; best weights in models/train/weights/best.pt."""

from pathlib import Path

from pokedex.stage import stage
from pokedex.train import train


@stage("train_run")
def main(cfg):
    train(cfg, Path(cfg.paths.yolo_dataset), Path(cfg.paths.train_run))


if __name__ == "__main__":
    main()
