"""The machinery every stage runs: the `@stage` entrypoint (Hydra over params.yaml), param checks, process
guards (locks, signals, scratch folders), conf/ -> params.yaml, MLflow tracking, and small I/O helpers.

Nothing here knows about Pokémon or models; every other folder may import it, it imports none of them.
"""
