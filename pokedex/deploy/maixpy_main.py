# MaixPy (>= v0.6.2, which runs nncase 1.x "v5" kmodels) program for the Sipeed Maix Bit:
# copy this folder (main.py, model.kmodel, detector.kmodel, classes.txt, manifest.json, and for a classifier
# enrolled.json and prototypes.bin) to the root of the SD card. With a detector, each frame is searched for
# Pokémon first and answered as `pokedex predict` answers (pokedex/recognise/views.py): the classifier reads the
# whole square and the square around all the boxes found, and the view it is surer of names the Pokémon (the
# detector boxes parts of a Pokémon that fills the frame; a small one reads better cut out); with no box, the
# whole square answers. The name is "no Pokemon" when nothing is close to a known species. Without
# detector.kmodel the whole square is classified. Not run by the test suite (no board here): its pure functions
# are (tests/test_kmodel.py runs `decode` against Ultralytics', `union` and `square` on boxes).
#
# A classifier's kmodel gives one row: the trained classes' logits, then the embedding. Enrolled species (added
# from a few pictures by the enroll stage, pokedex/recognise/openset.py) score a * cos(embedding, prototype) + b on the
# same scale, one softmax ranks them all, and a best score under the threshold means "no Pokémon".
# The detector's kmodel gives its raw grid (pokedex/deploy/grid.py): 5 planes of H/stride x W/stride cells, four
# distances from each cell's centre to the box's sides (in strides), then the score logit.
import gc
import json
import math
import struct
from array import array

import lcd
import sensor
from maix import KPU

with open("/sd/manifest.json") as f:
    manifest = json.load(f)
width, height = manifest["input_size"]
n_classes, dim = manifest["classes"], manifest.get("embedding_size", 0)
with open("/sd/classes.txt") as f:
    names = ["%04d %s" % (i + 1, line.strip()) for i, line in enumerate(f)]

scale, bias, threshold, prototypes, owners, center, enrolled_ids = 0.0, 0.0, 0.0, [], [], [], []
try:
    with open("/sd/enrolled.json") as f:
        enrolled = json.load(f) if dim else None
except OSError:  # a bundle without enrolled species: the trained classes only
    enrolled = None
if enrolled:
    scale, bias, threshold, center = enrolled["scale"], enrolled["bias"], enrolled["threshold"], enrolled["center"]
    owners = enrolled["owners"]  # the enrolled species of each prototype (one per enrolment picture)
    enrolled_ids = enrolled["ids"]  # a trained species enrolled too adds its score to its trained class
    names += ["%04d %s" % (i, name) for i, name in zip(enrolled["ids"], enrolled["names"])]
    with open("/sd/prototypes.bin", "rb") as f:  # little-endian float32, one row of `dim` per prototype
        for _ in owners:
            prototypes.append(array("f", struct.unpack("<%df" % dim, f.read(4 * dim))))
    del enrolled
    gc.collect()
detector = manifest.get("detector")  # None: an older bundle, the whole square is classified


def ranked_scores(row):
    """Softmax over the trained logits and the enrolled species' a * best cos + b; returns (best index, score)."""
    if not dim:  # a detector or an older bundle: the row is the class scores
        best = max(range(len(row)), key=lambda i: row[i])
        return best, row[best]
    logits = list(row[:n_classes])
    embedding = [v - c for v, c in zip(row[n_classes:n_classes + dim], center)]
    norm = math.sqrt(sum(v * v for v in embedding)) or 1.0
    best_cos = [-1.0] * (len(names) - n_classes)  # each enrolled species scores its closest prototype
    for owner, prototype in zip(owners, prototypes):
        cos = sum(e * p for e, p in zip(embedding, prototype)) / norm
        if cos > best_cos[owner]:
            best_cos[owner] = cos
    logits += [scale * cos + bias for cos in best_cos]
    top = max(logits)
    scores = [math.exp(z - top) for z in logits]
    total = sum(scores)
    for k, dex in enumerate(enrolled_ids):
        if dex <= n_classes:  # a trained species: its prototypes' score joins its class's (as Enrolled.rank)
            scores[dex - 1] += scores[n_classes + k]
            scores[n_classes + k] = 0.0
    best = max(range(len(scores)), key=lambda i: scores[i])
    return best, scores[best] / total


