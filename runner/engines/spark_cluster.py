"""A Spark standalone cluster on 127.0.0.1, started and stopped by the runner (``spark_mode =
"standalone"``).

``StandaloneCluster(workers, cores, memory_gb, tmpdir).start()`` launches one Master and
``workers`` Worker JVMs with pyspark's own ``bin/spark-class`` (no Spark installation needed), each
in its own process group (session), bound to 127.0.0.1 only, with random ports (RPC and web UIs;
the master's REST submission server is off), their output in ``tmpdir/*.log`` and their work,
local and Java temporary directories under ``tmpdir``. The master comes first (its log names the
port it bound), then the workers together; ``start()`` returns the master URL once every worker
has registered. ``stop()`` sends SIGTERM to every process group, SIGKILL to whatever is left a few
seconds later (descendants that left the group too, such as pyspark's Python daemons), and is safe
to call after a start that failed halfway, or twice.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

_MASTER_URL = re.compile(r"Starting Spark master at (spark://[\w.\-]+:\d+)")
_REGISTERED = "Successfully registered with master"
#: JVM options of the master and worker daemons (not of the executors, which run the work): they
#: only coordinate, so the quick JIT tier and the serial GC are enough, and on a small machine
#: they then start about twice as fast.
_DAEMON_JAVA_OPTS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
_PROPERTIES = """\
spark.master.rest.enabled false
spark.worker.cleanup.enabled false
"""


def spark_class() -> Path:
    """pyspark's ``bin/spark-class`` launcher."""
    import pyspark

    return Path(pyspark.__file__).parent / "bin" / "spark-class"


class StandaloneCluster:
    """One master and ``workers`` workers with ``cores`` cores and ``memory_gb`` GB each (1 GB when
    None) on 127.0.0.1."""

    def __init__(
        self,
        workers: int,
        cores: int,
        memory_gb: float | None,
        tmpdir: Path,
        *,
        timeout: float = 60.0,
    ) -> None:
        if workers < 1 or cores < 1:
            raise ValueError(
                f"a standalone cluster needs workers >= 1 and cores >= 1, got {workers} and {cores}"
            )
        self.workers = workers
        self.cores = cores
        self.memory_mb = max(int(float(memory_gb) * 1024), 1) if memory_gb else 1024
        self.tmpdir = Path(tmpdir)
        self.timeout = timeout
        self.url: str | None = None
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[Path] = []

    # -- start --------------------------------------------------------------------------------

    def _env(self, name: str) -> dict[str, str]:
        home = self.tmpdir / name
        (home / "local").mkdir(parents=True, exist_ok=True)
        (home / "tmp").mkdir(exist_ok=True)
        return {
            **os.environ,
            "SPARK_LOCAL_IP": "127.0.0.1",
            "SPARK_LOG_DIR": str(self.tmpdir),
            "SPARK_PID_DIR": str(self.tmpdir),
            "SPARK_WORKER_DIR": str(home / "work"),
            "SPARK_LOCAL_DIRS": str(home / "local"),
            "SPARK_DAEMON_JAVA_OPTS": " ".join(
                [
                    _DAEMON_JAVA_OPTS,
                    f"-Djava.io.tmpdir={home / 'tmp'}",  # not /tmp: removed with tmpdir
                    os.environ.get("SPARK_DAEMON_JAVA_OPTS", ""),
                ]
            ).strip(),
        }

    def _launch(self, name: str, main: str, *args: str) -> None:
        log = self.tmpdir / f"{name}.log"
        self._logs.append(log)
        with open(log, "ab") as out:
            self._procs.append(
                subprocess.Popen(
                    [str(spark_class()), main, *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self._env(name),
                    cwd=self.tmpdir,
                    start_new_session=True,  # its own process group: stop() signals all of it
                )
            )

    def start(self) -> str:
        """Start the master and the workers; return the master URL once all workers registered.
        Raises RuntimeError (with the logs' last lines) when that takes longer than ``timeout``
        seconds or a process exits; the processes started so far are then stopped."""
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> str:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        properties = self.tmpdir / "spark-defaults.conf"
        properties.write_text(_PROPERTIES, encoding="utf-8")
        common = ("--host", "127.0.0.1", "--webui-port", "0", "--properties-file", str(properties))
        deadline = time.monotonic() + self.timeout
        self._launch("master", "org.apache.spark.deploy.master.Master", "--port", "0", *common)
        master_log = self._logs[0]
        url = self._wait(
            deadline, "the Spark master to start", lambda: self._master_url(master_log)
        )
        for i in range(1, self.workers + 1):
            work = self.tmpdir / f"worker-{i}" / "work"
            self._launch(
                f"worker-{i}",
                "org.apache.spark.deploy.worker.Worker",
                *common,
                "--cores",
                str(self.cores),
                "--memory",
                f"{self.memory_mb}m",
                "--work-dir",
                str(work),
                url,
            )
        self._wait(
            deadline,
            f"{self.workers} Spark worker(s) to register with {url}",
            lambda: self.registered() >= self.workers or None,
        )
        self.url = url
        return url

    @staticmethod
    def _master_url(log: Path) -> str | None:
        match = _MASTER_URL.search(_read(log))
        return match.group(1) if match else None

    def registered(self) -> int:
        """How many workers have registered with the master (each says so in its log)."""
        return sum(_REGISTERED in _read(log) for log in self._logs[1:])

    def _wait(self, deadline: float, what: str, ready: Any) -> Any:
        while True:
            value = ready()
            if value:
                return value
            dead = [
                (log.stem, p.returncode)
                for p, log in zip(self._procs, self._logs, strict=True)
                if p.poll() is not None
            ]
            if dead:
                name, code = dead[0]
                raise RuntimeError(
                    f"Spark {name} exited (code {code}) while waiting for {what}; "
                    + self.log_tail()
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"timed out after {self.timeout:g} s waiting for {what}; " + self.log_tail()
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 3) -> str:
        """The last lines of each process's log, on one line."""
        parts = []
        for log in self._logs:
            tail = _read(log).strip().splitlines()[-lines:]
            parts.append(f"{log.name}: " + (" | ".join(tail) if tail else "(empty)"))
        return "; ".join(parts) if parts else "no Spark logs"

    # -- stop ---------------------------------------------------------------------------------

    def stop(self, grace: float = 5.0) -> None:
        """Stop every process this cluster started (and their descendants): SIGTERM to each
        process group, SIGKILL after ``grace`` seconds to whatever is still alive."""
        import psutil

        procs, self._procs = self._procs, []
        self.url = None
        if not procs:
            return
        descendants: list[Any] = []
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                descendants.extend(psutil.Process(proc.pid).children(recursive=True))
        for proc in reversed(procs):  # workers first, then the master
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
        for proc in procs:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
        for child in descendants:  # e.g. pyspark daemons, which start their own process group
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(descendants, timeout=5)

    def __enter__(self) -> StandaloneCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    # The process leads its own group (start_new_session); its group outlives it while any
    # member (an executor JVM a worker started) is alive.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
