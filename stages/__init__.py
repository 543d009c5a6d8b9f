"""Stage entrypoints, one per DVC stage: `python -m stages.<name>` (see pokedex/core/stage.py)."""

from pokedex.core.process import exit_on_signals_while_importing

# `python -m stages.X` imports this package first: Ctrl-C during the seconds of importing torch and co.
# ends with one line instead of a traceback.
exit_on_signals_while_importing()
