"""A run's claim on its folder: one live holder at a time, named when it refuses another, taken
over from a holder that is gone together with its writers' leftover temporary files, and no
trace left once released. The holders are real processes (forked), killed as a user would."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import socket
import time

import pytest

from engine.run_lock import (LOCK_FILE, Holder, claim_run_dir, claimed_by_main, live_holder, process_is_alive,
                             remove_dead_writers_temp_files)
from utils.errors import UserError

FORK = multiprocessing.get_context("fork")


def hold_claim(run_dir: str, claimed, done) -> None:
    """In a child process: claim `run_dir`, say so, and hold it until `done` is set."""
    claim = claim_run_dir(run_dir)
    claimed.set()
    done.wait(60)
    claim.release()


def start_holder(run_dir) -> tuple[multiprocessing.Process, object]:
    """A live process holding `run_dir`'s claim, and the event that makes it release and exit."""
    claimed, done = FORK.Event(), FORK.Event()
    holder = FORK.Process(target=hold_claim, args=(str(run_dir), claimed, done), daemon=True)
    holder.start()
    assert claimed.wait(30)
    return holder, done


def kill_9(process: multiprocessing.Process) -> None:
    os.kill(process.pid, signal.SIGKILL)
    # Reaped, so that its pid is gone. Without a timeout join waits for the pid itself, not for
    # a pipe that a process it forked may still hold open.
    process.join()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = FORK.Process(target=int)
    child.start()
    child.join(30)
    return child.pid


