"""Answering a picture, everywhere it is answered (predict, suggest, report, evaluate, the enroll stage and the
benchmarks): a model's scores and input size (scores), the views it reads and the crop-or-whole rule (views), its
features (features), enrolled species and the "no Pokémon" rule (openset, enroll, clip), a detector of species'
ranking (ranking). It stands on pokedex/model/ and knows nothing of training or metrics."""
