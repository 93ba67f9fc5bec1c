"""The terminal's view of a run: counts read from the run directory, the source of truth.

The total is every record the run will write: each (model, method, item, sample) once, plus each repair
round as it becomes due (a failed answer with rounds left), so the bar never runs past its total. A
record is re-read only when its file changed, so a tick costs little on a run of thousands of items.
On a terminal a tqdm bar with per-stage counts; elsewhere (a log, CI) a plain line every 10 % or 30 s.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class _Seen:
    asked: bool
    executed: bool
    judged: bool
    failed: bool
    round: int
    next_round: str | None  # the file name of the repair round this record makes due, if any


@dataclass(frozen=True)
class Counts:
    total: int
    recorded: int
    asked: int
    executed: int
    judged: int
    failed: int

    def stages(self) -> str:
        return f"asked {self.asked}, executed {self.executed}, judged {self.judged}, failed {self.failed}"


class RunCounts:
    """Counts of a run's records, re-reading only the files that changed since the last look."""

    def __init__(self, run):
        self.run = run
        self._seen: dict[str, tuple[float, _Seen]] = {}

    def _expected_first_answers(self) -> int:
        manifest = self.run.manifest
        per_model = 0
        for tier in manifest.tiers:
            path = self.run.dir / f"items-{tier}.json"
            count = path.read_text().count('"id":') if path.exists() else (manifest.limit or 0)
            per_model += count * len(manifest.methods[tier])
        return per_model * len(manifest.models) * manifest.samples

    def _read(self, path) -> _Seen | None:
        from audioprobe import stored
        from audioprobe.schema import ItemOutcome
        from tasks.records import outcome_key
        from tasks.repair import repair_reason, rounds_for

        try:
            o = stored.load(ItemOutcome, path.read_text())
        except (OSError, ValueError):
            return None  # being replaced: read it at the next look
        finished = o.failure is not None or o.stage_reached == "done"
        due = finished and o.round < rounds_for(o.model, self.run.manifest.repair_rounds) and repair_reason(o)
        next_round = (
            outcome_key(o.model, o.method, o.item.id, o.sample, o.round + 1) + ".json" if due else None
        )
        return _Seen(
            o.generation is not None,
            o.execution is not None,
            o.stage_reached == "done",
            o.failure is not None,
            o.round,
            next_round,
        )

    def counts(self) -> Counts:
        folder = self.run.dir / "outcomes"
        paths = {p.name: p for p in folder.glob("*.json")} if folder.exists() else {}
        for name in list(self._seen):
            if name not in paths:
                del self._seen[name]
        for name, path in paths.items():
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            if name not in self._seen or self._seen[name][0] != mtime:
                seen = self._read(path)
                if seen is not None:
                    self._seen[name] = (mtime, seen)
        records = [s for _, s in self._seen.values()]
        later_rounds = sum(1 for s in records if s.round > 0)
        due_not_written = sum(1 for s in records if s.next_round and s.next_round not in self._seen)
        total = max(self._expected_first_answers() + later_rounds + due_not_written, len(records))
        return Counts(
            total=total,
            recorded=sum(1 for s in records if s.judged or s.failed),
            asked=sum(s.asked for s in records),
            executed=sum(s.executed for s in records),
            judged=sum(s.judged for s in records),
            failed=sum(s.failed for s in records),
        )


class ProgressWatcher(threading.Thread):
    """Shows a run's progress until stopped: a bar on a terminal, plain lines off one."""

    def __init__(self, run, stream=None, every_s: float = 2.0, plain_every_s: float = 30.0):
        super().__init__(daemon=True, name="progress")
        self.counter = RunCounts(run)
        self.run_id = run.run_id
        self.stream = stream or sys.stderr
        self.every_s, self.plain_every_s = every_s, plain_every_s
        self._halt = threading.Event()

    def run(self) -> None:
        if self.stream.isatty():
            self._bar()
        else:
            self._lines()

    def _bar(self) -> None:
        from tqdm import tqdm

        counts = self.counter.counts()
        with tqdm(total=counts.total, desc=f"run {self.run_id}", unit="record", file=self.stream) as bar:
            while True:
                bar.total, bar.n = counts.total, counts.recorded
                bar.set_postfix_str(counts.stages(), refresh=False)
                bar.refresh()
                if self._halt.wait(self.every_s):
                    return
                counts = self.counter.counts()

    def _lines(self) -> None:
        started = last_at = time.monotonic()
        last_tenth = -1
        while not self._halt.wait(self.every_s):
            counts = self.counter.counts()
            tenth = 10 * counts.recorded // max(1, counts.total)
            now = time.monotonic()
            if tenth > last_tenth or now - last_at >= self.plain_every_s:
                last_tenth, last_at = tenth, now
                self._line(counts, now - started)
        self._line(self.counter.counts(), time.monotonic() - started)  # where the run ended

    def _line(self, counts: Counts, elapsed_s: float) -> None:
        print(
            f"run {self.run_id}: {counts.recorded}/{counts.total} records "
            f"({100 * counts.recorded / max(1, counts.total):.0f} %; {counts.stages()}) "
            f"after {elapsed_s:.0f} s",
            file=self.stream,
            flush=True,
        )

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
