"""FID: the exact small-n distance, statistics files and their cache, and agreement with pytorch-fid."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from effgen.errors import DataError
from effgen.metrics import fid as F
from effgen.metrics import inception_weights as iw


def _features(n: int, d: int, seed: int, shift: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.linspace(0.2, 2.0, d)
    return (rng.normal(size=(n, d)) * scales + shift).astype(np.float32)


@pytest.mark.parametrize("n_a,n_b", [(40, 40), (30, 90), (200, 120)])  # below and above d = 64
def test_exact_small_n_equals_pytorch_fid(n_a: int, n_b: int) -> None:
    a = F.FidStats.from_features(_features(n_a, 64, 0))
    b = F.FidStats.from_features(_features(n_b, 64, 1, shift=0.3))
    reference = F.frechet_distance(a, b, method="pytorch-fid")
    exact = F.frechet_distance(a, b, method="exact-small-n")
    assert exact == pytest.approx(reference, rel=1e-6, abs=1e-6)
    assert F.frechet_distance(a, a, method="exact-small-n") == pytest.approx(0.0, abs=1e-4)


def test_auto_falls_back_to_pytorch_fid_without_features() -> None:
    a = F.FidStats.from_features(_features(50, 64, 0), keep_features=False)
    b = F.FidStats.from_features(_features(50, 64, 1, shift=0.5))
    assert F.frechet_distance(a, b) == pytest.approx(F.frechet_distance(a, b, method="pytorch-fid"))
    with pytest.raises(DataError, match="features"):
        F.frechet_distance(a, b, method="exact-small-n")


def test_stats_file_round_trip_and_pytorch_fid_format(tmp_path: Path) -> None:
    stats = F.FidStats.from_features(_features(20, 2048, 0), {"dataset": "toy", "split": "test"})
    loaded = F.FidStats.load(stats.save(tmp_path / "toy.npz"))
    assert loaded.n == 20 and loaded.provenance["dataset"] == "toy"
    np.testing.assert_array_equal(loaded.sigma, stats.sigma)
    np.testing.assert_array_equal(loaded.features, stats.features)
    np.savez(tmp_path / "theirs.npz", mu=stats.mu, sigma=stats.sigma)  # what pytorch-fid --save-stats writes
    theirs = F.FidStats.load(tmp_path / "theirs.npz")
    assert theirs.n is None and theirs.features is None
    np.savez(tmp_path / "bad.npz", mu=np.zeros(3))
    with pytest.raises(DataError, match="not a FID statistics file|not 2048-d"):
        F.FidStats.load(tmp_path / "bad.npz")


def test_quantise_matches_a_png_round_trip(tmp_path: Path) -> None:
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "x.png"
    pixels = (image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(pixels).save(path)
    back = torch.from_numpy(np.asarray(Image.open(path))).permute(2, 0, 1).float() / 255
    assert torch.equal(F.quantise(image), back)
    assert torch.equal(F.quantise(F.quantise(image)), F.quantise(image))


def test_subsample_is_seeded_and_keeps_order() -> None:
    images = torch.arange(100).float()[:, None]
    a, b = F.subsample(images, 10, seed=3), F.subsample(images, 10, seed=3)
    assert torch.equal(a, b) and torch.all(a[1:] > a[:-1])
    assert not torch.equal(a, F.subsample(images, 10, seed=4))
    assert F.subsample(images, None, 0) is images


def test_caveats_name_rank_and_ttur() -> None:
    small = " ".join(F.sample_caveats(1000, 1000))
    assert "rank-deficient" in small and "10,000" in small
    assert F.sample_caveats(10_000, 10_000) == []
    assert "rank" not in " ".join(F.sample_caveats(5000, 5000))


def _count_inception_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Replace Inception by a cheap feature map so that a test checks the cache logic only (no FID asserted);
    returns the list of batch sizes it was called with."""
    calls: list[int] = []

    def fake_features(images01, device="cpu", batch_size=50, desc="", partial=None, resize="pytorch-fid"):
        calls.append(len(images01))
        return images01.flatten(1)[:, :1].repeat(1, 2048).numpy() + np.arange(2048, dtype=np.float32)

    monkeypatch.setattr(F, "inception_features", fake_features)
    return calls


