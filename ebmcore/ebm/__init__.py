"""Energy-based models in 2D: the MLP energy, data sets, negatives and the training loops."""