def test_a_claim_records_pid_host_and_start_and_its_release_leaves_nothing(tmp_path):
    run_dir = tmp_path / "out" / "lenet_digits" / "run"
    claim = claim_run_dir(str(run_dir))
    record = json.loads((run_dir / LOCK_FILE).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    assert time.strptime(record["started"], "%Y-%m-%d %H:%M:%S")
    assert claim.notes == []
    claim.release()
    assert not (tmp_path / "out").exists()  # the folders it made, empty, are gone again


def test_releasing_keeps_a_folder_that_existed_or_that_the_run_wrote_into(tmp_path):
    existing = tmp_path / "existing"
    existing.mkdir()
    with claim_run_dir(str(existing)):
        pass
    assert existing.is_dir() and os.listdir(existing) == []
    made = tmp_path / "made"
    with claim_run_dir(str(made)):
        (made / "log.txt").write_text("epoch 1\n")
    assert os.listdir(made) == ["log.txt"]


def test_a_folder_held_by_a_live_process_is_refused_naming_its_pid_and_host_and_left_as_it_was(tmp_path):
    holder, done = start_holder(tmp_path / "run")
    try:
        before = (tmp_path / "run" / LOCK_FILE).read_bytes()
        with pytest.raises(UserError) as refused:
            claim_run_dir(str(tmp_path / "run"))
        message = str(refused.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and "\n" not in message
        assert (tmp_path / "run" / LOCK_FILE).read_bytes() == before
        assert live_holder(str(tmp_path / "run")).pid == holder.pid
    finally:
        done.set()
        holder.join(30)
    assert holder.exitcode == 0
    assert live_holder(str(tmp_path / "run")) is None
    with claim_run_dir(str(tmp_path / "run")) as claim:  # released: free again, nothing to take over
        assert claim.notes == []


def test_a_claim_left_by_a_process_killed_with_sigkill_is_taken_over_with_a_note(tmp_path):
    holder, _ = start_holder(tmp_path / "run")
    kill_9(holder)
    assert live_holder(str(tmp_path / "run")) is None
    with claim_run_dir(str(tmp_path / "run")) as claim:
        assert len(claim.notes) == 1 and f"pid {holder.pid}" in claim.notes[0]
        assert json.loads((tmp_path / "run" / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run" / LOCK_FILE).exists()


def hold_claim_with_a_worker(run_dir: str, worker_pids, done) -> None:
    """In a child process: claim `run_dir`, then fork a worker, as a DataLoader does."""
    claim_run_dir(run_dir)
    worker = os.fork()
    if worker == 0:
        time.sleep(30)
        os._exit(0)
    worker_pids.put(worker)
    done.wait(60)


def test_the_workers_a_run_forked_do_not_keep_its_claim_once_it_is_killed(tmp_path):
    worker_pids, done = FORK.Queue(), FORK.Event()
    run = FORK.Process(target=hold_claim_with_a_worker, args=(str(tmp_path / "run"), worker_pids, done))
    run.start()
    worker = worker_pids.get(timeout=30)
    try:
        kill_9(run)
        assert process_is_alive(worker)
        with claim_run_dir(str(tmp_path / "run")) as claim:
            assert f"pid {run.pid}" in claim.notes[0]
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_lock_file_naming_a_dead_pid_is_taken_over_and_an_unreadable_one_too(tmp_path):
    pid = dead_pid()
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / LOCK_FILE).write_text(Holder(pid, socket.gethostname(), "2020-01-01 00:00:00").record())
    with claim_run_dir(str(tmp_path / "run")) as claim:
        assert [f"pid {pid} on host {socket.gethostname()}" in note for note in claim.notes] == [True]
    (tmp_path / "run" / LOCK_FILE).write_text("garbage")
    with claim_run_dir(str(tmp_path / "run")) as claim:
        assert len(claim.notes) == 1 and "unreadable" in claim.notes[0]


def race_for_claim(run_dir: str, start, results, done) -> None:
    start.wait(30)
    try:
        claim = claim_run_dir(run_dir)
    except UserError as e:
        results.put(("refused", str(e)))
        return
    results.put(("claimed", os.getpid()))
    done.wait(60)
    claim.release()


def test_of_processes_claiming_one_folder_at_once_exactly_one_wins_and_the_others_name_it(tmp_path):
    start, done, results = FORK.Event(), FORK.Event(), FORK.Queue()
    racers = [FORK.Process(target=race_for_claim, args=(str(tmp_path / "run"), start, results, done), daemon=True)
              for _ in range(4)]
    for racer in racers:
        racer.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in racers]
    done.set()
    for racer in racers:
        racer.join(30)
    winners = [pid for kind, pid in outcomes if kind == "claimed"]
    assert len(winners) == 1
    assert all(f"pid {winners[0]}" in message for kind, message in outcomes if kind == "refused")


def write_temp_file(run_dir, name: str, size: int = 1000) -> None:
    (run_dir / name).write_bytes(b"\0" * size)


def test_taking_over_removes_the_temp_files_of_dead_writers_and_keeps_a_live_writers(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    gone, alive = dead_pid(), start_holder(tmp_path / "elsewhere")
    write_temp_file(run_dir, f".last.pth.tmp-{gone}", 3 * 2 ** 20)
    write_temp_file(run_dir, f"summary.json.tmp-{gone}")
    write_temp_file(run_dir, f".best.pth.tmp-{alive[0].pid}")
    write_temp_file(run_dir, "last.pth")
    write_temp_file(run_dir, "notes.tmp-draft")
    try:
        with claim_run_dir(str(run_dir)) as claim:
            assert sorted(os.listdir(run_dir)) == sorted([LOCK_FILE, f".best.pth.tmp-{alive[0].pid}", "last.pth",
                                                          "notes.tmp-draft"])
            assert len(claim.notes) == 2
            assert any(f".last.pth.tmp-{gone}" in note and "3.0 MiB" in note for note in claim.notes)
            assert any(f"summary.json.tmp-{gone}" in note for note in claim.notes)
    finally:
        alive[1].set()
        alive[0].join(30)


def test_a_temp_file_of_this_very_process_is_its_own_write_and_stays(tmp_path):
    write_temp_file(tmp_path, f".last.pth.tmp-{os.getpid()}")
    assert remove_dead_writers_temp_files(str(tmp_path)) == []
    assert os.listdir(tmp_path) == [f".last.pth.tmp-{os.getpid()}"]


@pytest.mark.parametrize("ending", [UserError("bad data"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_run_that_ends_in_an_error_or_ctrl_c_releases_its_claim(tmp_path, ending):
    run_dir = tmp_path / "run"
    with pytest.raises(type(ending)):
        with claimed_by_main(str(run_dir), is_main=True):
            assert live_holder(str(run_dir)).pid == os.getpid()
            raise ending
    assert live_holder(str(run_dir)) is None and not run_dir.exists()


def test_only_rank_0_claims(tmp_path):
    with claimed_by_main(str(tmp_path / "run"), is_main=False) as notes:
        assert notes == [] and not (tmp_path / "run").exists()
