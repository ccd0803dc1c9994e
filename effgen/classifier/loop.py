"""Step-budgeted classifier training with per-epoch checkpoints that resume exactly.

An "epoch" is ``steps_per_epoch`` optimisation steps (1,000 in the paper), not a pass over
the data: batches come from an endless, seeded, drop-last sampler over the in-memory
training tensor. After each epoch the model is scored on the validation split (or a fixed
subset of it), a history row is added, and, when an output folder is given, everything a
resumed run needs is written: weights, Adam state, sampler position and the torch RNG.
A run resumed from that checkpoint on CPU ends with the same metrics as one never stopped.
When the run finishes it also writes ``weights.pt``: the checkpoint without the Adam and sampler
state. That file alone reloads the finished run (weights, history, RNG), so it is what the run
store keeps of a finished run; ``checkpoint.pt`` is needed only to resume an unfinished one.

The recipe switches of chapter 06 (``effgen.classifier.recipe``) hook in here: the learning rate
of each step, label smoothing, augmentation of each batch, and an EMA of the weights. With
EMA on, the checkpoint holds both the raw and the averaged weights, validation scores the
averaged model (the raw one is scored too, in ``val_acc_raw``) and the returned model is the
averaged one. All are off by default, and then nothing here changes.
"""
from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from torch import Tensor, nn

from effgen.budget import CLASSIFIER_LIMITS, BudgetReport, check_budget, count_params
from effgen.checkpoints import (
    atomic_torch_save,
    atomic_write,
    exclusive_run,
    load_module_state,
    read_checkpoint,
)
from effgen.classifier.config import ClassifierConfig, build_model
from effgen.classifier.recipe import WeightEMA, augment_batch, lr_at
from effgen.data.batches import InMemoryBatches
from effgen.errors import CheckpointError, DataError, EffgenError, ParamsError
from effgen.paths import CHECKPOINT_FILE, WEIGHTS_FILE
from effgen.runtime import (
    autocast,
    flush_denormals,
    keep_freed_memory_on,
    memory_format,
    place,
    progress,
    seed_everything,
)

HISTORY_FILE = "history.csv"
CONFIG_FILE = "config.yml"
CHECKPOINT_FORMAT = 1
RESUME_KEYS = ("config", "data_fingerprint", "model", "rng", "history", "step")
# Absent from weights.pt (and from older frozen "slim" checkpoints); needed only to continue a run.
TRAINING_STATE_KEYS = ("optimizer", "sampler")
HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "step", "train_loss", "train_acc", "val_loss", "val_acc",
                                    "val_acc_running_mean", "seconds")
EMA_COLUMNS: tuple[str, ...] = ("val_loss_raw", "val_acc_raw")  # with EMA on: the raw weights' validation scores
ORIGINAL_TEST_BATCH = 64  # the original scored test accuracy as a mean over batches of 64
CPU_EVAL_BATCH = 128
ACCELERATOR_EVAL_BATCH = 1000

EpochCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    model: nn.Module
    history: pd.DataFrame  # one row per epoch, columns HISTORY_COLUMNS
    budget: BudgetReport
    final_val_acc: float  # fraction in [0, 1]
    reused: bool = False  # True when a finished run was loaded from out_dir, not trained
    raw_model: nn.Module | None = None  # with EMA on: the raw weights (``model`` is then the EMA)


def train_classifier(config: ClassifierConfig, train: tuple[Tensor, Tensor], valid: tuple[Tensor, Tensor],
                     device: torch.device, out_dir: Path | None = None,
                     on_epoch: EpochCallback | None = None, wait: bool = False) -> TrainResult:
    """Train (or resume, or reuse) one classifier run; see the module docstring.

    Checks the data and the paper's budget before any compute. ``on_epoch(epoch, row)`` runs
    after each trained epoch's checkpoint is written and may raise (e.g. ``optuna.TrialPruned``).
    One process at a time trains in ``out_dir`` (``effgen.checkpoints.exclusive_run``); another
    one fails at once, or with ``wait`` (a run-store entry two chapters need) waits, then reuses it.
    """
    with exclusive_run(out_dir, wait=wait), flush_denormals():
        return _train_classifier(config, train, valid, device, out_dir, on_epoch)


