"""Deployment to the Kendryte K210: nncase 1.x compilation and simulation (in its own Python 3.10 venv)."""
