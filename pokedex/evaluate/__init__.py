"""Stages evaluate and clip: test-split, scene and field figures (evaluate, field, accuracy), CLIP beside the
classifier (clip). What answers a picture lives in pokedex/recognise/; this floor measures it."""
