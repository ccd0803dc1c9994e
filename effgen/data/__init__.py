"""Datasets: AddNIST for the classifier, image folders and torchvision sets for the GAN, in-memory batching."""
from .addnist import SOURCES as ADDNIST_SOURCES
from .addnist import build_addnist, cache_folder, digit_values, load_addnist, verify_recipe
from .addnist_format import AddNIST, read_addnist_folder, write_addnist_folder
from .batches import InMemoryBatches
from .image_sets import IMAGE_DATASETS, ImageSet, gan_dataset, images

__all__ = [
    "ADDNIST_SOURCES",
    "IMAGE_DATASETS",
    "AddNIST",
    "ImageSet",
    "InMemoryBatches",
    "build_addnist",
    "cache_folder",
    "digit_values",
    "gan_dataset",
    "images",
    "load_addnist",
    "read_addnist_folder",
    "verify_recipe",
    "write_addnist_folder",
]
