"""Evaluation metrics: FID (pytorch-fid's Inception, in memory) and LPIPS. Latent interpolation, which needs a
generator, lives with the GAN (``effgen.gan.interpolate``)."""
from effgen.metrics.fid import (
    FULL_RANK_MIN_N,
    RESIZES,
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
    "FULL_RANK_MIN_N", "ORIGINAL_QUERIES", "RESIZES", "TTUR_MIN_N", "Diversity", "Embedding", "FidStats", "InceptionWeights", "Neighbours",
    "OriginalProtocol", "backbone_available", "backbone_file", "cached_embedding", "cached_stats",
    "diversity", "ensure_inception_weights", "fid_vs_n", "find_cached_stats",
    "frechet_distance", "image_set_pixels", "image_set_stats", "inception_features",
    "load_lpips", "nearest", "original_protocol", "quantise", "render_latents",
    "sample_caveats", "subsample", "subset_indices",
]
