"""The paper's DCGAN: models, the faithful and corrected training recipes, and the dismissed baselines."""
from .models import Discriminator, Generator, load_generator, save_generator

__all__ = ["Discriminator", "Generator", "load_generator", "save_generator"]
