"""The one-class detector as the K210 runs it: its raw output grid, and that grid decoded on a CPU.

Ultralytics' detection head decodes boxes inside the model (anchors, strides, a softmax per side when
reg_max > 1) and nncase 1.x cannot compile that tail. The detector is trained with reg_max 1 and one output
level (pokedex/model/arch/k210n-det.yaml), so its head's two branches *are* the answer: per cell of the grid, four
distances from the cell's centre to the box's sides (in strides) and one score logit. The kmodel stops there,
a (1, 5, H/stride, W/stride) grid; `decode` (here, for the simulator) and main.py's `decode` (on the K210)
turn it into boxes exactly as Ultralytics does: sigmoid of the logit, box = centre -/+ distances x stride,
scores under the threshold dropped, greedy non-maximum suppression at IOU_NMS (Ultralytics' default), boxes
clipped to the picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pokedex.core.errors import PokedexError
from pokedex.data.boxes import iou

IOU_NMS = 0.7  # Ultralytics' predict default: boxes overlapping a better one by more are the same Pokémon
MAX_BOXES = 3  # at most this many answers per frame (the detection scenes hold up to three Pokémon)


def grid_module(weights: Path):
    """The detector's body and the two branches of its one-level head, as a torch module whose output is the
    raw grid (1, 4 + 1, H/stride, W/stride); and the stride."""
    import torch
    from torch import nn

    from pokedex.model.load import load_model

    net = load_model(weights).model.float().eval()
    head = net.model[-1]
    if getattr(head, "reg_max", None) != 1 or len(head.cv2) != 1 or head.nc != 1:
        raise PokedexError(f"{weights} is not a one-class, one-level detector with reg_max 1 (as "
                           "pokedex/model/arch/k210n-det.yaml builds); only such a head decodes on the K210's CPU.")

    class Grid(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.head = net.model[:-1], head

        def forward(self, x):
            for layer in self.body:  # a straight chain (k210n-det.yaml: each layer reads the previous one)
                x = layer(x)
            return torch.cat([self.head.cv2[0](x), self.head.cv3[0](x)], 1)

    return Grid().eval(), int(head.stride[0])


def export_grid_onnx(weights: Path, imgsz: int, out: Path, opset: int = 12) -> int:
    """The detector's raw grid as ONNX (static 1x3ximgszximgsz input in [0, 1], shapes inferred: nncase needs
    every value's shape); returns the stride."""
    import onnx
    import torch

    module, stride = grid_module(weights)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(module, torch.zeros(1, 3, imgsz, imgsz), str(out), opset_version=opset, input_names=["images"],
                      output_names=["grid"], dynamo=False)
    onnx.save(onnx.shape_inference.infer_shapes(onnx.load(str(out))), str(out))
    return stride


def decode(grid: np.ndarray, stride: int, conf: float, max_boxes: int = MAX_BOXES) -> np.ndarray:
    """One picture's grid (5, gh, gw) -> (n, 5) x0, y0, x1, y1 (pixels of the model's input), score; best first."""
    grid = np.asarray(grid, np.float32).reshape(5, *np.shape(grid)[-2:])
    scores = 1 / (1 + np.exp(-grid[4]))
    ys, xs = np.nonzero(scores >= conf)
    order = np.argsort(-scores[ys, xs], kind="stable")
    kept: list[np.ndarray] = []
    for y, x in zip(ys[order], xs[order]):
        cx, cy = (x + 0.5) * stride, (y + 0.5) * stride
        left, top, right, bottom = grid[:4, y, x] * stride
        box = np.array([cx - left, cy - top, cx + right, cy + bottom, scores[y, x]], np.float32)
        if all(iou(box, k) <= IOU_NMS for k in kept):
            kept.append(box)
            if len(kept) == max_boxes:
                break
    if not kept:
        return np.zeros((0, 5), np.float32)
    boxes = np.stack(kept)
    gh, gw = grid.shape[1:]
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, gw * stride)  # inside the picture, as Ultralytics clips them
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, gh * stride)
    return boxes
