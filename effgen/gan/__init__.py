"""The paper's DCGAN: models, the faithful and corrected training recipes, and the dismissed baselines."""
from .baselines import FCDiscriminator, FCGenerator, LayerNormCritic
from .models import (
    Discriminator,
    Generator,
    dcgan_init_,
    layer_table,
    load_generator,
    save_generator,
)
from .train import (
    PRESETS,
    GanConfig,
    GanRun,
    check_gan_budget,
    generated_images,
    image_grid,
    lr_at,
    lr_decays,
    preset,
    run_folder,
    to_unit_range,
    train_gan,
)

__all__ = [
    "PRESETS", "Discriminator", "FCDiscriminator", "FCGenerator", "GanConfig", "GanRun", "Generator",
    "LayerNormCritic", "check_gan_budget", "dcgan_init_", "generated_images", "image_grid",
    "layer_table", "load_generator", "lr_at", "lr_decays", "preset", "run_folder", "save_generator",
    "to_unit_range", "train_gan",
]
