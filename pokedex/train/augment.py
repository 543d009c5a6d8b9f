"""Augmentation for Ultralytics' classifier training, before Ultralytics' own (random resized crop, flips, HSV
jitter from train:) run on each training image:

1. with probability `augment.style`, its Pokémon is redrawn in another style (pokedex.data.styles.restyle:
   smoothed, random convolution, posterized, stylized), its mask kept;
2. with probability `augment.p`, it is put onto a procedural background (pokedex.data.scenes, training family)
   at a random scale and place and photographed by a random cheap camera; of those, a share `augment.view`
   also seen at a tilt, with vignetting and glare (scenes.viewpoint); of those, a share `augment.crop` is seen
   as the detector hands it to the classifier: the Pokémon smaller in a frame twice the picture's side, the frame
   photographed, then cut to the Pokémon's box made square with a margin (pokedex.data.boxes.crop_to_box), the box
   first moved and resized as the detector errs (`augment.crop_jitter`: the spread of its centre, as a share of
   the box's side, and of the log of its width and height);
3. with probability `augment.light`, its contrast and brightness change by factors drawn from
   `augment.contrast` and `augment.brightness` (a dim room, a washed-out screen).

Validation and test images stay as they are.

The probability grows from 0 to `augment.p` over the first `augment.ramp` share of the epochs: measured on the
default data, a model that meets scenes from the first epoch learns the species far more slowly (validation
top-1 after 6 of 6 epochs: 0.03 with p=0.8 throughout, 0.14 with p=0.3, 0.32 with no scenes), so it learns
them on white first and the scenes after.

The randomness comes from torch's generator, which Ultralytics seeds from `seed` (and seeds again in each
dataloader worker), so a run is repeatable.
"""

from __future__ import annotations

import atexit
import queue
import threading

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image

from pokedex.core.checks import FRACTION, Number, check_value
from pokedex.core.errors import PokedexError
from pokedex.data.boxes import box_from_corners, crop_to_box
from pokedex.data.preprocess import square
from pokedex.data.scenes import TRAIN, background, camera, compose, compose_with_box, foreground_mask, viewpoint
from pokedex.data.styles import light, restyle
from pokedex.model.ultra import ultralytics_offline


PARAM_RULES = {
    "augment.p": FRACTION,
    "augment.ramp": FRACTION,
    "augment.camera": Number(float, 0),
    "augment.style": FRACTION,
    "augment.light": FRACTION,
    "augment.view": FRACTION,
    "augment.crop": FRACTION,
}


def factor_range(cfg: DictConfig, key: str) -> tuple[float, float]:
    value = cfg.get(key, [1.0, 1.0])
    if len(value) != 2 or not 0.0 < float(value[0]) <= float(value[1]):
        raise PokedexError(f"augment.{key}={list(value)} must be [low, high] with 0 < low <= high (1: unchanged).")
    return float(value[0]), float(value[1])


def check(cfg: DictConfig) -> tuple[float, tuple[float, float], float, float]:
    p, scale, strength = float(cfg.p), (float(cfg.scale[0]), float(cfg.scale[1])), float(cfg.camera)
    ramp = float(cfg.ramp)
    for key in ("p", "style", "light", "view", "crop", "ramp"):
        check_value(PARAM_RULES, f"augment.{key}", cfg.get(key, 0.0))
    if not 0.05 <= scale[0] <= scale[1] <= 1.5:
        raise PokedexError(f"augment.scale={list(scale)} must be [low, high] with 0.05 <= low <= high <= 1.5.")
    check_value(PARAM_RULES, "augment.camera", strength)
    factor_range(cfg, "contrast"), factor_range(cfg, "brightness")  # named now, not at the first picture
    crop_jitter(cfg)
    return p, scale, strength, ramp


CROP_FRAME = 2  # a detector crop is cut from a frame this many times the picture's side ...
CROP_SCALE = (0.3, 1.0)  # ... where the Pokémon takes this share of the side (detector.data.scale's default)


def crop_jitter(cfg: DictConfig) -> tuple[float, float]:
    value = cfg.get("crop_jitter", [0.0, 0.0])
    if len(value) != 2 or min(float(v) for v in value) < 0:
        raise PokedexError(f"augment.crop_jitter={list(value)} must be [centre, size] spreads, each 0 (exact box) or more.")
    return float(value[0]), float(value[1])


def detector_crop(im: Image.Image, mask: np.ndarray, rng: np.random.Generator, strength: float,
                  jitter: tuple[float, float]) -> Image.Image:
    """The picture's Pokémon as the detector path sees it: in a photographed frame, cut to a jittered box."""
    side = max(im.size)
    scene = background(TRAIN, int(rng.integers(2**31)), 0, CROP_FRAME * side)
    frame, box = compose_with_box(im, scene, rng, CROP_SCALE, mask)
    frame = camera(frame, rng, strength)
    if box is None:  # the Pokémon left the frame: the detector would have found nothing to crop
        return square(frame, side)
    w, h = box[2] - box[0], box[3] - box[1]
    cx = (box[0] + box[2]) / 2 + rng.normal(0, jitter[0]) * w
    cy = (box[1] + box[3]) / 2 + rng.normal(0, jitter[0]) * h
    w, h = w * np.exp(rng.normal(0, jitter[1])), h * np.exp(rng.normal(0, jitter[1]))
    found = box_from_corners(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, frame.width, frame.height)
    return square(crop_to_box(frame, found), side)


