"""The paper's DCGAN: models, faithful and corrected recipes, dismissed baselines, newer recipes."""
from effgen.budget import layer_table
from effgen.gan.ablation import (
    ADDITIONS,
    ablation_folder,
    ablation_run_configs,
    keeps_raw_generator,
    modern_ablation,
    modern_run_config,
)
from effgen.gan.baselines import FCDiscriminator, FCGenerator, LayerNormCritic
from effgen.gan.config import GanConfig, run_folder, settings_key
from effgen.gan.diagnostics import DIAGNOSTIC_COLUMNS
from effgen.gan.diffaugment import diff_augment
from effgen.gan.ema import recompute_batchnorm
from effgen.gan.generator_files import generator_extra, load_generator, save_generator
from effgen.gan.interpolate import (
    checkpoint_output_range,
    interpolation_latents,
    latent_pairs,
    lerp,
    render_latents,
    slerp,
)
from effgen.gan.loop import GanRun, seconds_per_step, train_gan
from effgen.gan.losses import hinge_d_loss, hinge_g_loss
from effgen.gan.models import (
    Discriminator,
    Generator,
    RebalancedGenerator,
    dcgan_init_,
)
from effgen.gan.networks import build_models, check_gan_budget
from effgen.gan.presets import PRESETS, config_from_dict, preset
from effgen.gan.resnet import ResNetDiscriminator, ResNetGenerator
from effgen.gan.run_files import image_grid
from effgen.gan.sampling import (
    GENERATOR_LABELS,
    Sampling,
    generated_images,
    generator_key,
    sample_saved_generator,
    sampling_for,
    saved_generators,
    to_unit_range,
)
from effgen.gan.schedules import lr_at, lr_decays
from effgen.gan.sngan import StandardCnnDiscriminator
from effgen.gan.spectral import spectral_norm_
from effgen.runtime import ModelEma  # the EMA generator's class, shared with the classifier

__all__ = [
    "checkpoint_output_range", "interpolation_latents", "latent_pairs", "lerp", "render_latents", "slerp",
    "ADDITIONS",
    "DIAGNOSTIC_COLUMNS",
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
    "RebalancedGenerator",
    "ResNetDiscriminator",
    "ResNetGenerator",
    "Sampling",
    "StandardCnnDiscriminator",
    "ablation_folder",
    "ablation_run_configs",
    "build_models",
    "check_gan_budget",
    "config_from_dict",
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
    "recompute_batchnorm",
    "run_folder",
    "sample_saved_generator",
    "sampling_for",
    "save_generator",
    "saved_generators",
    "seconds_per_step",
    "settings_key",
    "spectral_norm_",
    "to_unit_range",
    "train_gan",
]