def test_image_set_stats_cache_is_keyed_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_inception_calls(monkeypatch)
    images = torch.rand(12, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    image_set = SimpleNamespace(images=images, provenance={"dataset": "toy", "split": "test"})
    first = F.image_set_stats(image_set, tmp_path, n=8, seed=0)
    again = F.image_set_stats(image_set, tmp_path, n=8, seed=0)
    other = F.image_set_stats(image_set, tmp_path, n=8, seed=1)
    assert calls == [8, 8]  # the repeat came from the cache
    assert first.n == 8 and "cached" in again.provenance and first.provenance["subset_seed"] == 0
    np.testing.assert_array_equal(first.mu, again.mu)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert other.provenance["content_sha1"] != first.provenance["content_sha1"]


def test_fid_vs_n_rows() -> None:
    rows = F.fid_vs_n(_features(60, 2048, 0), _features(60, 2048, 1), [10, 30, 100])
    assert [r["n"] for r in rows] == [10, 30]
    assert all(np.isfinite(r["fid"]) for r in rows)


@pytest.mark.skipif(iw.fid_helper_torchscript_path() is None and not iw.pytorch_fid_weights_path().is_file(),
                    reason="no FID Inception weights available offline")
def test_in_memory_features_equal_pytorch_fid_on_png_files(tmp_path: Path) -> None:
    """Our tensor path and pytorch-fid's file path see the same pixels and give the same features."""
    from pytorch_fid.fid_score import get_activations

    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray((image.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()).save(files[-1])
    ours = F.inception_features(images, "cpu", batch_size=5)
    network = iw.fid_inception_network(3)  # pytorch-fid's InceptionV3, weights loaded from our resolved file
    theirs = get_activations([str(p) for p in files], network, batch_size=5, device="cpu")
    assert ours.shape == theirs.shape == (5, 2048)
    assert np.abs(ours - theirs).max() < 1e-4


STATS_DAMAGE = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 3]),
    "garbage": lambda p: p.write_bytes(b"PK\x03\x04 not really a zip"),
    "empty": lambda p: p.write_bytes(b""),
    "a bare npy": lambda p: np.save(p.open("wb"), np.zeros(3)),
    "bit flip": lambda p: p.write_bytes(p.read_bytes()[:200] + bytes(b ^ 0xFF for b in p.read_bytes()[200:400])
                                        + p.read_bytes()[400:]),
    "nan": lambda p: np.savez(p, mu=np.full(2048, np.nan), sigma=np.eye(2048)),
    "bad provenance": lambda p: np.savez(p, mu=np.zeros(2048), sigma=np.eye(2048), provenance=np.array("[1, 2]")),
}


@pytest.mark.parametrize("damage", list(STATS_DAMAGE))
def test_damaged_stats_file_is_a_one_line_error(tmp_path: Path, damage: str) -> None:
    path = F.FidStats.from_features(_features(20, 2048, 0), {"dataset": "toy"}).save(tmp_path / "s.npz")
    STATS_DAMAGE[damage](path)
    try:
        F.FidStats.load(path)
    except DataError as err:
        assert str(err).startswith(str(path)) and "\n" not in str(err)
    else:  # a flip inside an uncompressed array's payload can leave a readable file; it must still be sane
        assert damage == "bit flip"


def test_damaged_stats_cache_is_recomputed_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_inception_calls(monkeypatch)
    images01 = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    first = F.cached_stats(images01, {"dataset": "toy"}, tmp_path)
    (cached,) = tmp_path.glob("*.npz")
    cached.write_bytes(cached.read_bytes()[:100])
    with pytest.warns(UserWarning, match="recomputing damaged FID statistics cache"):
        again = F.cached_stats(images01, {"dataset": "toy"}, tmp_path)
    assert calls == [6, 6] and "cached" not in again.provenance
    np.testing.assert_array_equal(first.mu, again.mu)
    third = F.cached_stats(images01, {"dataset": "toy"}, tmp_path)  # the repaired file serves again
    assert calls == [6, 6] and "cached" in third.provenance


