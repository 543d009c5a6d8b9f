"""CLIP's image embedding, the one species may be enrolled in (`enroll.embedding=clip`) and the clip stage measures
beside the classifier: open_clip models and weights loaded offline (a checkpoint file, or a tag downloaded only
when asked), pictures embedded.

No weights can be downloaded on the build machines: `clip.pretrained` is a checkpoint file, or an open_clip
pretrained tag that downloads (into the project's cache) only when asked for; offline, that ends in one
sentence naming `clip.pretrained=<file>`. `clip.model` is an open_clip architecture name, a model-config JSON
file (registered under its file name) or open_clip's `local-dir:<folder>`.
"""

from __future__ import annotations

import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pokedex import cache_dir
from pokedex.core.errors import PokedexError
from pokedex.core.io import file_digest

WEIGHT_SUFFIXES = {".pt", ".pth", ".bin", ".safetensors", ".ckpt"}


@dataclass
class Clip:
    model: object        # open_clip's CLIP module, eval mode
    preprocess: object   # its image transform (PIL -> tensor)
    tokenizer: object
    fingerprint: str     # names the architecture and weights, for the text-embedding cache


def _architecture(name: str) -> tuple[str, str]:
    """(the name open_clip knows, what identifies the architecture for the cache)."""
    import open_clip

    if name.startswith("hf-hub:"):
        return name, name
    if name.startswith("local-dir:"):  # config and weights in one folder: their sizes and times stand for them
        folder = Path(name.split(":", 1)[1])
        files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
        return name, json.dumps([[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files])
    if name.endswith(".json"):
        config = Path(name)
        if not config.is_file():
            raise PokedexError(f"clip.model={name} is not a file; give an open_clip model config (.json), an "
                               "architecture name such as ViT-B-32, or local-dir:<folder>.")
        open_clip.add_model_config(config)  # registered under the file's stem
        return config.stem, file_digest(config).hexdigest()
    if name not in open_clip.list_models():
        raise PokedexError(f"clip.model={name} is not an open_clip architecture; use one of open_clip.list_models() "
                           "(e.g. ViT-B-32), a model config .json file, or local-dir:<folder>.")
    return name, name


def _weights(arch: str, pretrained: str | None) -> tuple[str | None, str]:
    """(what to hand open_clip as `pretrained`, what identifies the weights for the cache)."""
    import open_clip

    if arch.startswith(("hf-hub:", "local-dir:")):
        return None, arch  # the weights come with the model source
    if pretrained is None:
        raise PokedexError(f"clip.pretrained is not set for clip.model={arch}; give a checkpoint file "
                           "(clip.pretrained=<file>) or one of its open_clip tags: "
                           f"{', '.join(open_clip.list_pretrained_tags_by_model(arch)) or 'none'}.")
    path = Path(pretrained)
    if path.is_file():
        return str(path), file_digest(path).hexdigest()
    tags = open_clip.list_pretrained_tags_by_model(arch)
    if "/" in pretrained or path.suffix in WEIGHT_SUFFIXES or pretrained not in tags:
        raise PokedexError(f"clip.pretrained={pretrained} is neither a checkpoint file nor an open_clip tag of "
                           f"{arch} ({', '.join(tags) or 'it has none'}); set clip.pretrained=<file>.")
    return pretrained, f"{arch}:{pretrained}"


def load_clip(model: str, pretrained: str | None, cache: Path, device: str = "cpu") -> Clip:
    """The CLIP model, its image transform and tokenizer; a tag's download goes into `cache`."""
    import open_clip

    arch, arch_id = _architecture(str(model))
    weights, weights_id = _weights(arch, None if pretrained is None else str(pretrained))
    logging.disable(logging.ERROR)  # open_clip logs its failures on the root logger; ours is the one sentence
    try:
        net, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=weights, device=device, cache_dir=str(cache / "weights"))
    except Exception as exc:  # noqa: BLE001 - open_clip and torch.load fail in many ways on a bad file or no network
        if weights is None:  # hf-hub: or local-dir:, weights and config together
            raise PokedexError(f"clip.model={model} could not be loaded ({type(exc).__name__}); for hf-hub: models "
                               "without network, save the model with its config and use clip.model=local-dir:<folder>.") from exc
        if not Path(weights).is_file():  # a tag: its download failed
            raise PokedexError(f"clip.pretrained={weights} has to be downloaded and that failed "
                               f"({type(exc).__name__}); without network, fetch the checkpoint elsewhere and set "
                               "clip.pretrained=<file>.") from exc
        raise PokedexError(f"clip.pretrained={weights} could not be loaded into clip.model={model} "
                           f"({str(exc).splitlines()[0][:200]}); check that the checkpoint is for that architecture.") from exc
    finally:
        logging.disable(logging.NOTSET)
    net.eval()
    return Clip(net, preprocess, open_clip.get_tokenizer(arch), f"{arch_id}|{weights_id}")


def _encode(clip: Clip, pictures: list[Image.Image]) -> np.ndarray:
    import torch

    with torch.no_grad():
        batch = torch.stack([clip.preprocess(p.convert("RGB")) for p in pictures])
        return clip.model.encode_image(batch, normalize=True).float().cpu().numpy()


def image_embeddings(clip: Clip, images: list[Path], batch: int = 64) -> np.ndarray:
    """(images, dim) normalised CLIP image embeddings of image files."""
    out = []
    for start in range(0, len(images), batch):
        pictures = []
        for path in images[start:start + batch]:
            with Image.open(path) as img:
                pictures.append(img.convert("RGB"))
        out.append(_encode(clip, pictures))
    return np.concatenate(out)


@functools.lru_cache(maxsize=2)
def _clip_for_enrolment(model: str, pretrained: str | None) -> Clip:
    return load_clip(model, pretrained, cache_dir() / "clip")


def enrolment_embedding(model: str | None, pretrained: str | None) -> dict:
    """What enrolled.json records for `enroll.embedding=clip`: the model, its weights and their fingerprint."""
    if model is None:
        raise PokedexError("enroll.embedding=clip needs a CLIP model: set clip.model (e.g. clip=vit-b-32) and "
                           "clip.pretrained=<checkpoint file>.")
    clip = _clip_for_enrolment(str(model), None if pretrained is None else str(pretrained))
    return {"kind": "clip", "model": str(model), "pretrained": None if pretrained is None else str(pretrained),
            "fingerprint": clip.fingerprint}


def clip_features(embedding: dict, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """CLIP image embeddings of uint8 NCHW images, with the model the species were enrolled with."""
    clip = _clip_for_enrolment(embedding["model"], embedding["pretrained"])
    if clip.fingerprint != embedding["fingerprint"]:
        raise PokedexError(f"the enrolled species were embedded with other CLIP weights than "
                           f"{embedding['pretrained']} holds now; run the enroll stage again (dvc repro -f enroll).")
    rgb = images.transpose(0, 2, 3, 1)
    return np.concatenate([_encode(clip, [Image.fromarray(a) for a in rgb[start:start + batch]])
                           for start in range(0, len(rgb), batch)]) if len(rgb) else np.zeros((0, 0), np.float32)
