"""Two `runner trials` on one database at once for a minute, with `analyze summary` and
`report build` each reading it in a loop the whole time: every read succeeds and sees every
trial committed before it started (what runs that had ended and earlier reads saw), and in the
end every trial of every run is there, once."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb

from runner.store import open_store
from tests.conftest import run_cli

BIN = Path(sys.executable).parent
#: seconds the writers keep starting runs: two runners write at once all along, the readers
#: read all along (the last runs end later)
WRITE_S = 60.0
N = 300  # two configurations x 300 noop trials per run: a run of a few seconds
#: seconds a reader rests between reads (the reads are the point, not the CPU they burn)
REST_S = {"analyze": 0.5, "report": 1.0}
#: the runners share one core when there are more (so the readers have the others)
CPUS = sorted(os.sched_getaffinity(0))[-1:] if len(os.sched_getaffinity(0)) > 1 else None


def _runner(db: Path, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "runner"), "trials", "--engine", "local", "--workload", "noop", "--param",
         "spin=0,20000", "--n", str(N), "--warmup", "0", "--rounds", "1", "--seed", str(seed),
         "--db", str(db), "-q", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=None if CPUS is None else lambda: os.sched_setaffinity(0, CPUS),
    )  # fmt: skip


def _analyze(db: Path, out: Path) -> int:
    """Trials `analyze summary` counts (ok, measured: every trial here)."""
    proc = run_cli("analyze", "summary", "--db", db, "--format", "json", "--bootstrap", "0",
                   timeout=120)  # fmt: skip
    assert proc.returncode == 0, f"analyze summary: {proc.returncode} {proc.stderr[-500:]}"
    return sum(int(row["n"]) for row in json.loads(proc.stdout)["rows"])


def _report(db: Path, out: Path) -> int:
    """Trials the HTML report's runs table counts (0: it says there are none yet)."""
    proc = run_cli("report", "build", "--format", "html", "--db", db, "--out", out, "-q",
                   timeout=300)  # fmt: skip
    if proc.returncode == 2 and proc.stderr.startswith("error: no trials in"):
        return 0
    assert proc.returncode == 0, f"report build: {proc.returncode} {proc.stderr[-500:]}"
    table = re.search(
        r'id="runs">.*?<thead>(.*?)</thead>.*?<tbody>(.*?)</tbody>', out.read_text("utf-8"), re.S
    )
    assert table is not None, "report build: no runs table"
    heads = [
        re.sub(r"<[^>]*>", "", h).strip()
        for h in re.findall(r"<th[^>]*>(.*?)</th>", table.group(1), re.S)
    ]
    col = heads.index("Trials")  # by name: the table gained a Status column
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(2), re.S)
    return sum(int(re.findall(r"<td[^>]*>(.*?)</td>", row)[col].replace(",", "")) for row in rows)


@dataclass
class Read:
    reader: str
    start: float
    end: float
    count: int


def test_two_runners_and_readers_share_one_database(tmp_path: Path) -> None:
    db = tmp_path / "r.duckdb"
    open_store(db).close()
    reads: list[Read] = []
    failures: list[str] = []
    lock = threading.Lock()
    writing = threading.Event()
    writing.set()

    def read(name: str, count: Callable[[Path, Path], int]) -> None:
        out = tmp_path / f"{name}.html"
        while writing.is_set():
            start = time.monotonic()
            try:
                n = count(db, out)
            except AssertionError as exc:
                failures.append(str(exc))
            else:
                with lock:
                    reads.append(Read(name, start, time.monotonic(), n))
            time.sleep(REST_S[name])

    readers = [threading.Thread(target=read, args=a) for a in
               (("analyze", _analyze), ("report", _report))]  # fmt: skip
    t0 = time.monotonic()
    for thread in readers:
        thread.start()
    #: (when a run ended, trials of every run ended by then): all merged, committed
    ended: list[tuple[float, int]] = []
    expected, runs = 0, 0
    slots: list[subprocess.Popen[str] | None] = [_runner(db, 1), _runner(db, 2)]
    seed = 2
    try:  # two runners at once all along: a new one starts when one ends, until WRITE_S
        while any(p is not None for p in slots):
            time.sleep(0.2)
            for i, proc in enumerate(slots):
                if proc is None or proc.poll() is None:
                    continue
                out, err = proc.communicate()
                assert proc.returncode == 0, err
                result = json.loads(out)
                assert result["n_ok"] == 2 * N and "stayed busy" not in " ".join(result["notes"])
                expected += result["n_ok"]
                ended.append((time.monotonic(), expected))
                runs += 1
                slots[i] = (
                    _runner(db, seed := seed + 1) if time.monotonic() - t0 < WRITE_S else None
                )
    finally:
        for proc in slots:
            if proc is not None and proc.poll() is None:
                proc.kill()
        stopped = time.monotonic()
        writing.clear()
        for thread in readers:
            thread.join(timeout=300)
    written = stopped - t0
    assert failures == []
    assert written >= WRITE_S and not any(thread.is_alive() for thread in readers)
    for reader in ("analyze", "report"):  # the readers read all along, one read after another
        mine = [r for r in reads if r.reader == reader]
        assert len(mine) >= 3 and mine[0].start - t0 < 10, mine
        assert mine[-1].end >= stopped - REST_S[reader] - 1, mine
        assert [r.count for r in mine] == sorted(r.count for r in mine)  # never fewer
    for r in reads:  # every trial committed before a read started is in it
        floor = max(
            [n for t, n in ended if t < r.start] + [q.count for q in reads if q.end < r.start],
            default=0,
        )
        assert floor <= r.count <= expected, (r, floor)
    mid = [r for r in reads if 0 < r.count < expected]
    assert len({r.count for r in mid}) >= 3, reads  # read while the runners wrote
    assert _analyze(db, tmp_path / "x") == expected
    assert _report(db, tmp_path / "last.html") == expected
    con = duckdb.connect(str(db), read_only=True)
    try:
        per_run = con.execute(
            "SELECT r.status, count(t.trial_id), count(DISTINCT (t.config_id, t.repetition)) "
            "FROM runs r LEFT JOIN trials t USING (run_id) GROUP BY r.run_id, r.status"
        ).fetchall()
    finally:
        con.close()
    assert len(per_run) == runs >= 4
    assert all(row == ("finished", 2 * N, 2 * N) for row in per_run), per_run
    assert not Path(f"{db}.journal").exists()
    figures = {
        name: (len(mine), len({r.count for r in mine}), max(r.end - r.start for r in mine))
        for name in ("analyze", "report")
        for mine in [[r for r in reads if r.reader == name]]
    }
    print(
        f"{written:.0f} s of two runners writing: {runs} runs, {expected} trials; "
        + "; ".join(
            f"{name} {n} reads ({distinct} distinct counts, slowest {slow:.1f} s)"
            for name, (n, distinct, slow) in figures.items()
        )
        + f"; {len(mid)} reads mid-run; 0 failed, 0 saw fewer than committed"
    )
