"""Inference after training: test-time augmentation (TTA) from each fold's best checkpoint."""
