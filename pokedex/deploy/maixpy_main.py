# MaixPy (>= v0.6.2, which runs nncase 1.x "v5" kmodels) program for the Sipeed Maix Bit:
# copy this folder (main.py, model.kmodel, classes.txt, manifest.json) to the root of the SD card.
# It shows the camera image with the top-1 Pokémon and its score. Hold the camera so that the Pokémon fills most
# of the square in the middle of the screen (a card at about 15 cm). Not run by the test suite: no board here.
import gc
import json

import lcd
import sensor
from maix import KPU

with open("/sd/manifest.json") as f:
    manifest = json.load(f)
width, height = manifest["input_size"]
with open("/sd/classes.txt") as f:
    names = [line.strip() for line in f]

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
    scores = kpu.run_with_output(small, getlist=True)
    del small
    best = max(range(len(scores)), key=lambda i: scores[i])
    img.draw_string(2, 2, "%04d %s" % (best + 1, names[best]), scale=2, color=(255, 0, 0))
    img.draw_string(2, 22, "%.2f" % scores[best], scale=2, color=(255, 0, 0))
    lcd.display(img)
    gc.collect()
