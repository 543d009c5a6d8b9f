"""Stages export-onnx (ONNX with a parity check) and compile-kmodel (nncase 1.x compilation and simulation for
the Kendryte K210, in its own Python 3.10 venv), and the MaixPy program that runs both models on the board."""
