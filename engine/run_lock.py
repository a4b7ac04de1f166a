"""A run's claim on its folder: while a training run lives, it alone writes there.

The claim is an exclusive `flock` on `<run folder>/.run.lock`, a file that records who holds it
(pid, host, start time), so that a run refused the folder can name the holder. The kernel drops
the lock when its process ends, however it ends (an error, Ctrl-C, SIGTERM, `kill -9`), so a
record whose lock nobody holds was left by a run that is gone: the next run takes the folder
over and says so in its log. Taking a folder over also removes the temporary files its dead
writers left in the middle of an atomic write (a checkpoint's `.last.pth.tmp-<pid>` can be
gigabytes). Under torchrun only rank 0 writes files, so only rank 0 claims.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from utils.distributed import broadcast_from_main
from utils.errors import UserError

LOCK_FILE = ".run.lock"
# A claim that finds the lock taken tries again for a moment before it refuses: `live_holder`
# takes the lock shared for an instant to see whether anyone holds it, and a run that releases
# the folder removes the file it locked (claiming then starts over on the new file).
CLAIM_ATTEMPTS, CLAIM_RETRY_S = 10, 0.02
# A holder writes its record right after it locks; a refused run waits this long to read it.
RECORD_WAIT_S = 1.0
# The temporary file of an atomic write ends in .tmp-<pid of the writer> (utils/checkpoint_io.py,
# engine/summary.py, engine/tracking.py, ...).
TEMP_FILE = re.compile(r"\.tmp-(\d+)$")

# The descriptors of the claims this process holds. A child forked from it (a DataLoader worker)
# closes its copies at once, so that a claim lives exactly as long as the process that took it:
# workers that linger after `kill -9` of the run must not keep the folder locked.
_claimed_fds: set[int] = set()


def _close_claims_in_forked_child() -> None:
    for fd in _claimed_fds:
        os.close(fd)
    _claimed_fds.clear()


os.register_at_fork(after_in_child=_close_claims_in_forked_child)


@dataclass(frozen=True)
class Holder:
    """The process that holds (or held) a run folder's claim, as its lock file records it."""
    pid: int
    host: str
    started: str  # local time the claim began, e.g. 2025-01-31 14:05:09

    @classmethod
    def this_process(cls) -> "Holder":
        return cls(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S"))

    @classmethod
    def from_record(cls, text: str) -> "Holder | None":
        """The holder a lock file's text records, or None if it records none (empty, or not ours)."""
        try:
            record = json.loads(text)
            return cls(int(record["pid"]), str(record["host"]), str(record["started"]))
        except (ValueError, TypeError, KeyError):
            return None

    def record(self) -> str:
        return json.dumps({"pid": self.pid, "host": self.host, "started": self.started}) + "\n"

    def __str__(self) -> str:
        if self == UNNAMED_HOLDER:
            return "a process that has not recorded its pid and host"
        return f"pid {self.pid} on host {self.host} (since {self.started})"


# Who holds a lock whose file records no one (a holder that has not written its record yet).
UNNAMED_HOLDER = Holder(0, "", "")


class RunClaim:
    """This process's claim on `run_dir`, held until `release()` (or the end of a `with` block).

    `notes` say what taking the folder over found: the record of a holder that ended without
    releasing it, and each temporary file of a dead writer that was removed; for the run's log.
    """

    def __init__(self, run_dir: str, fd: int, created: list[str], notes: list[str]):
        self.run_dir, self.path = run_dir, os.path.join(run_dir, LOCK_FILE)
        self.notes = notes
        self._fd: int | None = fd
        self._owner = os.getpid()  # a forked child has a copy of this object, but not the claim
        self._created = created  # the folders the claim made, deepest first
        _claimed_fds.add(fd)

    def release(self) -> None:
        """Remove the lock file, give up the lock, and remove the folders the claim made if
        nothing was written into them (a run refused before it wrote anything leaves no trace)."""
        if self._fd is None or os.getpid() != self._owner:
            return
        # Removed while still locked, so that no one takes over a record that is about to go;
        # a claimer that opened this file before it went sees that and starts over.
        try:
            os.remove(self.path)
        except FileNotFoundError:
            pass
        _claimed_fds.discard(self._fd)
        os.close(self._fd)
        self._fd = None
        for folder in self._created:
            try:
                os.rmdir(folder)
            except OSError:  # not empty: the run wrote there (or another run now claims it)
                break

    def __enter__(self) -> "RunClaim":
        return self

    def __exit__(self, *exc_info) -> None:
        self.release()


def claim_run_dir(run_dir: str) -> RunClaim:
    """Claim `run_dir` (created if missing) for this process, before the run writes anything there.

    A folder held by a live process is refused in one UserError line that names the holder. A
    claim left by a process that is gone is taken over, and the temporary files of writers that
    are gone are removed; the returned claim's `notes` say so.
    """
    created = missing_folders(run_dir)
    path = os.path.join(run_dir, LOCK_FILE)
    for _ in range(CLAIM_ATTEMPTS):
        os.makedirs(run_dir, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except FileNotFoundError:  # a run that was releasing the folder removed it just now
            continue
        try:
            if try_lock(fd, fcntl.LOCK_EX, path) and is_the_file_at(fd, path):
                return RunClaim(run_dir, fd, created, record_holder_and_clear_leftovers(fd, run_dir))
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        time.sleep(CLAIM_RETRY_S)
    holder = read_holder(path, wait_s=RECORD_WAIT_S) or UNNAMED_HOLDER
    raise UserError(f"run folder {run_dir} is in use by {holder}, whose claim is {path}; "
                    f"wait for that run to end, or start another with a different --tag")


@contextmanager
def claimed_by_main(run_dir: str, is_main: bool) -> Iterator[list[str]]:
    """Rank 0 (`is_main`) holds the claim on `run_dir` while the block runs and gets its notes;
    the other ranks of a torchrun group get no notes. If the folder is held, every rank raises
    the same UserError."""
    claim, error = None, None
    if is_main:
        try:
            claim = claim_run_dir(run_dir)
        except UserError as e:
            error = str(e)
    error = broadcast_from_main(error)
    if error:
        raise UserError(error)
    try:
        yield claim.notes if claim is not None else []
    finally:
        if claim is not None:
            claim.release()


def live_holder(run_dir: str) -> Holder | None:
    """The live process that holds `run_dir`'s claim, or None when none does (a record left by
    a process that is gone counts as none). Takes the lock shared for an instant to find out."""
    path = os.path.join(run_dir, LOCK_FILE)
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if try_lock(fd, fcntl.LOCK_SH, path):
            return None
    finally:
        os.close(fd)  # which also gives up a shared lock taken above
    return read_holder(path, wait_s=RECORD_WAIT_S) or UNNAMED_HOLDER


def try_lock(fd: int, kind: int, path: str) -> bool:
    """flock `fd` without waiting: True if locked, False if another process holds it."""
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as e:  # ENOLCK, EOPNOTSUPP: a file system without locks
        raise UserError(f"cannot lock {path} ({e.strerror}), which keeps other runs out of the run folder; put "
                        f"OUTPUT on a file system that supports file locks (a local disk, or NFS with locking)") \
            from None


def is_the_file_at(fd: int, path: str) -> bool:
    """Whether `fd` is still the file at `path` (a releasing run removes the file it locked)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def read_holder(path: str, wait_s: float = 0.0) -> Holder | None:
    """The holder `path` records, waiting up to `wait_s` for a holder that has just locked it to
    write its record; None if it records none."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                holder = Holder.from_record(f.read())
        except FileNotFoundError:
            holder = None
        if holder is not None or time.monotonic() >= deadline:
            return holder
        time.sleep(CLAIM_RETRY_S)


def record_holder_and_clear_leftovers(fd: int, run_dir: str) -> list[str]:
    """Write this process's record into the locked file `fd`; returns the notes on what a holder
    that is gone left behind (its record, its writers' temporary files)."""
    previous = os.pread(fd, 4096, 0).decode("utf-8", errors="replace")
    notes = []
    if previous.strip():
        left_by = Holder.from_record(previous)
        notes.append(f"took over run folder {run_dir} from {left_by}, which ended without releasing it"
                     if left_by else f"took over run folder {run_dir}, whose {LOCK_FILE} held an unreadable record")
    os.ftruncate(fd, 0)
    os.pwrite(fd, Holder.this_process().record().encode("utf-8"), 0)
    os.fsync(fd)
    return notes + remove_dead_writers_temp_files(run_dir)


def remove_dead_writers_temp_files(run_dir: str) -> list[str]:
    """Remove the temporary files (`*.tmp-<pid>`) in `run_dir` whose writing process is gone from
    this host, as `kill -9` in the middle of a checkpoint write leaves them; a live writer's
    file stays. Returns one note per file removed."""
    notes = []
    for name in sorted(os.listdir(run_dir)):
        match = TEMP_FILE.search(name)
        path = os.path.join(run_dir, name)
        if match is None or not os.path.isfile(path) or process_is_alive(int(match.group(1))):
            continue
        size = os.path.getsize(path)
        os.remove(path)
        notes.append(f"removed {path} ({size / 2 ** 20:.1f} MiB), left by pid {match.group(1)}, which died "
                     f"in the middle of writing it")
    return notes


def process_is_alive(pid: int) -> bool:
    """Whether a process `pid` runs on this host (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def missing_folders(folder: str) -> list[str]:
    """The folders of `folder`'s path (itself included) that do not exist yet, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing
