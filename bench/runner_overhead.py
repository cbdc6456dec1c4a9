"""What the runner itself costs per trial (issue 14, target 4), measured from outside.

    python bench/runner_overhead.py [--trials 1000] [--tree PATH] [--pairs 10] [--spin-s 1]
                                    [--markdown FILE] [--json]

1. **Bookkeeping per trial.** Runs the real CLI, ``runner trials --engine local --workload noop
   --n TRIALS --warmup 0 --rounds 1 -q``, as a child process (``python -c 'from runner.cli import
   main; main()'`` with ``PYTHONPATH=TREE``, so ``--tree /tmp/runner-old`` measures an older
   checkout with the same script) into a fresh database in /tmp. A noop trial does nothing, so
   everything between two trials is the runner's: the reply from the worker, timing, metrics, the
   store's insert and commit, the sampler's start and stop, the progress bar, the ``--until-ci``
   bookkeeping, and the next request. It is read from what the trials record: for consecutive
   trials of one worker, ``started_at[i+1] - started_at[i] - wall_s[i]`` (both written by the
   worker, ``started_at`` to the microsecond), the median over the run. The same with
   ``--no-sample`` when the tree has it: the difference is the sampler's cost per (short) trial.
   CPU seconds and peak RSS of the whole command (worker included) from ``getrusage``.
2. **The sampler's own costs**, in this process, on a sleeping child's process tree: one scan
   (``TreeSampler._sample``, wall and CPU) and a start + stop around a trial of no length.
3. **Perturbation.** A child process runs a fixed pure-Python loop of about ``--spin-s`` seconds
   (the noop workload's ``spin``) on request and times it; ``--pairs`` paired runs, with a
   ``TreeSampler`` on the child at 10 Hz and without, in ABBA order; the ratio of the medians
   (sampled / not) is the perturbation (target <= 1.02).

The machine's load average is printed with the figures: on a shared 2-core machine, CPU seconds
say more than wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLI = "from runner.cli import main; main()"
#: The child of the perturbation test: reads an iteration count per line, spins, prints seconds.
SPINNER = """
import sys, time
def spin(n):
    total = 0
    for i in range(n):
        total = (total + i * i) & 0xFFFF
    return total
for line in sys.stdin:
    n = int(line)
    t, c = time.perf_counter(), time.process_time()
    spin(n)
    print(time.perf_counter() - t, time.process_time() - c, flush=True)
