"""``effgen tune --params FILE``: be one worker of chapter 03's Optuna study.

The study lives in its storage (default ``runs/<profile>/03-tuning/optuna.db``), so running
the command again continues it, and running it in several shells, or on several machines
sharing an RDB storage, makes several workers of one study. ``--n-trials`` is the total
number of finished trials the study should hold, not an increment.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from effgen.errors import ParamsError
from effgen.paths import PROFILES, check_profile, project_root, runs_dir

CHAPTER_NOTEBOOK = Path("chapters") / "03-tuning.ipynb"


def read_tuning_params(path: Path) -> dict[str, Any]:
    """The chapter's defaults overlaid with ``path``, checked exactly as the chapter runner checks them.

    Outside a checkout (no chapter notebook) the file is checked against the library's settings.
    """
    from effgen.book.params import declared_parameters, load_params_file, validate

    if not path.is_file():
        raise ParamsError(f"{path}: no such parameters file (try params/quick/03-tuning.yml)")
    values = load_params_file(path)
    notebook = project_root() / CHAPTER_NOTEBOOK
    if not notebook.is_file():
        return values
    declared = declared_parameters(notebook)
    validate(values, declared, path)
    return {**{name: p.default for name, p in declared.items()}, **values}


def _profile_of(path: Path, explicit: str | None) -> str:
    if explicit:
        return check_profile(explicit)
    parent = path.resolve().parent.name
    return parent if parent in PROFILES else "quick"


def _tune(args: argparse.Namespace) -> int:
    from effgen.data.addnist import load_addnist
    from effgen.runtime import describe, pick_device
    from effgen.tuning import (
        BEST_FILE,
        TuningSettings,
        check_space_budget,
        export_best,
        parse_storage,
        pruning_savings,
        run_tuning,
    )
    from effgen.tuning.storage import check_driver

    path = Path(args.params)
    profile = _profile_of(path, args.profile)
    values = read_tuning_params(path)
    for key, value in (("storage", args.storage), ("n_trials", args.n_trials), ("device", args.device),
                       ("study_name", args.study_name)):
        if value is not None:
            values[key] = value
    settings = TuningSettings.from_dict(values, source=str(path))
    # Everything that can be wrong is checked before the data loads or a trial starts.
    spec = parse_storage(settings.storage, profile, settings.heartbeat_interval, settings.grace_period)
    check_driver(spec)
    check_space_budget(settings, source=str(path))
    device = pick_device(settings.device)

    sizes = None
    if settings.addnist_sizes:  # three counts, validated with the settings
        n_train, n_valid, n_test = settings.addnist_sizes
        sizes = (n_train, n_valid, n_test)
    data = load_addnist(settings.addnist_source, seed=settings.seed, sizes=sizes)
    provenance = data.provenance
    note = " (a stand-in for official AddNIST)" if provenance.get("stand_in") else ""
    print(f"data: {provenance.get('dataset')}{note}; device: {describe(device)}")
    print(f"study {settings.resolved_study_name(profile)!r} in {spec.describe()}: "
          f"target {settings.n_trials} finished trials")

    train, valid = data.train, data.valid
    del data  # the study gets the training and validation splits only
    run = run_tuning(settings, train, valid, device, profile)
    study, worker = run.study, run.worker
    savings = pruning_savings(study, settings.steps)
    print(f"this worker ran {worker.trials_run} trials; the study holds {worker.finished_in_study} finished "
          f"({savings['complete']} complete, {savings['pruned']} pruned; pruning saved "
          f"{100 * savings['saved_fraction']:.0f}% of the steps)")
    if savings["complete"] == 0:
        print("no complete trial yet: nothing to export")
        return 0
    best_path = Path(args.best) if args.best else runs_dir(profile, "03-tuning") / BEST_FILE
    export_best(study, settings, best_path)
    best = study.best_trial
    params = ", ".join(f"{k}={v:.4g}" for k, v in best.params.items())
    print(f"best: trial {best.number} (round {best.user_attrs.get('round')}), validation accuracy "
          f"{100 * best.value:.2f}%: {params}")
    print(f"wrote {best_path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune", help="run (or join, or resume) the Optuna study of chapter 03",
        description="Be one worker of the hyper-parameter study: trials are scored on validation "
                    "accuracy and stored in --storage, so re-running resumes the study and running "
                    "the command in several shells makes several workers of it.")
    parser.add_argument("--params", required=True, metavar="FILE",
                        help="chapter 03 parameters file, e.g. params/quick/03-tuning.yml")
    parser.add_argument("--storage", metavar="URL",
                        help="sqlite:///file.db, postgresql://..., journal:///file.log or a path "
                             "(default: the file's storage, else runs/PROFILE/03-tuning/optuna.db)")
    parser.add_argument("--n-trials", type=int, metavar="N",
                        help="total finished trials the study should hold (not an increment)")
    parser.add_argument("--profile", help="profile for the default storage and best.yml, a folder name under "
                                          "params/ (default: from the file's folder)")
    parser.add_argument("--study-name", metavar="NAME", help="default: effgen-03-tuning-PROFILE")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:1, mps ...")
    parser.add_argument("--best", metavar="FILE", help="where to write the best setting "
                                                       "(default: runs/PROFILE/03-tuning/best.yml)")
    parser.set_defaults(func=_tune)
