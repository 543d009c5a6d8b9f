"""A model: built from an architecture (build, layers, arch/), loaded from a checkpoint (load), run on pictures
(ranking, detector), with Ultralytics kept offline (ultra). Train, evaluate, deploy and predict all stand on it."""
