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
    ORIGINAL_QUERIES,
    Diversity,
    Embedding,
    Neighbours,
    OriginalProtocol,
    backbone_available,
    backbone_file,
    cached_embedding,
    diversity,
    load_lpips,
    nearest,
    original_protocol,
)

__all__ = [
    "FULL_RANK_MIN_N", "ORIGINAL_QUERIES", "TTUR_MIN_N", "Diversity", "Embedding", "FidStats", "InceptionWeights", "Neighbours",
    "OriginalProtocol", "backbone_available", "backbone_file", "cached_embedding", "cached_stats",
    "checkpoint_output_range", "diversity", "ensure_inception_weights", "fid_vs_n", "find_cached_stats",
    "frechet_distance", "image_set_pixels", "image_set_stats", "inception_features", "interpolation_latents",
    "latent_pairs", "lerp", "load_lpips", "nearest", "original_protocol", "quantise", "render_latents",
    "sample_caveats", "slerp", "subsample", "subset_indices",
]
