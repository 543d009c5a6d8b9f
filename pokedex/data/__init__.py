"""Stages ingest (raw images from a source), preprocess (clean, resize), yolo-format (grouped splits in the
YOLO layout) and detect-format (scenes with boxes for the detector); the geometry of boxes and the reading of a
field folder (NNNN/ pictures with optional boxes), which later stages share."""

from pokedex.core.checks import Number

# The one data key read from preprocess to the K210 (the pictures' and the model's input size): here, where every
# stage that reads it loads it.
PARAM_RULES = {"data.image_size": Number(int, 16)}
