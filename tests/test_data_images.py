"""GAN images: the resolution order, image folders and their cache, idx files, stand-ins, import."""
from __future__ import annotations

import gzip
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effgen.commands import main
from effgen.data import gan_dataset, images
from effgen.data.idx import read_idx
from effgen.data.image_sets import grey_to_rgb32
from effgen.errors import DataError


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("effgen.data.image_sets.SYSTEM_FASHION_MNIST", tmp_path / "no-system-folder")

    def fail(*args, **kwargs):
        raise urllib.error.URLError("network unreachable (test)")

    monkeypatch.setattr("urllib.request.urlopen", fail)
    return tmp_path / "data"


def make_tree(root: Path, split: str, per_class: int = 3, size: tuple[int, int] = (32, 32)) -> None:
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        folder = root / split / cls
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:04d}.png")


def write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_grey_is_padded_with_background_and_repeated() -> None:
    grey = np.full((2, 28, 28), 255, np.uint8)
    rgb = grey_to_rgb32(grey)
    assert rgb.shape == (2, 3, 32, 32) and rgb.dtype == np.uint8
    assert (rgb[:, :, 2:30, 2:30] == 255).all()
    assert rgb[:, :, :2].max() == 0 and rgb[:, :, :, 30:].max() == 0
    assert (rgb[:, 0] == rgb[:, 2]).all()


def test_image_folder_exact_pixels_range_and_cache(data_dir: Path) -> None:
    make_tree(data_dir / "cifar10", "train")
    first = images("cifar10", "train")
    assert first.images.shape == (6, 3, 32, 32) and first.images.dtype.is_floating_point
    assert first.labels.tolist() == [0, 0, 0, 1, 1, 1]
    raw = np.asarray(Image.open(data_dir / "cifar10/train/dog/0001.png"))
    np.testing.assert_allclose(first.images[4].permute(1, 2, 0).numpy(), raw / 127.5 - 1, atol=1e-6)
    assert -1.0 <= float(first.images.min()) and float(first.images.max()) <= 1.0
    assert "decoded now" in first.provenance["detail"]
    assert (data_dir / "cifar10" / ".cache-train-images.npy").is_file()
    second = images("cifar10", "train")
    assert "cached decode" in second.provenance["detail"]
    assert np.array_equal(first.images.numpy(), second.images.numpy())
    make_tree(data_dir / "cifar10", "train", per_class=4)  # the tree changed: the cache must not be used
    third = images("cifar10", "train")
    assert len(third) == 8 and "decoded now" in third.provenance["detail"]


def test_a_jpeg_tree_is_named_lossy_and_shown_under_the_data_folder(data_dir: Path) -> None:
    make_tree(data_dir / "cifar10", "train")
    png = images("cifar10", "train")
    assert not png.provenance["jpeg"] and "JPEG" not in png.provenance["detail"]
    for path in (data_dir / "cifar10/train").rglob("*.png"):
        Image.open(path).save(path.with_suffix(".jpg"), quality=90)
        path.unlink()
    jpeg = images("cifar10", "train")
    assert jpeg.provenance["jpeg"] and "JPEG-compressed" in jpeg.provenance["detail"]
    # the book names the folder the way any machine would: no absolute path of this one
    assert "image folder data/cifar10/train" in jpeg.provenance["detail"]
    assert str(data_dir) not in jpeg.provenance["detail"]


def test_user_folder_resizes_and_serves_train(tmp_path: Path, data_dir: Path) -> None:
    make_tree(tmp_path / "mine", "train", size=(48, 40))
    found = images(f"folder:{tmp_path / 'mine'}", "train")
    assert found.images.shape == (6, 3, 32, 32)
    assert found.provenance["dataset"] == f"folder:{(tmp_path / 'mine').resolve()}"
    again = images(found.provenance["dataset"], "train")  # the provenance name reloads the same data
    assert np.array_equal(again.images.numpy(), found.images.numpy())
    with pytest.raises(DataError, match="test/"):
        images(f"folder:{tmp_path / 'mine'}", "test")


def test_corrupt_image_names_the_file(data_dir: Path) -> None:
    make_tree(data_dir / "cifar10", "test")
    (data_dir / "cifar10/test/cat/0000.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="0000.png"):
        images("cifar10", "test")


def test_fashion_mnist_from_the_system_folder(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr-share-datasets-fashion-mnist"
    pixels = np.random.default_rng(0).integers(0, 256, (5, 28, 28))
    write_idx(system / "t10k-images-idx3-ubyte.gz", pixels)
    write_idx(system / "t10k-labels-idx1-ubyte.gz", np.arange(5))
    monkeypatch.setattr("effgen.data.image_sets.SYSTEM_FASHION_MNIST", system)
    found = images("fashion-mnist", "test")
    assert found.images.shape == (5, 3, 32, 32) and found.labels.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(found.images[2, 1, 2:30, 2:30].numpy(), pixels[2] / 127.5 - 1, atol=1e-6)
    assert str(system) in found.provenance["detail"]


def test_truncated_idx_is_reported(tmp_path: Path) -> None:
    write_idx(tmp_path / "t.gz", np.zeros((4, 28, 28)))
    with gzip.open(tmp_path / "t.gz") as handle:
        raw = handle.read()
    with gzip.open(tmp_path / "t.gz", "wb") as handle:
        handle.write(raw[:-100])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "t.gz")


def test_missing_dataset_says_what_to_fetch(data_dir: Path) -> None:
    with pytest.raises(DataError) as caught:
        images("cifar100", "train")
    message = str(caught.value)
    assert str(data_dir / "cifar100") in message and "import-images" in message and "CIFAR100" in message


def test_gan_dataset_falls_back_to_a_named_stand_in(data_dir: Path) -> None:
    make_tree(data_dir / "cifar10", "train")
    found = gan_dataset("cifar100", "train")
    assert found.provenance["dataset"] == "cifar10" and found.provenance["requested"] == "cifar100"
    assert found.provenance["stand_in"] is True and "cifar100" in found.provenance["reason"]
    with pytest.raises(DataError):
        gan_dataset("cifar100", "train", allow_stand_in=False)


def test_gan_dataset_last_resort_is_mnist_5k(data_dir: Path) -> None:
    found = gan_dataset("cifar100", "test")
    assert found.provenance["dataset"] == "mnist-5k" and found.provenance["stand_in"] is True
    assert found.images.shape == (1000, 3, 32, 32)
    train = images("mnist-5k", "train")
    assert len(train) == 4000 and float(train.images.min()) == -1.0


def test_import_images_from_tar_gz(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path / "src" / "cifar10-jpeg", "train")
    make_tree(tmp_path / "src" / "cifar10-jpeg", "test", per_class=1)
    archive = tmp_path / "cifar10-jpeg.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar10-jpeg", arcname="cifar10-jpeg")
    assert main(["data", "import-images", str(archive), "--name", "cifar10"]) == 0
    assert "train 6 images, test 2 images" in capsys.readouterr().out
    assert len(images("cifar10", "test")) == 2
    assert main(["data", "import-images", str(archive), "--name", "cifar10"]) == 1  # exists: needs --force
    assert main(["data", "import-images", str(tmp_path / "src"), "--name", "cifar10", "--force"]) == 0
    assert sorted(p.name for p in data_dir.iterdir()) == ["cifar10"]  # no staging left behind


def test_import_without_train_folder_fails_cleanly(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "flat").mkdir()
    assert main(["data", "import-images", str(tmp_path / "flat"), "--name", "x"]) == 1
    assert not (data_dir / "x").exists()
