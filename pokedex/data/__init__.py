"""Data stages: ingest (raw images), preprocess (clean, resize), yolo_format (split into the YOLO layout)."""