def test_the_same_pixels_under_another_name_reuse_the_statistics(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_inception_calls(monkeypatch)
    images01 = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    first = F.cached_stats(images01, {"dataset": "generator-corrected-eval"}, tmp_path)
    shared = F.cached_stats(images01, {"dataset": "generator-06-corrected DCGAN"}, tmp_path)
    assert calls == [6] and shared.provenance["cached"].endswith(".npz")
    np.testing.assert_array_equal(first.mu, shared.mu)
    F.cached_stats(images01[:5], {"dataset": "generator-06-corrected DCGAN"}, tmp_path)  # other pixels: computed
    assert calls == [6, 5]


class _PoolFeatures(torch.nn.Module):
    """A stand-in for Inception with its output format ([(N, 2048, 1, 1)]), cheap and deterministic;
    it raises once ``fail_after`` batches have gone through, as a session that ends would stop it."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.batches, self.fail_after = 0, fail_after

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self.fail_after is not None and self.batches == self.fail_after:
            raise KeyboardInterrupt
        self.batches += 1
        pooled = x.mean(dim=(2, 3))  # (N, 3)
        return [(pooled.repeat(1, 2048 // 3 + 1)[:, :2048] * torch.arange(1, 2049)).reshape(len(x), 2048, 1, 1)]


def test_an_interrupted_feature_pass_continues_where_it_stopped(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    images01 = torch.rand(10, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(F, "_inception", lambda device: _PoolFeatures())
    whole = F.inception_features(images01, batch_size=2)
    monkeypatch.setattr(F, "PARTIAL_SAVE_SECONDS", 0.0)  # keep what there is after every batch
    partial = tmp_path / "partial.npy"
    monkeypatch.setattr(F, "_inception", lambda device: _PoolFeatures(fail_after=3))
    with pytest.raises(KeyboardInterrupt):
        F.inception_features(images01, batch_size=2, partial=partial)
    assert np.load(partial).shape == (6, 2048)
    rest = _PoolFeatures()
    monkeypatch.setattr(F, "_inception", lambda device: rest)
    resumed = F.inception_features(images01, batch_size=2, partial=partial)
    assert rest.batches == 2  # only the images after the first six
    np.testing.assert_array_equal(resumed, whole)
    np.save(partial, whole[:6])
    with pytest.warns(UserWarning, match="do not continue"):  # six rows are not whole batches of 4: afresh
        again = F.inception_features(images01, batch_size=4, partial=partial)
    np.testing.assert_allclose(again, whole, rtol=1e-6)


def test_cached_stats_resume_a_partial_pass_under_any_name_and_clear_it(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    images01 = torch.rand(8, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    monkeypatch.setattr(F, "PARTIAL_SAVE_SECONDS", 0.0)
    monkeypatch.setattr(F, "_inception", lambda device: _PoolFeatures(fail_after=2))
    with pytest.raises(KeyboardInterrupt):
        F.cached_stats(images01, {"dataset": "generator-corrected-eval"}, tmp_path, batch_size=2)
    (partial,) = tmp_path.glob("partial-n8-*.npy")
    rest = _PoolFeatures()
    monkeypatch.setattr(F, "_inception", lambda device: rest)
    stats = F.cached_stats(images01, {"dataset": "generator-06-corrected DCGAN"}, tmp_path, batch_size=2)
    assert rest.batches == 2 and stats.n == 8 and not partial.exists()
    assert F.find_cached_stats(images01, tmp_path) is not None


def test_clean_resize_is_pils_bicubic_on_each_8_bit_channel() -> None:
    images01 = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    resized = F.clean_resize(images01)
    assert resized.shape == (2, 3, 299, 299) and 0.0 <= float(resized.min()) and float(resized.max()) <= 1.0
    channel = (images01[1, 2] * 255).round().numpy().astype(np.float32)
    by_hand = np.asarray(Image.fromarray(channel, mode="F").resize((299, 299), Image.Resampling.BICUBIC))
    np.testing.assert_allclose(resized[1, 2].numpy() * 255, by_hand.clip(0, 255), rtol=0, atol=1e-3)
    # pytorch-fid's own bilinear resize, which the network still applies, leaves a 299x299 input as it is
    again = torch.nn.functional.interpolate(resized, size=(299, 299), mode="bilinear", align_corners=False)
    assert torch.equal(again, resized)


def test_clean_statistics_are_cached_apart_and_the_default_keys_are_unchanged(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    calls = _count_inception_calls(monkeypatch)
    images01 = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    default = F.cached_stats(images01, {"dataset": "toy"}, tmp_path)
    clean = F.cached_stats(images01, {"dataset": "toy"}, tmp_path, resize="clean")
    assert calls == [6, 6] and clean.provenance["resize"] == "clean" and "resize" not in default.provenance
    assert F.cached_stats(images01, {"dataset": "toy"}, tmp_path, resize="clean").provenance["cached"].endswith(
        f"toy-clean-n6-{clean.provenance['content_sha1'][:12]}.npz")
    pixels = F.quantise(images01)
    before_the_option = hashlib.sha1(pixels.mul(255).round().to(torch.uint8).numpy().tobytes() + b"v1").hexdigest()
    assert default.provenance["content_sha1"] == before_the_option != clean.provenance["content_sha1"]
    with pytest.raises(DataError, match="unknown FID resize 'bicubic'"):
        F.cached_stats(images01, {"dataset": "toy"}, tmp_path, resize="bicubic")
