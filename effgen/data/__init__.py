"""Datasets: AddNIST for the classifier, image folders and torchvision sets for the GAN, in-memory batching."""
from .batches import InMemoryBatches

__all__ = ["InMemoryBatches"]
