"""Stage adapt: the trained classifier fine-tuned on your labelled pictures (data/user/NNNN/*, `pokedex label`)
with the training pictures replayed, in models/adapted/ (weights/best.pt: what every later stage reads); while
data/user holds no pictures, the trained weights as they are."""

from pathlib import Path

from pokedex.core import tracking
from pokedex.core.stage import stage
from pokedex.core.timings import Timings
from pokedex.train.adapt import adapt_or_keep, labelled_pictures


@stage("adapt_run")
def main(cfg):
    p, user = cfg.paths, Path(cfg.data.user.root)
    args = (cfg, Path(p.trained_weights), Path(p.yolo_dataset), user, Path(p.adapt_run))
    if not labelled_pictures(user)[0]:  # the trained weights, copied: later stages record into the train run
        adapt_or_keep(*args)
        return
    timings = Timings()
    with tracking.training_run(cfg, timings, stage="adapt") as run:
        best = adapt_or_keep(*args, timings=timings)
        tracking.record_training(run, best, [best, Path(p.adapt_run) / "adapt.json", Path(p.adapt_run) / "results.csv"])


if __name__ == "__main__":
    main()
