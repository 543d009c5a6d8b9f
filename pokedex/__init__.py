"""Pokédex: a reproducible DVC + Hydra pipeline that trains a Pokémon classifier for the Kendryte K210."""

__version__ = "0.1.0"
