"""The suspected causes of the modern recipe's shortfall, each set against the runs of chapter 06 that test it.

Every cause has a fix, and a pair of FIDs from runs that differ (mostly) in that fix: pilots against
each other, the winner's pilot against its leave-one-out runs, or the modern recipe against its own
ablation. ``change`` is the FID with the fix minus the FID without it, so a negative change means the
fix helps. A change is read against ``noise``, the largest FID difference between two seeds of one
pilot: a fix helps or hurts only when its change is larger than that. A fix that hurts rules its cause
out, except where the two runs differ in more than the fix (``if_worse`` then says what it shows).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

HELPS, HURTS, CANNOT_TELL, UNTESTED = "helps", "hurts", "cannot tell", "not tested"


@dataclass(frozen=True)
class CauseTest:
    cause: str
    fix: str
    tested_by: str
    with_fix: float | None
    without_fix: float | None
    if_worse: str = "ruled out as the cause"
    pilot_length: bool = True  # False: the runs are not pilots, whose seed noise is then only a guide

    @property
    def change(self) -> float | None:
        if self.with_fix is None or self.without_fix is None:
            return None
        return self.with_fix - self.without_fix

    def outcome(self, noise: float | None) -> str:
        """HELPS or HURTS where the change exceeds ``noise``, else CANNOT_TELL; UNTESTED without both runs."""
        change = self.change
        if change is None:
            return UNTESTED
        if noise is None or not math.isfinite(noise) or abs(change) <= noise:
            return CANNOT_TELL
        return HELPS if change < 0 else HURTS

    def reading(self, noise: float | None) -> str:
        """The outcome as a phrase for the book's table."""
        outcome, change = self.outcome(noise), self.change
        if outcome == UNTESTED or change is None:
            return "not tested by this build's runs"
        size = f"{abs(change):.1f} FID"
        noise_text = ""
        if noise is not None and math.isfinite(noise):
            noise_text = f"seed noise ({noise:.1f}{'' if self.pilot_length else ', measured on the pilots'})"
        if outcome == HELPS:
            return f"helps by {size}, more than {noise_text}"
        if outcome == HURTS:
            return f"makes FID worse by {size}: {self.if_worse}"
        if noise is None or not math.isfinite(noise):
            return f"{size} {'better' if change < 0 else 'worse'}, one seed: cannot tell"
        return f"{size} {'better' if change < 0 else 'worse'}, within {noise_text}: cannot tell"


def _mean(values: Mapping[str, float], key: str) -> float | None:
    value = values.get(key)
    return None if value is None or not math.isfinite(value) else float(value)


def cause_tests(pilot_fids: Mapping[str, float], winner: str | None, winner_fid: float | None,
                winner_removals: Mapping[str, float], modern_fids: Mapping[str, float],
                ablation_steps: int) -> list[CauseTest]:
    """The five causes and their tests.

    ``pilot_fids``: pilot name -> mean FID over its seeds; ``winner_fid``: the winner's pilot (first
    seed); ``winner_removals``: piece (``decay``, ``ema``, ...) -> FID without it minus ``winner_fid``;
    ``modern_fids``: the modern recipe's ablation, label (``modern``, ``no diffaugment``, ...) -> FID.
    """
    def removed(piece: str) -> float | None:
        return None if winner_fid is None or piece not in winner_removals else winner_fid + winner_removals[piece]

    return [
        CauseTest("a four-layer spectrally normalised D too weak to separate real from generated images",
                  "a deeper SN D (the SNGAN standard CNN, P3)",
                  "P3 against P2 (the same G, schedule and EMA; P2 keeps the DCGAN D with BatchNorm and its loss)",
                  _mean(pilot_fids, "P3"), _mean(pilot_fids, "P2"),
                  if_worse="even a deeper SN D trails the BatchNorm D, so depth alone does not rescue it"),
        CauseTest("no learning-rate decay", "rates decayed linearly to 0",
                  f"{winner or 'the winner'}'s pilot with and without its decay",
                  winner_fid if "decay" in winner_removals else None, removed("decay")),
        CauseTest("too few of the parameters in G, which FID measures", "widths moved from D to G (P2)",
                  "P2 against P1, which differ only in the widths",
                  _mean(pilot_fids, "P2"), _mean(pilot_fids, "P1")),
        CauseTest("DiffAugment, a cure for a D that over-fits, on a D that under-fits", "no DiffAugment",
                  f"the modern recipe with and without DiffAugment at {ablation_steps:,} steps",
                  _mean(modern_fids, "no diffaugment"), _mean(modern_fids, "modern"), pilot_length=False),
        CauseTest("an EMA generator whose BatchNorm statistics lag behind its weights",
                  "EMA with BatchNorm re-estimated before sampling",
                  f"{winner or 'the winner'}'s EMA generator against its raw weights, one run",
                  winner_fid if "ema" in winner_removals else None, removed("ema")),
    ]
