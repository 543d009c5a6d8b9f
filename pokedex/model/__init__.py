"""A model: built from an architecture (build, layers, arch/, pretrained), loaded from a checkpoint (load), the
one-class detector run on pictures (detector), with Ultralytics kept offline (ultra). Everything above stands on it."""
