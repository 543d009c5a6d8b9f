"""The synthetic Pokédex is deterministic, and its classes are distinct."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from pokedex.data.synthetic import make_species, render, render_jpeg


def _look(sp):
    """Everything that decides the appearance (the name and id do not)."""
    d = dataclasses.asdict(sp)
    del d["dex_id"], d["name"]
    return tuple(sorted((k, str(v)) for k, v in d.items()))


def test_species_table_is_deterministic_and_names_unique():
    a, b = make_species(1025, seed=0), make_species(1025, seed=0)
    assert a == b
    assert [s.dex_id for s in a] == list(range(1, 1026))
    assert len({s.name for s in a}) == 1025
    assert make_species(50, seed=1) != make_species(50, seed=0)


def test_every_class_looks_different():
    species = make_species(1025, seed=0)
    assert len({_look(s) for s in species}) == len(species)


def test_evolution_families_share_a_body_plan_but_differ():
    species = make_species(50, seed=0)
    pairs = [(a, b) for a, b in zip(species, species[1:]) if b.horns and not a.wings and a.body == b.body
             and a.aspect == b.aspect]
    assert pairs, "expected evolutions: neighbours with the same body plan"
    for a, b in pairs:
        assert a.primary != b.primary or a.horns != b.horns or a.size != b.size


def test_same_seed_gives_byte_identical_jpeg_and_other_index_differs():
    sp = make_species(3, seed=0)[1]
    one = render_jpeg(sp, seed=0, index=4, size=64, quality=90)
    assert one == render_jpeg(sp, seed=0, index=4, size=64, quality=90)
    assert hashlib.sha256(one).digest() != hashlib.sha256(render_jpeg(sp, 0, 5, 64, 90)).digest()
    assert one != render_jpeg(sp, seed=1, index=4, size=64, quality=90)


def test_render_size_and_content():
    sp = make_species(1, seed=0)[0]
    img = render(sp, seed=0, index=0, size=80)
    assert img.size == (80, 80) and img.mode == "RGB"
    assert np.asarray(img).std() > 10  # not a blank image
