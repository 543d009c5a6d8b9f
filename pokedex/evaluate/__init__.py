"""Stages enroll, evaluate and clip: the open-set rule and enrolled species (openset, enroll), test-split, scene
and field figures (evaluate, field, accuracy), CLIP beside the classifier (clip)."""
