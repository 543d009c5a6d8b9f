"""A tiny open_clip model for the tests: a model config of its own (as a user's custom architecture would be) and
seeded random weights saved as a checkpoint file of a few MB. No pretrained CLIP weights can be had here."""

from __future__ import annotations

import json
from pathlib import Path

TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "head_width": 32},
             "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def make_tiny_clip(folder: Path) -> tuple[Path, Path]:
    """(model config .json, checkpoint .pt) of a tiny open_clip model with seeded random weights."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = folder / "tiny-clip.pt"
    torch.save(open_clip.create_model("tiny-clip").state_dict(), checkpoint)
    return config, checkpoint
