"""Stages train, train-detector and adapt: the scene augmentation (augment), the classifier's training (train),
the one-class detector's (detector), the fine-tune on your labelled pictures (adapt), byte-stable checkpoints
(stable). Models themselves are built and loaded by pokedex/model/."""
