"""InMemoryBatches: seeded shuffles, drop-last, an endless cycle, and exact resume."""
from __future__ import annotations

import pytest
import torch

from effgen.data import InMemoryBatches


def _rows(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.arange(n, dtype=torch.float32).repeat_interleave(4).reshape(n, 4)
    return x, torch.arange(n)


def test_each_epoch_is_a_permutation_with_the_tail_dropped() -> None:
    x, y = _rows(10)
    batches = InMemoryBatches(x, y, batch_size=3, seed=0)
    assert batches.batches_per_epoch == 3
    for _ in range(4):
        seen = torch.cat([batches.next()[1] for _ in range(3)])
        assert len(seen) == 9 and len(set(seen.tolist())) == 9  # no repeats inside an epoch
    assert batches.epoch == 3


def test_rows_stay_paired_and_batches_are_full() -> None:
    x, y = _rows(10)
    batches = InMemoryBatches(x, y, batch_size=4, seed=1)
    for _ in range(7):
        xb, yb = batches.next()
        assert xb.shape == (4, 4) and torch.equal(xb[:, 0], yb.float())


def test_seeded_and_different_across_seeds_and_epochs() -> None:
    x, y = _rows(50)
    def first_epochs(seed: int) -> list[list[int]]:
        batches = InMemoryBatches(x, y, batch_size=10, seed=seed)
        return [batches.next()[1].tolist() for _ in range(10)]
    a, b, c = first_epochs(0), first_epochs(0), first_epochs(1)
    assert a == b and a != c
    assert sorted(i for batch in a[:5] for i in batch) == list(range(50)) and a[:5] != a[5:]  # reshuffled each epoch


def test_unshuffled_walks_stored_order() -> None:
    x, y = _rows(7)
    batches = InMemoryBatches(x, y, batch_size=3, shuffle=False)
    assert [batches.next()[1].tolist() for _ in range(3)] == [[0, 1, 2], [3, 4, 5], [0, 1, 2]]


def test_keep_last_gives_a_short_final_batch() -> None:
    x, y = _rows(7)
    batches = InMemoryBatches(x, y, batch_size=3, shuffle=False, drop_last=False)
    assert [len(batches.next()[1]) for _ in range(4)] == [3, 3, 1, 3]


def test_resume_continues_with_the_same_batches(tmp_path) -> None:
    x, y = _rows(23)
    straight = InMemoryBatches(x, y, batch_size=5, seed=4)
    expected = [straight.next()[1].tolist() for _ in range(13)]
    first = InMemoryBatches(x, y, batch_size=5, seed=4)
    for _ in range(6):
        first.next()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = InMemoryBatches(x, y, batch_size=5, seed=999)
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    assert [resumed.next()[1].tolist() for _ in range(7)] == expected[6:]


def test_bad_arguments() -> None:
    x, y = _rows(5)
    with pytest.raises(ValueError):
        InMemoryBatches(x, y[:4], batch_size=2)
    with pytest.raises(ValueError):
        InMemoryBatches(x, y, batch_size=6)
    with pytest.raises(ValueError):
        InMemoryBatches(batch_size=2)
