"""bench/paper/work_queue.py: jobs run in order on a fixed number of workers, after what they need."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from work_queue import Job, run_queue


def script(tmp_path: Path, name: str, code: int = 0) -> list[str]:
    """A job that appends its name to order.txt when it starts and when it ends, then exits ``code``."""
    order = tmp_path / "order.txt"
    code_text = (f"import time; open({str(order)!r}, 'a').write('+{name} '); time.sleep(0.6); "
                 f"open({str(order)!r}, 'a').write('-{name} '); raise SystemExit({code})")
    return [sys.executable, "-c", code_text]


def test_jobs_wait_for_what_they_need_and_a_failure_skips_its_dependants(tmp_path: Path) -> None:
    queue = [Job("a", script(tmp_path, "a")), Job("b", script(tmp_path, "b", code=3)),
             Job("c", script(tmp_path, "c"), needs=["a"]), Job("d", script(tmp_path, "d"), needs=["b"]),
             Job("e", script(tmp_path, "e"), needs=["done-before"])]
    done, failed = run_queue(queue, 2, {"done-before"}, tmp_path, dict(os.environ), tmp_path, poll_seconds=0.05)
    assert done == {"done-before", "a", "c", "e"} and failed == {"b", "d"}
    events = (tmp_path / "order.txt").read_text().split()
    assert events.index("-a") < events.index("+c")  # c needed a
    assert events[:2] in (["+a", "+b"], ["+b", "+a"])  # two workers: a and b together
    assert "+d" not in events
    assert (tmp_path / "b.log").read_text().startswith("\n==== ")


def test_a_job_whose_need_is_not_queued_does_not_hang(tmp_path: Path) -> None:
    _, failed = run_queue([Job("x", script(tmp_path, "x"), needs=["never"])], 1, set(), tmp_path,
                          dict(os.environ), tmp_path, poll_seconds=0.05)
    assert failed == {"x"} and not (tmp_path / "order.txt").exists()


def test_a_job_that_runs_alone_gets_every_worker_and_others_one_thread(tmp_path: Path) -> None:
    def threads_job(name: str) -> list[str]:
        out = tmp_path / f"{name}.threads"
        code = f"import os, time; time.sleep(0.3); open({str(out)!r}, 'w').write(os.environ['OMP_NUM_THREADS'])"
        return [sys.executable, "-c", code]

    queue = [Job("a", threads_job("a")), Job("b", threads_job("b")), Job("c", threads_job("c"), needs=["a", "b"]),
             Job("d", threads_job("d"), needs=["c"])]
    done, failed = run_queue(queue, 2, set(), tmp_path, dict(os.environ), tmp_path, poll_seconds=0.05)
    assert not failed and done == {"a", "b", "c", "d"}
    threads = {name: (tmp_path / f"{name}.threads").read_text() for name in "abcd"}
    assert threads == {"a": "1", "b": "1", "c": "2", "d": "2"}  # a and b side by side; c, then d, alone
