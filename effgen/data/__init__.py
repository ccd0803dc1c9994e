"""Datasets: AddNIST for the classifier, image folders and torchvision sets for the GAN, in-memory batching."""
from .addnist import SOURCES as ADDNIST_SOURCES
from .addnist import build_addnist, cache_folder, load_addnist
from .addnist_format import AddNIST, read_addnist_folder, write_addnist_folder
from .batches import InMemoryBatches

__all__ = [
    "ADDNIST_SOURCES", "AddNIST", "InMemoryBatches", "build_addnist", "cache_folder", "load_addnist",
    "read_addnist_folder", "write_addnist_folder",
]
