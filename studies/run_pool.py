"""Many runs of main.py, each in a process of its own, up to one at a time per slot: a GPU (the run
sees only that one, through CUDA_VISIBLE_DEVICES) or, on a machine without GPUs, one of N CPU
processes. scripts/sweep.py starts, resumes, pins and collects its runs here.

A point is skipped when its run finished before, resumed (MODEL.RESUME auto) when it began, and
started otherwise. A point whose folder another live process holds (a second sweep on the same
folder) is left to it, and taken up once it lets go: read when it finished, else resumed. A
failing run does not stop the others. Ctrl-C stops them all: each gets SIGTERM (a terminal's
Ctrl-C may have reached it already; a second SIGINT would kill it unsaved), saves last.pth where it
stands, and the pool raises KeyboardInterrupt once every run has exited.

With more than one slot, a run's console goes to console.txt in its own folder (its log.txt
holds the same lines, and the errors of a run that fails before it logs), and the pool prints one
line as each run starts and ends, under a bar over the runs.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import IO, Callable, Iterable, Iterator, Sequence, Sized

from tqdm import tqdm

from engine.run_dir import is_run_folder
from engine.run_lock import live_holder
from engine.summary import read_summary
from studies.compare import RunRecord, load_run
from utils.errors import UserError

MAIN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "main.py")
CONSOLE_FILE = "console.txt"
# How often the pool looks at its runs and at the folders other processes hold.
POLL_S = 0.2


@dataclass
class RunPoint:
    """One run of the pool: its label in the progress lines, its folder, main.py's argv and its
    flat config (the record of a run that fails before it writes config.yaml)."""
    label: str
    run_dir: str
    argv: list[str]
    config: dict


@dataclass(frozen=True)
class Slot:
    """Where a run goes: `name` for the progress lines, and the CUDA_VISIBLE_DEVICES its runs see
    (None: this process's own)."""
    name: str
    visible_devices: str | None = None


def cuda_device_count() -> int:
    import torch  # only when --devices auto asks: the pool itself needs no torch
    return torch.cuda.device_count()


def parse_slots(devices: str | None, parallel: int | None,
                device_count: Callable[[], int] = cuda_device_count) -> list[Slot]:
    """The slots of `--devices` (auto: every visible GPU, else `parallel` CPU processes, else one;
    or a list such as cuda:0,cuda:2 or 0,2) or `--parallel N` (N processes, on the device each
    run's config names); one slot when neither is given. UserError for a device that is no CUDA
    device or is named twice, for --parallel below 1, and for both flags at once."""
    if devices is not None and parallel is not None and devices != "auto":
        raise UserError("--devices and --parallel both say how many runs go at once; give one (--devices runs one "
                        "per GPU, --parallel N runs N processes)")
    if parallel is not None and parallel < 1:
        raise UserError(f"--parallel takes 1 or more runs at once; got {parallel}")
    if devices is None:
        return [Slot(f"process {number}") for number in range(1, (parallel or 1) + 1)]
    if devices == "auto":
        count = device_count()
        if count == 0:
            return parse_slots(None, parallel, device_count)
        return [Slot(f"cuda:{index}", str(index)) for index in range(count)]
    slots = []
    for item in (part.strip() for part in devices.split(",")):
        match = re.fullmatch(r"(?:cuda:)?(\d+)", item)
        if match is None:
            raise UserError(f"--devices {devices}: {item!r} is not a CUDA device; give cuda:0,cuda:1,... (or 0,1,...) "
                            f"or auto")
        if match.group(1) in [slot.visible_devices for slot in slots]:
            raise UserError(f"--devices {devices} names cuda:{match.group(1)} twice; give each GPU once")
        slots.append(Slot(f"cuda:{match.group(1)}", match.group(1)))
    return slots


def main_argv(cfg_file: str, flags: dict[str, object], opts: Sequence[str]) -> list[str]:
    """main.py's command line: --cfg `cfg_file`, the `flags` that hold a value, then --opts."""
    given = [item for flag, value in flags.items() if value is not None for item in (flag, str(value))]
    return ["--cfg", cfg_file, *given, "--opts", *opts]


def run_opts(group: str, opts: Sequence[str], values: dict[str, str], output: str, tag: str) -> list[str]:
    """The --opts of one run of a sweep or search: its W&B group, the command's `opts`, the run's
    own `values` (KEY: text), then where it lives, OUTPUT and TAG."""
    pairs = [item for key, value in values.items() for item in (key, value)]
    # Where the run lives comes last, so that no --opts can move it out of the sweep; repr()
    # keeps the texts from being read as numbers.
    return ["WANDB.GROUP", repr(group), *opts, *pairs, "OUTPUT", repr(output), "TAG", repr(tag)]


def start_run_process(command: list[str], env: dict[str, str], console: IO | None) -> subprocess.Popen:
    """main.py in a process of its own, its console to `console` (None: this one's)."""
    return subprocess.Popen(command, env=env, stdout=console, stderr=subprocess.STDOUT if console else None)


@dataclass
class Running:
    """A run in flight: its point's index, process, console file and start time."""
    index: int
    process: subprocess.Popen
    console: IO | None
    started: float
    stopping: bool = False  # asked to stop by the pool's watch


class PointSource:
    """The points of a pool: a list, or a generator drawn from one point at a time as slots free
    up. `points` holds those drawn so far, by index; `waiting` the indices not yet started."""

    def __init__(self, points: Iterable[RunPoint]):
        self.iterator: Iterator[RunPoint] | None = iter(points)
        self.points: list[RunPoint] = []
        self.waiting: list[int] = []

    def draw(self) -> bool:
        """Draw the next point into `waiting`; False when there is none."""
        if self.iterator is None:
            return False
        point = next(self.iterator, None)
        if point is None:
            self.iterator = None
            return False
        self.points.append(point)
        self.waiting.append(len(self.points) - 1)
        return True

    def more(self) -> bool:
        """Whether points may still come: waiting ones, or a source not yet drawn dry."""
        return bool(self.waiting) or self.iterator is not None


class RunPool:
    """Runs points in `slots`, up to one run per slot at a time; `run` returns their records."""

    def __init__(self, slots: Sequence[Slot], out: IO | None = None):
        self.slots = list(slots)
        self.capture_console = len(self.slots) > 1
        self.out = out
        self.bar: tqdm | None = None

    def say(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=self.out or sys.stdout)
        else:
            print(line, file=self.out or sys.stdout, flush=True)

    def run(self, points: Iterable[RunPoint], total: int | None = None,
            watch: Callable[[int, RunPoint], bool] | None = None,
            on_end: Callable[[int, RunPoint, RunRecord, bool], None] | None = None) -> dict[int, RunRecord]:
        """{point index: record} of every point: finished before, trained here, or finished by
        another process that held it. KeyboardInterrupt once every run stopped by Ctrl-C exited.

        `points` may be a generator, drawn from only as slots free up (a search asks for its next
        trial then); `total` sizes the bar when it has no len(). `watch(index, point)`, asked of
        every run in flight at each look, returns True to stop that run (SIGTERM: it saves and
        exits), as a search's pruner does. `on_end(index, point, record, stopped)` hears of every
        run that ended here (`stopped`: by the watch), before the next one starts."""
        records: dict[int, RunRecord] = {}
        source = PointSource(points)
        waiting, held = source.waiting, []
        running: dict[int, Running] = {}  # by slot index
        told_waiting: set[int] = set()
        total = total if total is not None else (len(points) if isinstance(points, Sized) else None)
        # disable=None: no bar where stderr is no terminal (a log file would fill with its redraws).
        self.bar = (tqdm(total=total, unit="run", file=sys.stderr, dynamic_ncols=True, leave=False,
                         disable=None) if self.capture_console else None)
        try:
            while source.more() or running or held:
                self.stop_watched(source.points, running, watch)
                changed = self.start_free_slots(source, waiting, held, running, records)
                changed |= self.collect_ended(source.points, held, running, records, on_end)
                for index in list(held):  # taken up again once its holder lets go
                    point = source.points[index]
                    if live_holder(point.run_dir) is None:
                        held.remove(index)
                        waiting.append(index)
                        changed = True
                    elif not waiting and not running and index not in told_waiting:
                        told_waiting.add(index)
                        self.say(f"waiting for {live_holder(point.run_dir)} to release {point.run_dir}")
                if not changed:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:
            self.stop_all(running)
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
                self.bar = None
        return records

    def start_free_slots(self, source: "PointSource", waiting: list[int], held: list[int],
                         running: dict[int, Running], records: dict[int, RunRecord]) -> bool:
        """Start waiting points, or the source's next, on the free slots (skipping the finished,
        leaving the held); returns whether anything moved."""
        changed = False
        for slot_index, slot in enumerate(self.slots):
            while slot_index not in running and (waiting or source.draw()):
                index = waiting.pop(0)
                changed = True
                point = source.points[index]
                if self.says_held(point):
                    held.append(index)
                    continue
                status = (read_summary(point.run_dir) or {}).get("status")
                if status == "finished":
                    self.say(f"{point.label} {point.run_dir}: finished before, skipped")
                    records[index] = self.ended(load_run(point.run_dir))
                    continue
                running[slot_index] = self.start(index, point, slot, resume=status is not None)
        return changed

    def start(self, index: int, point: RunPoint, slot: Slot, resume: bool) -> Running:
        on = f" on {slot.name}" if len(self.slots) > 1 else ""
        self.say(f"{point.label} {point.run_dir}: {'resuming' if resume else 'starting'}{on}")
        # A run that began goes on from its last.pth; --resume auto refuses a run that does not exist yet.
        command = [sys.executable, MAIN, *point.argv, *(["MODEL.RESUME", "'auto'"] if is_run_folder(point.run_dir)
                                                        else [])]
        env = dict(os.environ)
        if slot.visible_devices is not None:
            # The run sees its GPU alone, as device 0: DEVICE cuda, whatever the sweep's config said.
            env["CUDA_VISIBLE_DEVICES"] = slot.visible_devices
            command += ["DEVICE", "cuda"]
        console = None
        if self.capture_console:
            os.makedirs(point.run_dir, exist_ok=True)
            console = open(os.path.join(point.run_dir, CONSOLE_FILE), "a", encoding="utf-8")
        return Running(index, start_run_process(command, env, console), console, time.monotonic())

    def collect_ended(self, points: Sequence[RunPoint], held: list[int], running: dict[int, Running],
                      records: dict[int, RunRecord],
                      on_end: Callable[[int, RunPoint, RunRecord, bool], None] | None = None) -> bool:
        """Collect the runs that exited, telling `on_end`; returns whether any did."""
        changed = False
        for slot_index, run in list(running.items()):
            code = run.process.poll()
            if code is None:
                continue
            changed = True
            del running[slot_index]
            if run.console is not None:
                run.console.close()
            record = self.collect(points[run.index], code, time.monotonic() - run.started, run.stopping)
            if record is None:
                held.append(run.index)
                continue
            records[run.index] = self.ended(record)
            if on_end is not None:
                on_end(run.index, points[run.index], record, run.stopping)
        return changed

    def collect(self, point: RunPoint, code: int, seconds: float, stopped: bool = False) -> RunRecord | None:
        """The record of a run that exited with `code` (`stopped` by the watch); None when another
        process took the folder before it could (it exits 2 then), which leaves the point to it."""
        if stopped:
            record = load_run(point.run_dir)
            record.config = record.config or point.config
            self.say(f"{point.label} {point.run_dir}: stopped after {len(record.rows)} epochs")
            return record
        if code != 0:
            if self.says_held(point):
                return None
            if (read_summary(point.run_dir) or {}).get("status") == "finished":
                self.say(f"{point.label} {point.run_dir}: finished by another process, skipped")
                return load_run(point.run_dir)
        record = load_run(point.run_dir)
        record.config = record.config or point.config  # a run that failed early wrote no config.yaml
        if code != 0:
            where = f"; see {os.path.join(point.run_dir, CONSOLE_FILE)}" if self.capture_console else ""
            self.say(f"{point.label} {point.run_dir}: failed with exit code {code}{where}")
            record.status_override = f"failed (exit {code})"
        elif self.capture_console:
            self.say(f"{point.label} {point.run_dir}: {record.status} in {seconds:.0f} s")
        return record

    def ended(self, record: RunRecord) -> RunRecord:
        if self.bar is not None:
            self.bar.update(1)
        return record

    def says_held(self, point: RunPoint) -> bool:
        """Whether another live process holds the point's folder, printing one line if so."""
        holder = live_holder(point.run_dir)
        if holder is not None:
            self.say(f"{point.label} {point.run_dir}: in use by {holder}, left to it for now; taken up again when "
                     f"it ends")
        return holder is not None

    def stop_watched(self, points: Sequence[RunPoint], running: dict[int, Running],
                     watch: Callable[[int, RunPoint], bool] | None) -> None:
        """SIGTERM to each run in flight that `watch` says to stop (once)."""
        if watch is None:
            return
        for run in running.values():
            if not run.stopping and run.process.poll() is None and watch(run.index, points[run.index]):
                run.stopping = True
                run.process.send_signal(signal.SIGTERM)

    def stop_all(self, running: dict[int, Running]) -> None:
        """Ask every run in flight to stop (SIGTERM: it saves last.pth), and wait until all exited."""
        for run in running.values():
            if run.process.poll() is None:
                run.process.send_signal(signal.SIGTERM)
        for run in running.values():
            while True:
                try:
                    run.process.wait()
                    break
                except KeyboardInterrupt:  # another Ctrl-C while they save: keep waiting for them
                    continue
            if run.console is not None:
                run.console.close()
