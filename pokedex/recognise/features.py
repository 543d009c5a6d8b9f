"""What a trained classifier computes for a batch of pictures: its logits and the pooled features its last layer
reads (the embedding enrolled species are matched in, and CLIP's hybrid compares against)."""

from __future__ import annotations

import numpy as np

from pokedex.core.errors import PokedexError


def logits_and_features(model, images: np.ndarray, batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Trained-class logits and pooled features of uint8 NCHW images, from an Ultralytics classifier.

    The embedding is what the head's pooling layer hands the last linear layer (caught with a forward hook:
    SlimClassify and Ultralytics' own Classify alike)."""
    import torch

    net = model.model.float().eval()
    head = net.model[-1]
    if not hasattr(head, "pool") or not hasattr(head, "linear"):
        raise PokedexError("enrolment needs a classifier (model.task=classify) with a pooled head; this model has "
                           f"a {type(head).__name__} head.")
    pooled: list[torch.Tensor] = []
    hook = head.pool.register_forward_hook(lambda _m, _i, out: pooled.append(out.flatten(1)))
    logits = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch):
                x = torch.from_numpy(images[start:start + batch].astype(np.float32) / 255.0)
                out = net(x)
                logits.append((out[1] if isinstance(out, (tuple, list)) else out).numpy())
    finally:
        hook.remove()
    return np.concatenate(logits), torch.cat(pooled).numpy()