def iou(a, b):
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def decode(grid, gw, gh, stride, conf, iou_nms, max_boxes):
    """The detector's flat grid -> up to max_boxes (x0, y0, x1, y1, score) in its input's pixels, best first:
    sigmoid of each cell's logit, box = cell centre -/+ distances x stride, greedy non-maximum suppression."""
    plane = gw * gh
    cells = []
    for i in range(plane):
        score = 1.0 / (1.0 + math.exp(-grid[4 * plane + i]))
        if score >= conf:
            cells.append((score, i))
    cells.sort(key=lambda c: -c[0])  # stable: equal scores keep the grid's order
    kept = []
    for score, i in cells:
        y, x = divmod(i, gw)
        cx, cy = (x + 0.5) * stride, (y + 0.5) * stride
        box = (cx - grid[i] * stride, cy - grid[plane + i] * stride, cx + grid[2 * plane + i] * stride,
               cy + grid[3 * plane + i] * stride, score)
        if all(iou(box, k) <= iou_nms for k in kept):
            kept.append(box)
            if len(kept) == max_boxes:
                break
    w, h = gw * stride, gh * stride  # inside the picture, as Ultralytics clips them
    return [(min(max(b[0], 0), w), min(max(b[1], 0), h), min(max(b[2], 0), w), min(max(b[3], 0), h), b[4]) for b in kept]


def union(boxes):
    """The box around all the boxes: a Pokémon the detector cut into parts is one box again."""
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def square(box, side, frame, margin):
    """A box (detector pixels) as the classifier's crop in the frame: square with a margin, kept inside."""
    f = frame / side
    cx, cy = (box[0] + box[2]) / 2 * f, (box[1] + box[3]) / 2 * f
    s = min(frame, max(8, int(max(box[2] - box[0], box[3] - box[1]) * f * (1 + 2 * margin))))
    x = min(max(int(cx - s / 2), 0), frame - s)
    y = min(max(int(cy - s / 2), 0), frame - s)
    return x, y, s


def name_of(picture):
    """The classifier's answer for a picture already at its input size: (label, score)."""
    picture.pix_to_ai()  # RGB888 planes for the KPU; the kmodel does its own normalisation
    best, score = ranked_scores(kpu.run_with_output(picture, getlist=True))
    return (names[best] if score >= threshold else "no Pokemon"), score


FRAME = 240
lcd.init()
sensor.reset()
sensor.set_pixformat(sensor.RGB565)
sensor.set_framesize(sensor.QVGA)
sensor.set_windowing((FRAME, FRAME))  # the central square of the 320x240 frame
sensor.skip_frames(time=1000)

kpu = KPU()
kpu.load_kmodel("/sd/model.kmodel")
if detector:  # both stay loaded: their memory together is what compile-kmodel checks against the budget
    finder = KPU()
    finder.load_kmodel("/sd/" + detector["model"])
    side = detector["input_size"][0]
    stride = detector["stride"]
while True:
    img = sensor.snapshot()
    whole = img.resize(width, height)  # the whole square at the classifier's input size
    label, score = name_of(whole)
    del whole
    if detector:
        small = img.resize(side, side)
        small.pix_to_ai()
        grid = finder.run_with_output(small, getlist=True)
        del small
        boxes = decode(grid, side // stride, side // stride, stride, detector["conf"], detector["iou_nms"],
                       detector["max_boxes"])
        if boxes:
            x, y, s = square(union(boxes), side, FRAME, detector["box_margin"])
            crop = img.cut(x, y, s, s).resize(width, height)
            crop_label, crop_score = name_of(crop)
            del crop
            if crop_score > score:  # the classifier is surer of the crop: it answers, and its square is shown
                label, score = crop_label, crop_score
                img.draw_rectangle(x, y, s, s, color=(0, 255, 0))
    img.draw_string(2, 2, label, scale=2, color=(255, 0, 0))
    img.draw_string(2, 22, "%.2f" % score, scale=2, color=(255, 0, 0))
    lcd.display(img)
    gc.collect()