"""


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "PYTHONWARNINGS": "ignore"}


def _children_usage() -> tuple[float, int]:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def run_cli(tree: Path, db: Path, trials: int, extra: list[str]) -> dict[str, Any]:
    """One ``runner trials`` of the noop workload: wall, CPU and the per-trial gaps."""
    # -P: not the working directory first on sys.path, so PYTHONPATH's tree is the one that runs
    args = [sys.executable, "-P", "-c", CLI, "trials", "--engine", "local", "--workload", "noop"]
    args += ["--n", str(trials), "--warmup", "0", "--rounds", "1", "-q", "--json"]
    args += ["--db", str(db), *extra]
    cpu0, _ = _children_usage()
    t0 = time.perf_counter()
    proc = subprocess.run(
        args, env=_env(tree), capture_output=True, text=True, check=False, cwd=db.parent
    )
    wall = time.perf_counter() - t0
    cpu1, rss = _children_usage()
    if proc.returncode != 0:
        raise SystemExit(f"runner trials failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    start = proc.stdout.find('{\n  "run_id"')  # the JSON summary (anything printed before it)
    if start < 0:
        raise SystemExit(f"runner trials printed no JSON summary:\n{proc.stdout[-2000:]}")
    result = json.loads(proc.stdout[start:])
    gaps = _gaps(db, result["run_id"])
    ran = _ran_from(tree, db.parent)
    if ran != tree:
        raise SystemExit(f"runner trials ran {ran}, not {tree}")
    return {
        "args": extra,
        "wall_s": wall,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_kb": rss,
        "elapsed_s": result["elapsed_s"],
        "trials": len(gaps) + 1,
        "gap_median_ms": statistics.median(gaps) * 1e3,
        "gap_mean_ms": statistics.fmean(gaps) * 1e3,
        "gap_p90_ms": statistics.quantiles(gaps, n=10)[-1] * 1e3,
        "setup_s": result["configs"][0]["setup_s"],
        # the trial loop's own spans, where the tree records them (RunResult.overhead)
        "spans": result.get("overhead") or {},
    }


def _ran_from(tree: Path, cwd: Path) -> Path:
    """The checkout whose ``runner`` a child started as :func:`run_cli` starts it imports."""
    code = "import runner, pathlib; print(pathlib.Path(runner.__file__).resolve().parent.parent)"
    out = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env=_env(tree),
        capture_output=True,
        text=True,
        check=True,
        cwd=cwd,
    )
    return Path(out.stdout.strip())


def _gaps(db: Path, run_id: str) -> list[float]:
    """For consecutive trials of one configuration and round: the time from one trial's end (its
    start plus its wall_s) to the next one's start."""
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        rows = con.execute(
            "SELECT config_id, round, started_at, wall_s FROM trials WHERE run_id = ? "
            "ORDER BY started_at",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    gaps = []
    for a, b in zip(rows, rows[1:], strict=False):
        if a[:2] == b[:2]:
            gaps.append((b[2] - a[2]).total_seconds() - a[3])
    return gaps


def sampler_costs(tree: Path, scans: int = 200, starts: int = 200) -> dict[str, float]:
    """One scan of a (sleeping) child's tree, and a start + stop around nothing, in this
    process, with the tree's ``runner.sampler``."""
    sys.path.insert(0, str(tree))
    from runner.sampler import TreeSampler

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    persistent = hasattr(TreeSampler, "begin")  # one sampler per worker, begin/end per trial
    try:
        sampler = TreeSampler(child.pid)
        if persistent:
            sampler.begin()
        else:
            sampler.start()
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(scans):
            sampler._sample(float(i))  # a whole sample, the tree walked
        scan_wall = (time.perf_counter() - w0) / scans
        scan_cpu = (time.process_time() - c0) / scans
        sampler.stop()
        if persistent:
            sampler = TreeSampler(child.pid)
            sampler.begin()
            sampler.end()
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(starts):  # around a trial of no length, as the trial loop does it
            if persistent:
                sampler.begin()
                sampler.end()
            else:
                TreeSampler(child.pid).start().stop()
        start_wall = (time.perf_counter() - w0) / starts
        start_cpu = (time.process_time() - c0) / starts
        if persistent:
            sampler.close()
    finally:
        child.kill()
        child.wait()
        sys.path.remove(str(tree))
    return {
        "scan_ms": scan_wall * 1e3,
        "scan_cpu_ms": scan_cpu * 1e3,
        "start_stop_ms": start_wall * 1e3,
        "start_stop_cpu_ms": start_cpu * 1e3,
    }


def store_costs(tree: Path, trials: int = 300) -> dict[str, float]:
    """In this process: the tree's ``Store.append_trial`` of a noop-shaped trial (7 metrics, the
    sampler's 2, no samples) into a fresh file, and the floor, DuckDB's own one-row INSERT and
    COMMIT into a table of the same shape. With a journal (``runner/journal.py``, where the
    trial loop no longer writes the database per trial): ``RunLog.append_trial`` of the same
    trial (one journal line, no merge due), and the merge of them into the database, whole
    (open, one transaction, close) and per trial."""
    import duckdb

    sys.path.insert(0, str(tree))
    from runner.store import TrialRecord, now_utc, open_store

    values = {
        "config_id": "c0",
        "experiment": "bench",
        "engine": "local",
        "workload": "noop",
        "dataset": "digits",
        "workers": 1,
        "threads_per_worker": 1,
        "params": {"engine": "local", "workload": "noop", "metrics": 7, "spin": 0},
        "round": 1,
        "warmup": False,
        "wall_s": 1e-5,
        "train_s": 1e-6,
        "infer_s": 0.0,
    }
    metrics = {f"noop_{i}": 1.0 for i in range(1, 8)} | {"peak_rss_mb": 150.0, "cpu_s": 0.0}
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="runner-store-") as tmp:
        store = open_store(Path(tmp) / "s.duckdb")
        run_id = store.begin_run(source="measured", argv=[], spec={}, env={})
        times = []
        for i in range(trials):
            record = TrialRecord(
                run_id=run_id,
                status="ok",
                values={**values, "repetition": i, "seed": i, "started_at": now_utc()},
                metrics=metrics,
            )
            t = time.perf_counter()
            store.append_trial(record)
            times.append(time.perf_counter() - t)
        store.close()
        out["append_trial_ms"] = statistics.median(times[10:]) * 1e3
        if (tree / "runner" / "journal.py").exists():
            out |= _journal_costs(Path(tmp) / "j.duckdb", values, metrics, trials)
        con = duckdb.connect(str(Path(tmp) / "floor.duckdb"))
        con.execute(
            "CREATE TABLE t (id BIGINT, run_id VARCHAR, config_id VARCHAR, started_at TIMESTAMP, "
            + ", ".join(f"m{i} DOUBLE" for i in range(20))
            + ")"
        )
        sql = f"INSERT INTO t VALUES (?, ?, ?, ?{', ?' * 20})"
        floor, commit = [], []
        for i in range(trials):
            t = time.perf_counter()
            con.execute("BEGIN TRANSACTION")
            con.execute(sql, [i, run_id, "c0", now_utc(), *([1.0] * 20)])
            c = time.perf_counter()
            con.execute("COMMIT")
            floor.append(time.perf_counter() - t)
            commit.append(time.perf_counter() - c)
        con.close()
    sys.path.remove(str(tree))
    return out | {
        "floor_insert_commit_ms": statistics.median(floor[10:]) * 1e3,
        "floor_commit_ms": statistics.median(commit[10:]) * 1e3,
    }


