"""Training and evaluation of the TR2M head: datasets, synthetic scenes, losses, trainer."""
