"""Evaluation metrics: FID (pytorch-fid's Inception, in memory), LPIPS, and latent interpolation."""
from effgen.metrics.fid import (
    FULL_RANK_MIN_N,
    TTUR_MIN_N,
    FidStats,
    cached_stats,
    fid_vs_n,
    find_cached_stats,
    frechet_distance,
    image_set_pixels,
    image_set_stats,
    inception_features,
    quantise,
    sample_caveats,
    subsample,
    subset_indices,
)
from effgen.metrics.inception_weights import InceptionWeights, ensure_inception_weights
from effgen.metrics.interpolate import (
    checkpoint_output_range,
    interpolation_latents,
    latent_pairs,
    lerp,
    render_latents,
    slerp,
)
from effgen.metrics.perceptual import (
    Memorisation,
    backbone_available,
    backbone_file,
    backbone_url,
    inception_neighbours,
    load_lpips,
    lpips_matrix,
    memorisation,
    original_protocol,
    pairwise_diversity,
)

__all__ = [
    "FULL_RANK_MIN_N", "TTUR_MIN_N", "FidStats", "InceptionWeights", "Memorisation", "backbone_available",
    "backbone_file", "backbone_url", "cached_stats", "checkpoint_output_range", "ensure_inception_weights", "fid_vs_n",
    "find_cached_stats", "frechet_distance", "image_set_pixels", "image_set_stats",
    "inception_features", "inception_neighbours", "interpolation_latents", "latent_pairs", "lerp",
    "load_lpips", "lpips_matrix", "memorisation", "original_protocol", "pairwise_diversity", "quantise",
    "render_latents", "sample_caveats", "slerp", "subsample", "subset_indices",
]
