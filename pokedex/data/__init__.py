"""Stages ingest (raw images from a source), preprocess (clean, resize), yolo-format (grouped splits in the
YOLO layout) and detect-format (scenes with boxes for the detector); the geometry of boxes and the reading of a
field folder (NNNN/ pictures with optional boxes), which later stages share."""
