"""Stage adapt: the trained classifier fine-tuned on your labelled pictures (data/user/NNNN/*, `pokedex label`)
with the training pictures replayed, in models/adapted/ (weights/best.pt: what every later stage reads); while
data/user holds no pictures, the trained weights as they are."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.data.sources.user import labelled_pictures
from pokedex.train.adapt import adapt_or_keep


@stage("adapt_run")
def main(cfg):
    p = cfg.paths
    labelled = labelled_pictures(Path(cfg.data.user.root))
    call = dict(trained=Path(p.trained_weights), dataset_dir=Path(p.yolo_dataset), labelled=labelled,
                run_dir=Path(p.adapt_run))
    if not labelled[0]:  # the trained weights, copied: later stages record into the train run
        adapt_or_keep(cfg, **call)
        return
    timings = Timings()
    with tracking.training_run(cfg, timings, stage="adapt") as run:
        best = adapt_or_keep(cfg, **call, timings=timings)
        tracking.record_training(run, best, [best, Path(p.adapt_run) / "adapt.json", Path(p.adapt_run) / "results.csv"])


if __name__ == "__main__":
    main()
