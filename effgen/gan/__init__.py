"""The paper's DCGAN: models, the faithful and corrected training recipes, the dismissed baselines, and a modern recipe."""
from .ablation import ADDITIONS, modern_ablation
from .baselines import FCDiscriminator, FCGenerator, LayerNormCritic
from .diffaugment import diff_augment
from .ema import ModelEma
from .losses import hinge_d_loss, hinge_g_loss
from .models import (
    Discriminator,
    Generator,
    dcgan_init_,
    layer_table,
    load_generator,
    save_generator,
)
from .resnet import ResNetDiscriminator, ResNetGenerator
from .spectral import spectral_norm_
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
    "ADDITIONS", "PRESETS", "Discriminator", "FCDiscriminator", "FCGenerator", "GanConfig", "GanRun", "Generator",
    "LayerNormCritic", "ModelEma", "ResNetDiscriminator", "ResNetGenerator", "check_gan_budget", "dcgan_init_",
    "diff_augment", "generated_images", "hinge_d_loss", "hinge_g_loss", "image_grid", "layer_table",
    "load_generator", "lr_at", "lr_decays", "modern_ablation", "preset", "run_folder", "save_generator",
    "spectral_norm_", "to_unit_range", "train_gan",
]