def _journal_costs(
    db: Path, values: dict[str, Any], metrics: dict[str, float], trials: int
) -> dict[str, float]:
    """``RunLog.append_trial`` per trial (no merge due), then the merges of batches of
    ``trials`` trials (open, merge, close), as the runner does them."""
    from runner import journal
    from runner.store import TrialRecord, now_utc, open_store

    with open_store(db) as store:
        log = journal.RunLog.begin(store, source="measured", argv=[], spec={}, env={})
    log.next_merge = float("inf")  # no merge inside the timed appends
    appends, merges = [], []
    params = dict(values["params"])  # one dict per configuration, as the trial loop passes
    for _ in range(3):
        for i in range(trials):
            record = TrialRecord(
                run_id=log.run_id,
                status="ok",
                values={**values, "params": params, "repetition": i, "seed": i},
                metrics=metrics,
            )
            record.values["started_at"] = now_utc()
            t = time.perf_counter()
            log.append_trial(record)
            appends.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert log.merge(wait=10)
        merges.append(time.perf_counter() - t)
    log.end("finished")
    return {
        "journal_append_ms": statistics.median(appends[10:]) * 1e3,
        "journal_append_mean_ms": statistics.fmean(appends[10:]) * 1e3,
        "merge_ms": statistics.median(merges) * 1e3,
        "merge_per_trial_ms": statistics.median(merges) / trials * 1e3,
        "merge_batch": float(trials),
    }


