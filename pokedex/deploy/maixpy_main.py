# MaixPy (>= v0.6.2, which runs nncase 1.x "v5" kmodels) program for the Sipeed Maix Bit:
# copy this folder (main.py, model.kmodel, classes.txt, manifest.json, and for a classifier enrolled.json and
# prototypes.bin) to the root of the SD card. It shows the camera image with the best Pokémon and its score, or
# "no Pokemon" when nothing is close to a known species. Hold the camera so that the Pokémon fills most of the
# square in the middle of the screen (a card at about 15 cm). Not run by the test suite: no board here.
#
# A classifier's kmodel gives one row: the trained classes' logits, then the embedding. Enrolled species (added
# from a few pictures by the enroll stage, pokedex/openset.py) score a * cos(embedding, prototype) + b on the
# same scale, one softmax ranks them all, and a best score under the threshold means "no Pokémon".
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

scale, bias, threshold, prototypes, owners, center = 0.0, 0.0, 0.0, [], [], []
try:
    with open("/sd/enrolled.json") as f:
        enrolled = json.load(f) if dim else None
except OSError:  # a bundle without enrolled species: the trained classes only
    enrolled = None
if enrolled:
    scale, bias, threshold, center = enrolled["scale"], enrolled["bias"], enrolled["threshold"], enrolled["center"]
    owners = enrolled["owners"]  # the enrolled species of each prototype (one per enrolment picture)
    names += ["%04d %s" % (i, name) for i, name in zip(enrolled["ids"], enrolled["names"])]
    with open("/sd/prototypes.bin", "rb") as f:  # little-endian float32, one row of `dim` per prototype
        for _ in owners:
            prototypes.append(array("f", struct.unpack("<%df" % dim, f.read(4 * dim))))
    del enrolled
    gc.collect()


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
    total = sum(math.exp(z - top) for z in logits)
    best = max(range(len(logits)), key=lambda i: logits[i])
    return best, 1.0 / total  # exp(top - top) / total


lcd.init()
sensor.reset()
sensor.set_pixformat(sensor.RGB565)
sensor.set_framesize(sensor.QVGA)
sensor.set_windowing((240, 240))  # the central square of the 320x240 frame: what the model was trained on
sensor.skip_frames(time=1000)

kpu = KPU()
kpu.load_kmodel("/sd/model.kmodel")
while True:
    img = sensor.snapshot()
    small = img.resize(width, height)  # the whole square at the model's input size, not a cut-out of it
    small.pix_to_ai()  # RGB888 planes for the KPU; the kmodel does its own normalisation
    row = kpu.run_with_output(small, getlist=True)
    del small
    best, score = ranked_scores(row)
    label = names[best] if score >= threshold else "no Pokemon"
    img.draw_string(2, 2, label, scale=2, color=(255, 0, 0))
    img.draw_string(2, 22, "%.2f" % score, scale=2, color=(255, 0, 0))
    lcd.display(img)
    gc.collect()
