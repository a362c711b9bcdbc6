"""Data: the Kaggle layout, labels, the image cache, transforms, samples, tiles and the sampling strategies."""