def scene_probability(epoch: int, epochs: int, p: float, ramp: float) -> float:
    """The scene probability of epoch `epoch` (0-based): p reached after the first `ramp` share of the epochs."""
    return p * (min(1.0, (epoch + 1) / (ramp * epochs)) if ramp > 0 else 1.0)


def augment_image(im: Image.Image, mask: np.ndarray, rng: np.random.Generator, cfg: DictConfig,
                  p_scene: float) -> Image.Image:
    """One training picture through restyling, a scene and light jitter (each drawn with its probability);
    `mask`: its uint8 foreground mask. Everything comes from `rng`: the same seed gives the same picture."""
    _, scale, strength, _ = check(cfg)
    if rng.random() < float(cfg.get("style", 0.0)):
        im = restyle(im, mask, rng)
    if rng.random() < p_scene:
        crop = float(cfg.get("crop", 0.0))
        if crop > 0 and rng.random() < crop:  # off: no draw, so the other pictures stay as they were
            im = detector_crop(im, mask, rng, strength, crop_jitter(cfg))
        else:
            scene = background(TRAIN, int(rng.integers(2**31)), 0, max(im.size))
            im = camera(compose(im, scene, rng, scale, mask), rng, strength)
            view = float(cfg.get("view", 0.0))
            if view > 0 and rng.random() < view:  # off: no draw, so the other pictures stay as they were
                im = viewpoint(im, rng)
    if rng.random() < float(cfg.get("light", 0.0)):
        im = light(im, rng, factor_range(cfg, "contrast"), factor_range(cfg, "brightness"))
    return im


class Prefetched:
    """A dataloader whose batches a thread draws, `depth` ahead, while the caller uses the last one.

    Without workers Ultralytics draws each batch between two steps of the model. Here one thread draws them, in
    the loader's own order from the same generators (the training process draws no other random number while
    it learns), so the pictures are those of the loader alone; drawing (PIL, numpy) and learning (torch) let go
    of the GIL for most of their time, so they overlap. Everything else is the loader's.
    """

    def __init__(self, loader, depth: int = 4):
        self.loader, self.depth = loader, depth

    def __getattr__(self, name: str):
        return getattr(self.loader, name)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        batches: queue.Queue = queue.Queue(self.depth)
        stop = threading.Event()  # the caller left early (an error, an interrupt): the thread ends too

        def put(item) -> bool:
            """Hand `item` to the caller, unless it left first (False)."""
            while not stop.is_set():
                try:
                    batches.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def draw() -> None:
            try:
                for batch in self.loader:
                    if not put((batch, None)):
                        return
                put((END, None))
            except BaseException as exc:  # raised again in the caller, where it can be handled
                put((END, exc))

        thread = threading.Thread(target=draw, name="pokedex-prefetch", daemon=True)

        def end() -> None:
            """At exit, a thread still drawing is told to stop and waited for: a caller that left on an exception
            (Ctrl-C) may never close this generator, and Python ends a daemon thread it finds inside torch by
            unwinding it, which aborts the process (exit -6 instead of the stage's 130)."""
            stop.set()
            thread.join(timeout=30)

        atexit.register(end)
        thread.start()
        try:
            while True:
                batch, error = batches.get()
                if error is not None:
                    raise error
                if batch is END:
                    return
                yield batch
        finally:
            stop.set()
            atexit.unregister(end)


END = object()  # Prefetched's last item
PREFETCH = True  # False: Ultralytics' own way, each batch drawn between two steps (benchmarks/train_speed.py)


def scene_trainer(cfg: DictConfig):
    """An Ultralytics ClassificationTrainer whose training set is augmented by augment_image (None when every
    probability is 0)."""
    p, _, _, ramp = check(cfg)
    if p == 0 and float(cfg.get("style", 0.0)) == 0 and float(cfg.get("light", 0.0)) == 0:
        return None
    ultralytics_offline()
    from ultralytics.data import ClassificationDataset
    from ultralytics.models.yolo.classify import ClassificationTrainer

    class SceneDataset(ClassificationDataset):
        masks: dict[int, np.ndarray] = {}  # sample -> its foreground mask, found once (images do not change)
        p_now = p  # the scene probability of the current epoch (see ramp_scenes)

        def __getitem__(self, i: int) -> dict:
            f, j, _, _ = self.samples[i]
            bgr = self.img_cache[i] if self.cache_ram else self.imread(f)
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            im = Image.fromarray(rgb)
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
            if i not in self.masks:
                self.masks[i] = (foreground_mask(rgb) * 255).astype(np.uint8)
            im = augment_image(im, self.masks[i], rng, cfg, self.p_now)
            return {"img": self.torch_transforms(im), "cls": j}

    def ramp_scenes(trainer) -> None:
        """Callback (on_train_epoch_start): this epoch's scene probability, before its batches are drawn."""
        now = scene_probability(trainer.epoch, trainer.epochs, p, ramp)
        dataset = trainer.train_loader.dataset
        if dataset.p_now != now:
            dataset.p_now = now
            trainer.train_loader.reset()  # dataloader workers, if any, start again with the new value

    class SceneTrainer(ClassificationTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback("on_train_epoch_start", ramp_scenes)

        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
            # Ultralytics loads in the training process on a CPU (no workers): the scenes and styles then take as
            # long as the model's step, so a thread draws the next batches while the model learns
            return Prefetched(loader) if PREFETCH and mode == "train" and loader.num_workers == 0 else loader

        def build_dataset(self, img_path: str, mode: str = "train", batch=None):
            if mode != "train":
                return super().build_dataset(img_path, mode, batch)
            return SceneDataset(img_path, self.args, augment=True, prefix="train", names=self.data["names"])

    return SceneTrainer
