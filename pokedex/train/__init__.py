"""Stages train and train-detector: Ultralytics kept offline (ultra), our K210 architectures (models, arch/),
the scene augmentation (augment), the classifier's training (train) and the one-class detector's (detector)."""