def perturbation(tree: Path, pairs: int, spin_s: float) -> dict[str, Any]:
    """Paired runs of a fixed CPU-bound loop in a child process, sampled at 10 Hz and not."""
    sys.path.insert(0, str(tree))
    from runner.sampler import TreeSampler

    child = subprocess.Popen(
        [sys.executable, "-c", SPINNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None

    cpu: dict[bool, list[float]] = {True: [], False: []}

    def once(n: int, sampled: bool | None = None) -> float:
        child.stdin.write(f"{n}\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
        wall, used = map(float, child.stdout.readline().split())  # type: ignore[union-attr]
        if sampled is not None:
            cpu[sampled].append(used)
        return wall

    try:
        once(100_000)
        per_iter = once(2_000_000) / 2_000_000
        n = max(1, int(spin_s / per_iter))
        sampled: list[float] = []
        plain: list[float] = []
        for i in range(pairs):
            for with_sampler in (i % 2 == 0, i % 2 == 1):  # ABBA
                if with_sampler:
                    sampler = TreeSampler(child.pid).start()
                    sampled.append(once(n, True))
                    rows = len(sampler.stop().rows)
                    assert rows >= spin_s * 5, f"the sampler took {rows} samples in {spin_s} s"
                else:
                    plain.append(once(n, False))
    finally:
        child.kill()
        child.wait()
        sys.path.remove(str(tree))
    ratio = statistics.median(sampled) / statistics.median(plain)
    pair_ratios = [s / p for s, p in zip(sampled, plain, strict=True)]
    return {
        "iterations": n,
        "median_sampled_s": statistics.median(sampled),
        "median_plain_s": statistics.median(plain),
        "ratio_of_medians": ratio,
        "median_pair_ratio": statistics.median(pair_ratios),
        # the loop's own CPU seconds: what the sampler's reads cost it, without the machine's
        # other load (which stretches wall time, not CPU time)
        "cpu_ratio_of_medians": statistics.median(cpu[True]) / statistics.median(cpu[False]),
    }


def _has_no_sample(tree: Path) -> bool:
    return "no-sample" in (tree / "runner" / "cli.py").read_text(encoding="utf-8")


def measure(tree: Path, trials: int, pairs: int, spin_s: float) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tree": str(tree),
        "commit": subprocess.run(
            ["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip(),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "load_before": os.getloadavg()[0],
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="runner-overhead-") as tmp:
        variants = [[]] + ([["--no-sample"]] if _has_no_sample(tree) else [])
        for extra in variants:
            db = Path(tmp) / f"noop{len(out['runs'])}.duckdb"
            out["runs"].append(run_cli(tree, db, trials, extra))
    out["sampler"] = sampler_costs(tree)
    out["store"] = store_costs(tree)
    out["perturbation"] = perturbation(tree, pairs, spin_s)
    out["load_after"] = os.getloadavg()[0]
    if len(out["runs"]) == 2:
        out["sampler_per_trial_ms"] = (
            out["runs"][0]["gap_median_ms"] - out["runs"][1]["gap_median_ms"]
        )
    span = out["runs"][0]["spans"]
    if span:
        out["sampler_per_trial_ms"] = span["sampler"]["median_ms"]
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"Runner overhead, tree `{results['tree']}` ({results['commit']}), "
        f"{results['machine']}, load average {results['load_before']:.2f} before, "
        f"{results['load_after']:.2f} after.",
        "",
        "| run | trials | bookkeeping per trial, median ms | mean ms | p90 ms | wall s | CPU s "
        "| CPU ms per trial | peak RSS MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in results["runs"]:
        name = "noop " + (" ".join(run["args"]) or "(sampled)")
        lines.append(
            f"| {name} | {run['trials']} | {run['gap_median_ms']:.3f} | {run['gap_mean_ms']:.3f} "
            f"| {run['gap_p90_ms']:.3f} | {run['wall_s']:.2f} | {run['cpu_s']:.2f} "
            f"| {run['cpu_s'] / run['trials'] * 1e3:.2f} | {run['peak_rss_kb'] / 1024:.0f} |"
        )
    spans = [(r, r["spans"]) for r in results["runs"] if r["spans"]]
    if spans:
        lines += [
            "",
            "| run (the trial loop's own spans, median ms / p90 ms) | result to next request "
            "| of which store append (journal line, or merge when due) | of which sampler end + "
            "begin | rest |",
            "|---|---:|---:|---:|---:|",
        ]
        for run, span in spans:
            loop, store, sampler = (span[k]["median_ms"] for k in ("loop", "store", "sampler"))
            p90 = [span[k]["p90_ms"] for k in ("loop", "store", "sampler")]
            rest = loop - store - sampler
            lines.append(
                f"| noop {' '.join(run['args']) or '(sampled)'} | {loop:.3f} / {p90[0]:.3f} "
                f"| {store:.3f} / {p90[1]:.3f} | {sampler:.3f} / {p90[2]:.3f} | {rest:.3f} |"
            )
        merges = [(run, span["merges"]) for run, span in spans if span.get("merges")]
        if merges:
            lines += [
                "",
                "| run (journal merges into the database) | merges | trials | median ms | mean ms "
                "| total ms | total per trial ms | busy |",
                "|---|---:|---:|---:|---:|---:|---:|---:|",
            ]
            for run, m in merges:
                per = m["total_ms"] / max(1, m["trials"])
                lines.append(
                    f"| noop {' '.join(run['args']) or '(sampled)'} | {m['merges']} "
                    f"| {m['trials']} | {m['median_ms']:.2f} | {m['mean_ms']:.2f} "
                    f"| {m['total_ms']:.1f} | {per:.4f} | {m['busy']} |"
                )
    s, p, st = results["sampler"], results["perturbation"], results["store"]
    lines += [
        "",
        "| store (in-process, median of 290 appends) | ms |",
        "|---|---:|",
        f"| `Store.append_trial`, noop trial (9 metrics, no samples; one transaction) | "
        f"{st['append_trial_ms']:.3f} |",
    ]
    if "journal_append_ms" in st:
        lines += [
            f"| `RunLog.append_trial`: the same trial as one journal line (what the trial loop "
            f"does), median (mean) | {st['journal_append_ms']:.3f} "
            f"({st['journal_append_mean_ms']:.3f}) |",
            f"| merge of {st['merge_batch']:.0f} journaled trials (open, one transaction, "
            f"close), whole / per trial | {st['merge_ms']:.1f} / {st['merge_per_trial_ms']:.4f} |",
        ]
    lines += [
        f"| floor: DuckDB BEGIN + one-row INSERT + COMMIT | {st['floor_insert_commit_ms']:.3f} |",
        f"| of which COMMIT | {st['floor_commit_ms']:.3f} |",
        "",
        "| sampler | value |",
        "|---|---:|",
        f"| one scan of the tree, ms (CPU ms) | {s['scan_ms']:.3f} ({s['scan_cpu_ms']:.3f}) |",
        f"| start + stop around a trial of no length, ms (CPU ms) | {s['start_stop_ms']:.3f} "
        f"({s['start_stop_cpu_ms']:.3f}) |",
        f"| cost per 1 s trial at 10 Hz, ms (10 scans + start/stop) | "
        f"{10 * s['scan_ms'] + s['start_stop_ms']:.2f} |",
    ]
    if "sampler_per_trial_ms" in results:
        lines.append(
            "| noop: sampler end + begin per trial (the loop's span; else sampled minus "
            f"--no-sample gap), median ms | "
            f"{results['sampler_per_trial_ms']:.3f} |"
        )
    lines += [
        f"| perturbation: {p['iterations']:,}-iteration loop, median sampled / plain s | "
        f"{p['median_sampled_s']:.4f} / {p['median_plain_s']:.4f} |",
        f"| perturbation: ratio of medians (median of pair ratios) | "
        f"{p['ratio_of_medians']:.4f} ({p['median_pair_ratio']:.4f}) |",
        f"| perturbation: ratio of the loop's median CPU seconds, sampled / plain | "
        f"{p['cpu_ratio_of_medians']:.4f} |",
        f"| the sampler's CPU share at 10 Hz (10 scans' CPU per second) | "
        f"{10 * s['scan_cpu_ms'] / 1e3:.3%} |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose runner to run")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--spin-s", type=float, default=1.0)
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = measure(args.tree.resolve(), args.trials, args.pairs, args.spin_s)
    text = markdown(results)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    print(json.dumps(results, indent=2) if args.json else text)


if __name__ == "__main__":
    main()
