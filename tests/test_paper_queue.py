"""effgen.book.jobs.queue (`effgen jobs queue`): jobs run in order on a fixed number of workers, after what
they need; the `effgen jobs` commands."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from effgen.book.jobs.queue import Job, paper_jobs, run_queue
from effgen.commands import build_parser, main


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


def test_the_paper_queue_runs_every_job_through_the_effgen_command() -> None:
    queue = paper_jobs("python")
    names = [job.name for job in queue]
    assert len(set(names)) == len(names)
    for job in queue:
        assert job.command[:3] == ["python", "-m", "effgen"], job
        assert all(need in names[:names.index(job.name)] for need in job.needs), job  # needs come first
    commands = {job.name: " ".join(job.command[3:]) for job in queue}
    assert commands["gan-modern"] == "jobs gan modern" and commands["fid-references"] == "jobs fid-references"
    assert commands["04"] == "run 04 --profile paper"
    # the pilots as chapter 06's paper parameters run them, then their winner and its leave-one-out, then 06
    assert commands["pilots"] == "jobs pilots --steps 12500 --n-fid 5000 P0 P1 P2 P3 P4 --reseed 2"
    assert commands["gan-winner"] == "jobs gan winner" and commands["winner-ablation"].endswith("--ablate")
    needs = {job.name: job.needs for job in queue}
    assert needs["gan-winner"] == needs["winner-ablation"] == ["pilots"]
    assert {"gan-winner", "winner-ablation"} <= set(needs["06"])
    parser = build_parser()  # every job's command parses as an effgen command
    for job in queue:
        assert parser.parse_args(job.command[3:]).func


def test_the_jobs_commands_fail_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "queue", "--list"]) == 0
    assert "gan-corrected" in capsys.readouterr().out
    assert main(["jobs", "queue", "--only", "nope"]) == 2
    assert capsys.readouterr().err.strip() == ("effgen: error: unknown job(s) nope; `effgen jobs queue --list` "
                                               "lists them")
    assert main(["jobs", "gan", "nope"]) == 2
    assert "unknown GAN job 'nope'" in capsys.readouterr().err
    assert main(["jobs", "gan", "faithful", "--profile", "No Such"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_pilots_command_is_the_pilots_module(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "pilots", "--list", "P0"]) == 0  # options go to the pilots' job as they are
    assert capsys.readouterr().out.startswith("P0: ")


def test_fid_references_check_lists_each_set_as_missing_cached_or_frozen(monkeypatch: pytest.MonkeyPatch,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from effgen.book.jobs import fid_references as refs

    a, b, c = (refs.ReferenceSet((chapter,), split, 8, 0, 4) for chapter, split in (("05", "train"), ("05", "test"),
                                                                                    ("06", "test")))
    monkeypatch.setattr(refs, "reference_sets", lambda profile: ("cifar10", [a, b, c]))
    monkeypatch.setattr(refs, "still_needed", lambda profile, sets: [a, b])  # 06 is frozen
    monkeypatch.setattr(refs, "missing_sets", lambda profile, every=False: [b])
    assert refs.reference_states("paper") == ("cifar10", [("cached", a), ("missing", b), ("frozen", c)])
    assert main(["jobs", "fid-references", "--check"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "missing  cifar10 test, 8 images, seed 0 (chapter 05)" and lines[2].startswith("frozen   ")