def _train_classifier(config: ClassifierConfig, train: tuple[Tensor, Tensor], valid: tuple[Tensor, Tensor],
                      device: torch.device, out_dir: Path | None, on_epoch: EpochCallback | None) -> TrainResult:
    device = torch.device(device)
    x_train, y_train = _checked_split("train", train)
    x_valid, y_valid = _checked_split("valid", valid)
    if len(y_train) < config.batch_size:
        raise DataError(f"the training split has {len(y_train)} samples, fewer than one batch "
                        f"of {config.batch_size}")
    seed_everything(config.seed)
    model = build_model(config)  # built right after seeding, so its initial weights follow the seed
    budget = _check(model, config)
    fingerprint = data_fingerprint(x_train, y_train, x_valid, y_valid)
    state = matching_checkpoint(Path(out_dir), config, fingerprint) if out_dir is not None else None

    fmt = memory_format(device)
    place(model, device)
    keep_freed_memory_on(device)
    # One fused kernel for all ~60 parameter tensors instead of ~10 small ops each (same update).
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                 fused=device.type in ("cpu", "cuda"))
    sampler = InMemoryBatches(x_train.to(device), y_train.to(device), batch_size=config.batch_size,
                              shuffle=True, seed=config.seed)
    x_val, y_val = (t.to(device) for t in _validation_subset(x_valid, y_valid, config))
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
    history: list[dict[str, float]] = []
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        if "optimizer" in state:  # weights.pt is a finished run: nothing to resume
            optimizer.load_state_dict(state["optimizer"])
            sampler.load_state_dict(state["sampler"])
        _set_rng_state(state["rng"], device)
        history = [dict(row) for row in state["history"]]
        step = int(state["step"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
    reused = state is not None and step >= config.steps

    bar = progress(total=config.steps, initial=step, desc=_describe(config), leave=False)
    try:
        while step < config.steps:
            epoch = len(history) + 1
            n_steps = min(config.steps_per_epoch, config.steps - step)
            started = time.perf_counter()
            train_loss, train_acc = _train_steps(model, optimizer, sampler, n_steps, device, fmt, bar,
                                                 config=config, first_step=step, ema=ema)
            step += n_steps
            val = evaluate(model if ema is None else ema.model, x_val, y_val, device)
            seconds = time.perf_counter() - started  # training and one validation pass, with or without EMA
            val_accs = [row["val_acc"] for row in history] + [val["accuracy"]]
            row = {
                "epoch": epoch, "step": step, "train_loss": train_loss, "train_acc": train_acc,
                "val_loss": val["loss"], "val_acc": val["accuracy"],
                # the original printed this running mean as "validation accuracy" (SPEC §2)
                "val_acc_running_mean": sum(val_accs) / len(val_accs),
                "seconds": seconds,
            }
            if ema is not None:
                raw = evaluate(model, x_val, y_val, device)
                row.update(val_loss_raw=raw["loss"], val_acc_raw=raw["accuracy"])
            history.append(row)
            bar.set_postfix(train_acc=f"{train_acc:.3f}", val_acc=f"{val['accuracy']:.3f}")
            if out_dir is not None:
                _write_checkpoint(Path(out_dir), config, fingerprint, budget, model, optimizer, sampler,
                                  device, history, step, ema)
            if on_epoch is not None:
                on_epoch(epoch, dict(row))
    finally:
        bar.close()
    if reused and state is not None and out_dir is not None and not (Path(out_dir) / WEIGHTS_FILE).is_file():
        # finished before runs wrote weights.pt, or stopped between its two last files
        atomic_torch_save(weights_payload(state), Path(out_dir) / WEIGHTS_FILE)
    model.eval()
    frame = pd.DataFrame(history, columns=history_columns(config))
    final = float(frame["val_acc"].iloc[-1]) if len(frame) else math.nan
    if ema is not None:
        return TrainResult(model=ema.model.eval(), history=frame, budget=budget, final_val_acc=final,
                           reused=reused, raw_model=model)
    return TrainResult(model=model, history=frame, budget=budget, final_val_acc=final, reused=reused)


def history_columns(config: ClassifierConfig) -> list[str]:
    """The history's columns: HISTORY_COLUMNS, and the raw weights' validation scores when EMA is on."""
    return list(HISTORY_COLUMNS) + (list(EMA_COLUMNS) if config.ema_decay > 0 else [])


def budget_of(config: ClassifierConfig) -> BudgetReport:
    """The run's parameters and steps against the paper's limits; ``BudgetError`` when over them undeclared."""
    return _check(build_model(config), config)


def _check(model: nn.Module, config: ClassifierConfig) -> BudgetReport:
    return check_budget(count_params(model), config.steps, CLASSIFIER_LIMITS, config.over_budget_reason,
                        batch_size=config.batch_size)


def _train_steps(model: nn.Module, optimizer: torch.optim.Optimizer, sampler: InMemoryBatches,
                 n_steps: int, device: torch.device, fmt: torch.memory_format,
                 bar: Any, config: ClassifierConfig | None = None, first_step: int = 0,
                 ema: WeightEMA | None = None) -> tuple[float, float]:
    """``n_steps`` Adam steps; returns the mean loss and accuracy over the batches seen (train mode).

    ``config`` switches the recipe (schedule, label smoothing, augmentation); ``first_step`` is the
    run's step count before these steps, for the schedule and the augmentation's seeds.
    """
    config = config or ClassifierConfig()
    scheduled = config.lr_schedule != "constant"
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for i in range(n_steps):
        x, y = sampler.next()
        x = augment_batch(x, config, first_step + i).contiguous(memory_format=fmt)
        if scheduled:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(config, first_step + i)
        with autocast(device):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if ema is not None:
            ema.update(model)
        # accumulated on the device: no host sync per step
        loss_sum += loss.detach()
        correct += (logits.detach().argmax(1) == y).sum()
        seen += len(y)
        bar.update(1)
    return float(loss_sum) / n_steps, int(correct) / seen


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, device: torch.device,
             batch_size: int | None = None) -> dict:
    """Score every sample of (x, y); the model must already be on ``device``.

    ``batch_size`` None picks one per device: 128 on CPU, where the activations of larger batches
    fall out of cache (1,000 was measured ~3x slower per image on 2 cores), and 1,000 elsewhere.

    Returns ``accuracy`` (correct / n, over all samples), ``mean_batch_accuracy`` (the original's
    mean of per-batch accuracies over batches of 64, the last partial batch weighted like the
    others), ``loss`` (mean cross-entropy), ``n`` and ``predictions`` (a CPU int64 tensor).
    """
    device = torch.device(device)
    x, y = _checked_split("evaluation", (x, y))
    batch_size = batch_size or (CPU_EVAL_BATCH if device.type == "cpu" else ACCELERATOR_EVAL_BATCH)
    fmt = memory_format(device)
    was_training = model.training
    model.eval()
    predictions, loss_sum = [], 0.0
    try:
        with flush_denormals():
            for start in range(0, len(y), batch_size):
                xb = x[start:start + batch_size].to(device).contiguous(memory_format=fmt)
                yb = y[start:start + batch_size].to(device)
                with autocast(device):
                    logits = model(xb)
                logits = logits.float()
                loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                predictions.append(logits.argmax(1).cpu())
    finally:
        model.train(was_training)
    predicted = torch.cat(predictions)
    correct = (predicted == y.cpu()).double()  # float64: exact counts, no float32 rounding in the report
    per_batch = correct.split(ORIGINAL_TEST_BATCH)
    return {
        "accuracy": int(correct.sum()) / len(y),
        "mean_batch_accuracy": float(torch.stack([b.mean() for b in per_batch]).mean()),
        "loss": loss_sum / len(y),
        "n": len(y),
        "predictions": predicted,
    }


class UnfinishedRunWarning(UserWarning):
    """A classifier checkpoint was loaded before its run reached its configured steps."""


def load_classifier(path: Path, device: torch.device | str = "cpu",
                    weights: str = "auto") -> tuple[nn.Module, ClassifierConfig]:
    """A trained classifier from ``weights.pt`` or ``checkpoint.pt`` (or a run folder: its ``weights.pt``
    when it finished, else its checkpoint), in eval mode.

    ``weights``: ``"auto"`` the EMA weights when the run kept them (what it was evaluated with),
    else the raw ones; ``"raw"`` or ``"ema"`` to choose. Weights that do not fit the stored config,
    or hold a NaN or infinity (a diverged run, a damaged file), are a one-line ``CheckpointError``;
    a run stopped before its last step loads with an ``UnfinishedRunWarning``.
    """
    if weights not in ("auto", "raw", "ema"):
        raise ValueError(f"weights must be 'auto', 'raw' or 'ema', not {weights!r}")
    path = Path(path)
    if path.is_dir():
        path = run_state_file(path)
    if not path.is_file():
        raise EffgenError(f"{path}: no such checkpoint; train one with `effgen train classifier`")
    device = torch.device(device)
    payload = _load(path)
    config = ClassifierConfig.from_dict(payload["config"], source=f"{path}: config")
    if weights == "ema" and "ema" not in payload:
        raise EffgenError(f"{path}: this run kept no EMA weights (ema_decay {config.ema_decay})")
    use_ema = weights != "raw" and "ema" in payload
    state = payload["ema"].get("model") if use_ema and isinstance(payload["ema"], dict) else payload["model"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: a damaged classifier checkpoint (its weights are not a state dict)")
    model = build_model(config)
    load_module_state(model, state, path, f"classifier config ({_describe(config)})")
    if broken := _non_finite_tensors(state):
        raise CheckpointError(f"{path}: {len(broken)} of {len(state)} weight tensors hold NaN or infinity "
                              f"({', '.join(broken[:3])}{', ...' if len(broken) > 3 else ''}): the run "
                              "diverged or the file is damaged; it cannot be scored")
    step = payload.get("step")
    if isinstance(step, int) and step < config.steps:
        warnings.warn(f"{path}: an unfinished run, stopped at step {step:,} of {config.steps:,}; its scores "
                      "are not the run's", UnfinishedRunWarning, stacklevel=2)
    place(model, device).eval()
    return model, config


def _non_finite_tensors(state: dict[str, Any]) -> list[str]:
    return [name for name, tensor in state.items()
            if isinstance(tensor, Tensor) and tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]


def data_fingerprint(*tensors: Tensor) -> str:
    """A cheap identity for the training data: shapes, dtypes, every label and a strided sample of pixels.

    Stored with each checkpoint so a run is never resumed on different data by accident.
    """
    digest = hashlib.sha256()
    for tensor in tensors:
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(flat[::max(1, flat.numel() // 100_000)].numpy().tobytes())
    return digest.hexdigest()[:16]


def _checked_split(name: str, split: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    try:
        x, y = split
    except (TypeError, ValueError):
        raise DataError(f"the {name} split must be a pair (x, y) of tensors") from None
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise DataError(f"the {name} split must hold torch tensors, got {type(x).__name__}, {type(y).__name__}")
    if x.ndim != 4 or not x.is_floating_point():
        raise DataError(f"{name} images must be a float tensor (N, C, H, W), got {x.dtype} {tuple(x.shape)}")
    if y.ndim != 1 or y.dtype != torch.int64 or len(y) != len(x):
        raise DataError(f"{name} labels must be int64 (N,) matching {len(x)} images, "
                        f"got {y.dtype} {tuple(y.shape)}")
    if len(y) == 0:
        raise DataError(f"the {name} split is empty")
    return x, y


def _validation_subset(x: Tensor, y: Tensor, config: ClassifierConfig) -> tuple[Tensor, Tensor]:
    """All of the validation split, or a fixed seeded subset of ``eval_samples`` scored every epoch."""
    if config.eval_samples is None or config.eval_samples >= len(y):
        return x, y
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(config.seed))
    index = order[:config.eval_samples].sort().values
    return x[index], y[index]


def _describe(config: ClassifierConfig) -> str:
    extra = "+block" if config.extra_block else ""
    return f"{config.model}{extra}/{config.activation} seed {config.seed}"


def _rng_state(device: torch.device) -> dict[str, Tensor]:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["torch"].cpu())  # set_rng_state takes CPU ByteTensors only
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)


def _write_checkpoint(out_dir: Path, config: ClassifierConfig, fingerprint: str, budget: BudgetReport,
                      model: nn.Module, optimizer: torch.optim.Optimizer, sampler: InMemoryBatches,
                      device: torch.device, history: list[dict[str, float]], step: int,
                      ema: WeightEMA | None = None) -> None:
    """Write the checkpoint, history.csv and config.yml, and weights.pt once finished, each atomically.

    With EMA on, the checkpoint keeps both weights: ``model`` (raw) and ``ema`` (averaged).
    weights.pt comes last: beside it, every other file is the finished run's.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": config.to_dict(),
        "data_fingerprint": fingerprint,
        "budget": budget.as_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "sampler": sampler.state_dict(),
        "rng": _rng_state(device),
        "history": history,
        "step": step,
        "finished": step >= config.steps,
    }
    if ema is not None:
        payload["ema"] = ema.state_dict()
    atomic_torch_save(payload, out_dir / CHECKPOINT_FILE)
    frame = pd.DataFrame(history, columns=history_columns(config))
    atomic_write(out_dir / HISTORY_FILE, lambda tmp: frame.to_csv(tmp, index=False))
    text = yaml.safe_dump({**config.to_dict(), "params": budget.params,
                           "over_budget": budget.over_budget}, sort_keys=False)
    atomic_write(out_dir / CONFIG_FILE, lambda tmp: tmp.write_text(text))
    if payload["finished"]:
        atomic_torch_save(weights_payload(payload), out_dir / WEIGHTS_FILE)


def weights_payload(checkpoint: dict[str, Any]) -> dict[str, Any]:
    """What ``weights.pt`` holds: a finished checkpoint without the state only resuming needs."""
    dropped = (*TRAINING_STATE_KEYS, "slim")  # "slim": the marker of older frozen checkpoints
    return {**{key: value for key, value in checkpoint.items() if key not in dropped}, "finished": True}


def run_state_file(out_dir: Path) -> Path:
    """The file a run folder is reloaded from: ``weights.pt`` once finished, else ``checkpoint.pt``."""
    weights = Path(out_dir) / WEIGHTS_FILE
    return weights if weights.is_file() else Path(out_dir) / CHECKPOINT_FILE


def _load(path: Path, required: tuple[str, ...] = ("config", "model")) -> dict[str, Any]:
    """A classifier checkpoint, read onto the CPU (its RNG and sampler states must stay CPU tensors)."""
    payload = read_checkpoint(path, "classifier checkpoint", ("format",))
    if payload["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not an effgen classifier checkpoint (format {payload['format']!r})")
    if missing := [key for key in required if key not in payload]:
        raise CheckpointError(f"{path}: a damaged classifier checkpoint (missing {', '.join(missing)}); "
                              "delete it to start the run over")
    return payload


def matching_checkpoint(out_dir: Path, config: ClassifierConfig, fingerprint: str) -> dict[str, Any] | None:
    """The run's state in ``out_dir`` (``run_state_file``) if it is this exact run's; None when there is none."""
    path = run_state_file(out_dir)
    if not path.is_file():
        return None
    payload = _load(path, RESUME_KEYS)
    saved = payload["config"]
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path}: a damaged classifier checkpoint (its config is not a mapping)")
    differences = [f"{key}: saved {saved.get(key)!r}, requested {value!r}"
                   for key, value in config.to_dict().items() if saved.get(key) != value]
    if differences:
        raise ParamsError(f"{out_dir} holds a run with a different config ({'; '.join(differences)}); "
                          "use another output folder or delete it")
    if payload["data_fingerprint"] != fingerprint:
        raise DataError(f"{out_dir} holds a run trained on different data (fingerprint "
                        f"{payload['data_fingerprint']} vs {fingerprint}); use another output folder "
                        "or delete it")
    missing = [key for key in TRAINING_STATE_KEYS if key not in payload]
    if missing and len(missing) < len(TRAINING_STATE_KEYS):  # a slim checkpoint drops all of them, never some
        raise CheckpointError(f"{path}: a damaged classifier checkpoint (missing {', '.join(missing)}); "
                              "delete it to start the run over")
    if missing and int(payload["step"]) < config.steps:
        # only finished runs are kept without their training state (weights, history, RNG; no Adam or sampler)
        raise CheckpointError(f"{path} has no {' or '.join(missing)} state, at step {payload['step']} of "
                              f"{config.steps}: it cannot be resumed; delete {out_dir} to train the run again")
    return payload
