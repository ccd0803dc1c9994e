"""Chapter 06's generator pilots, run ahead of the chapter into its run folder (``effgen jobs pilots``).

Which generator recipe earns a full-length run is decided at a quarter of the budget
(``effgen.gan.pilots``); the winner is then taken apart (``effgen.gan.winner``). A run resumes
from its checkpoint and a scored run is not scored again, so the same command continues after an
interruption::

    effgen jobs pilots --reference-only       # the real-image statistics, once
    effgen jobs pilots P0 P1 P2 P3 P4 --threads 1
    effgen jobs pilots P3 P2 --seed 1         # a second seed for these two
    effgen jobs pilots --reseed 2             # all five, then the best two with the next seed
    effgen jobs pilots --ablate               # the winner taken apart
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from effgen.book.freeze import thaw
from effgen.book.jobs.values import BEYOND
from effgen.data import gan_dataset
from effgen.gan.pilots import (
    N_FID,
    PILOT_NAMES,
    PILOT_STEPS,
    default_out,
    pilot_configs,
    pilot_folder,
    pilot_table,
    reference_stats,
    run_pilot,
)
from effgen.gan.winner import scored_winner, winner_ablation
from effgen.paths import project_root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="effgen jobs pilots",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("pilots", nargs="*",
                        help=f"which to run (default all: {' '.join(PILOT_NAMES)})")
    parser.add_argument("--out", type=Path, default=None,
                        help="parent of the run folders (default: chapter 06's, paper profile)")
    parser.add_argument("--steps", type=int, default=PILOT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-fid", type=int, default=N_FID, help="generated images per FID")
    parser.add_argument("--raw", action="store_true", help="also score an EMA run's raw generator")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dataset", default="cifar100",
                        help="asked for as the chapters ask (default cifar100; its stand-in here "
                             "is cifar10)")
    parser.add_argument("--reference-only", action="store_true",
                        help="compute (or find) the test split's statistics and stop")
    parser.add_argument("--list", action="store_true",
                        help="print the pilots' configs and run folders")
    parser.add_argument("--reseed", type=int, default=0, metavar="N",
                        help="then run the best N of them again with the next seed (chapter 06's pilot_reseeds)")
    parser.add_argument("--ablate", action="store_true",
                        help="run each named pilot (none named: the winner of the scored pilots) with each piece "
                             "of its recipe removed in turn, and score its raw generator (effgen.gan.winner)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or default_out()
    if args.out is None and not args.list:  # chapter 06's folder: a fresh clone has its pilots in _freeze/ only
        thawed = thaw(project_root(), "paper", BEYOND)
        if thawed:
            print(f"thawed {thawed} file(s) of {BEYOND} from _freeze/paper/", flush=True)
    configs = pilot_configs(args.steps, args.seed)
    unknown = sorted(set(args.pilots) - set(configs))
    if unknown:
        parser.error(f"unknown pilot(s) {', '.join(unknown)}; choose from {', '.join(configs)}")
    chosen = args.pilots or list(configs)
    raw = set(chosen) if args.raw else set()
    if args.ablate:
        if not args.pilots:
            winner = scored_winner(out, PILOT_NAMES, args.steps)
            if winner is None:
                parser.error(f"no scored pilot under {out} beat the control (P0): name the pilots to take apart")
            chosen = [winner]
        raw = set(chosen)  # the leave-one-out's "no EMA" row: the pilot's own raw generator
        configs = {**{name: configs[name] for name in chosen},
                   **{name: config for pilot in chosen for name, config in winner_ablation(pilot, configs[pilot]).items()}}
        chosen = list(configs)
    if args.list:
        for name in chosen:
            print(f"{name}: {pilot_folder(out, name, configs[name])}\n  {configs[name]}")
        return 0
    if args.reference_only:
        dataset = gan_dataset(args.dataset, "train", allow_stand_in=True).provenance["dataset"]
        stats = reference_stats(dataset, args.device)
        print(f"reference: {stats.n:,} {dataset} test images", flush=True)
        return 0
    data = gan_dataset(args.dataset, "train", allow_stand_in=True)
    results = []
    for name in chosen:
        results.append(run_pilot(name, configs[name], out, data, args.device, args.n_fid, name in raw))
        print(json.dumps(results[-1]), flush=True)
    # as chapter 06 picks them: the best by FID at this seed, run again with the next
    next_seed = pilot_configs(args.steps, args.seed + 1)
    for result in sorted(results, key=lambda r: r["fid"])[:args.reseed]:
        name = result["pilot"]
        print(json.dumps(run_pilot(name, next_seed[name], out, data, args.device, args.n_fid, name in raw)), flush=True)
    print(pilot_table(out).to_string(index=False))
    return 0
