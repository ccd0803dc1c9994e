"""The paper's DCGAN: models, the faithful and corrected training recipes, the dismissed baselines, and a modern recipe."""
from effgen.gan.ablation import (
    ADDITIONS,
    ablation_folder,
    ablation_run_configs,
    keeps_raw_generator,
    modern_ablation,
    modern_run_config,
)
from effgen.gan.baselines import FCDiscriminator, FCGenerator, LayerNormCritic
from effgen.gan.diffaugment import diff_augment
from effgen.gan.ema import ModelEma
from effgen.gan.losses import hinge_d_loss, hinge_g_loss
from effgen.gan.models import (
    Discriminator,
    Generator,
    dcgan_init_,
    generator_extra,
    layer_table,
    load_generator,
    save_generator,
)
from effgen.gan.resnet import ResNetDiscriminator, ResNetGenerator
from effgen.gan.sampling import (
    GENERATOR_LABELS,
    Sampling,
    generator_key,
    sample_saved_generator,
    sampling_for,
    saved_generators,
)
from effgen.gan.spectral import spectral_norm_
from effgen.gan.train import (
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
    seconds_per_step,
    to_unit_range,
    train_gan,
)

__all__ = [
    "ADDITIONS",
    "GENERATOR_LABELS",
    "PRESETS",
    "Discriminator",
    "FCDiscriminator",
    "FCGenerator",
    "GanConfig",
    "GanRun",
    "Generator",
    "LayerNormCritic",
    "ModelEma",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "Sampling",
    "ablation_folder",
    "ablation_run_configs",
    "check_gan_budget",
    "dcgan_init_",
    "diff_augment",
    "generated_images",
    "generator_extra",
    "generator_key",
    "hinge_d_loss",
    "hinge_g_loss",
    "image_grid",
    "keeps_raw_generator",
    "layer_table",
    "load_generator",
    "lr_at",
    "lr_decays",
    "modern_ablation",
    "modern_run_config",
    "preset",
    "run_folder",
    "sample_saved_generator",
    "sampling_for",
    "save_generator",
    "saved_generators",
    "seconds_per_step",
    "spectral_norm_",
    "to_unit_range",
    "train_gan",
]
