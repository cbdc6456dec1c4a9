"""The machine and software a run happened on, recorded in ``runs.env``, and the load on it.

:func:`collect_env` records what pyperf's ``collect_metadata`` records that matters here (CPU
model, frequency, scaling governor and driver, core counts, memory) plus the
BLAS/OpenMP libraries actually loaded in this process (threadpoolctl, after importing NumPy and
SciPy, whose OpenBLAS builds are their own, not the system's), the native BLAS Spark MLlib's JVM
would load, package versions, java and the project's git commit. It is cheap (about a quarter of
a second: the git and java probes run in parallel; the first import of NumPy and SciPy adds about
half a second) and never raises: a probe that fails records ``None`` (or leaves a package out)
instead.

:func:`load_snapshot` measures the load on the machine (load average, CPU busy over a short
interval); :func:`busy_warning` turns a snapshot taken while no trial runs into a warning when
other work occupies the machine. The load is not in :func:`collect_env`'s record: it changes by
the minute, so the runner takes a snapshot at the start and end of each configuration.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions are recorded (without importing them). Alternatives in a tuple
#: are tried in order; the first installed one is recorded under its own name.
PACKAGES: tuple[str | tuple[str, ...], ...] = (
    "trialkit",
    "duckdb",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "scikit-learn",
    "jinja2",
    "matplotlib",
    "typer",
    "rich",
    "psutil",
    "dask",
    "distributed",
    "pyspark",
    "ray",
    ("tensorflow", "tensorflow-cpu"),
)

GIT_TIMEOUT_S = 5.0
JAVA_TIMEOUT_S = 10.0
#: Where the dynamic loader finds ``libblas.so.3``, the native BLAS Spark MLlib's JVM loads
#: (dev.ludovic.netlib); without it MLlib falls back to a slower Java BLAS.
_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/lib64", "/usr/local/lib", "/lib")
_JVM_BLAS = "libblas.so.3"
#: threadpoolctl's fields kept for each loaded library.
_LIBRARY_FIELDS = (
    "user_api",
    "internal_api",
    "version",
    "num_threads",
    "threading_layer",
    "architecture",
    "filepath",
)
_CPU_SYSFS = Path("/sys/devices/system/cpu")
#: CPU busy over this many seconds in :func:`load_snapshot`.
LOAD_INTERVAL_S = 0.25
#: :func:`busy_warning` warns when other work occupies more than this share of the cores.
BUSY_SHARE = 0.5


def _safe(probe: Callable[[], Any], default: Any = None) -> Any:
    try:
        return probe()
    except Exception:
        return default


def package_versions() -> dict[str, str]:
    """Installed versions of the packages trialkit uses; not-installed ones are left out."""
    out: dict[str, str] = {}
    for entry in PACKAGES:
        for name in (entry,) if isinstance(entry, str) else entry:
            try:
                out[name] = metadata.version(name)
            except Exception:  # PackageNotFoundError, or broken metadata
                continue
            break
    return out


def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def memory_gb() -> float | None:
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return round(total / 2**30, 1)


def loaded_libraries(*, import_numpy: bool = True) -> list[dict[str, Any]]:
    """The BLAS and OpenMP libraries loaded in this process, as threadpoolctl finds them (user
    API, implementation, version, threads, file). ``import_numpy`` first imports NumPy and SciPy's
    linear algebra so that their own OpenBLAS builds are loaded; a trial worker calls it with
    False once its engine and workload are imported, to record what that process loaded."""
    if import_numpy:
        import numpy  # noqa: F401  (loads NumPy's OpenBLAS)

        with contextlib.suppress(ImportError):
            import scipy.linalg  # noqa: F401  (loads SciPy's)
    from threadpoolctl import threadpool_info

    return [{k: lib.get(k) for k in _LIBRARY_FIELDS} for lib in threadpool_info()]


def jvm_blas() -> str | None:
    """The file ``libblas.so.3`` resolves to (the native BLAS Spark MLlib loads), or None."""
    dirs = [Path(d) for d in _LIB_DIRS]
    for base in ("/usr/lib", "/lib"):
        dirs += sorted(Path(base).glob("*-linux-gnu"))
    for folder in dirs:
        candidate = folder / _JVM_BLAS
        if candidate.exists():
            return str(candidate.resolve())
    return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip() or None
    except OSError:
        return None


def _cpu_dirs() -> list[Path]:
    return sorted(
        (d for d in _CPU_SYSFS.glob("cpu[0-9]*") if d.name[3:].isdigit()),
        key=lambda d: int(d.name[3:]),
    )


def _join(values: Sequence[str | None]) -> str | None:
    """One value when all CPUs agree, else ``cpu0=a, cpu1=b`` (pyperf's habit, shorter)."""
    known = [v for v in values if v]
    if not known:
        return None
    if len(set(known)) == 1:
        return known[0]
    return ", ".join(f"cpu{i}={v}" for i, v in enumerate(values) if v)


def cpu_frequency() -> dict[str, Any] | None:
    """Current (mean over CPUs), minimum and maximum frequency in MHz, from
    ``/sys/devices/system/cpu/cpu*/cpufreq`` where readable, else ``psutil.cpu_freq()`` (which
    reads /proc/cpuinfo's "cpu MHz" on a VM); None when neither says anything."""

    def khz(value: str | None) -> float | None:
        try:
            return float(value) / 1000 if value else None
        except ValueError:
            return None

    dirs = [d / "cpufreq" for d in _cpu_dirs()]
    current = [khz(_read(d / "scaling_cur_freq")) for d in dirs]
    lows = [khz(_read(d / "cpuinfo_min_freq")) for d in dirs]
    highs = [khz(_read(d / "cpuinfo_max_freq")) for d in dirs]
    if any(v is not None for v in current):
        cur = [v for v in current if v is not None]
        low = [v for v in lows if v is not None]
        high = [v for v in highs if v is not None]
        return {
            "current_mhz": round(sum(cur) / len(cur), 1),
            "min_mhz": min(low) if low else None,
            "max_mhz": max(high) if high else None,
            "source": "sysfs",
        }
    import psutil

    freq = psutil.cpu_freq()
    if freq is None or not freq.current:
        return None
    return {
        "current_mhz": round(float(freq.current), 1),
        "min_mhz": float(freq.min) or None,  # psutil says 0.0 when it does not know
        "max_mhz": float(freq.max) or None,
        "source": "psutil",
    }


def cpu_config() -> dict[str, Any]:
    """Frequency scaling driver and governor, and turbo (intel_pstate), where readable."""
    dirs = [d / "cpufreq" for d in _cpu_dirs()]
    driver = _join([_read(d / "scaling_driver") for d in dirs])
    no_turbo = _read(_CPU_SYSFS / "intel_pstate" / "no_turbo")
    return {
        "governor": _join([_read(d / "scaling_governor") for d in dirs]),
        "driver": driver,
        "turbo": {"0": True, "1": False}.get(no_turbo or ""),
    }


def core_counts() -> dict[str, Any]:
    """Logical and physical cores, the cores this process may run on (affinity), and the
    container's CPU quota in cores (cgroup v2 ``cpu.max``; None when unlimited or unknown)."""
    import psutil

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    quota = None
    limit = _read(Path("/sys/fs/cgroup/cpu.max"))
    if limit:
        fields = limit.split()
        if len(fields) == 2 and fields[0] != "max":
            with contextlib.suppress(ValueError, ZeroDivisionError):
                quota = round(int(fields[0]) / int(fields[1]), 2)
    return {
        "logical_cores": os.cpu_count(),
        "physical_cores": _safe(lambda: psutil.cpu_count(logical=False)),
        "usable_cores": usable,
        "cpu_quota_cores": quota,
    }


def _load_average() -> tuple[tuple[float, float, float], int | None]:
    """(1, 5, 15-minute load averages), and the runnable threads now (/proc/loadavg)."""
    line = _read(Path("/proc/loadavg"))
    if line:
        fields = line.split()
        runnable = fields[3].split("/", 1)[0] if len(fields) > 3 else ""
        return (
            (float(fields[0]), float(fields[1]), float(fields[2])),
            int(runnable) if runnable.isdigit() else None,
        )
    one, five, fifteen = os.getloadavg()
    return (one, five, fifteen), None


def _busy_total(times: Any) -> tuple[float, float]:
    """CPU seconds busy and in all from ``psutil.cpu_times()`` (guest time is already in user;
    iowait counts as idle), as psutil's cpu_percent counts them."""
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def load_snapshot(interval_s: float = LOAD_INTERVAL_S) -> dict[str, Any]:
    """The load on the machine now: load averages (1, 5, 15 min), runnable threads, and the share
    of all CPUs busy over the next ``interval_s`` seconds (0-100; ``busy_cores`` = that share
    times the logical cores), with free memory. Blocks ``interval_s`` seconds. Take it while no
    trial runs (start and end of a configuration) so it shows the machine's other work."""
    import psutil

    t0 = time.time()
    busy0, total0 = _busy_total(psutil.cpu_times())
    time.sleep(max(interval_s, 0.0))
    busy1, total1 = _busy_total(psutil.cpu_times())
    (load1, load5, load15), runnable = _load_average()
    logical = os.cpu_count() or 1
    delta = total1 - total0
    percent = min(max((busy1 - busy0) / delta * 100, 0.0), 100.0) if delta > 0 else None
    return {
        "at": datetime.fromtimestamp(t0, UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        "load_1": load1,
        "load_5": load5,
        "load_15": load15,
        "runnable_threads": runnable,
        "cpu_percent": None if percent is None else round(percent, 1),
        "cpu_interval_s": interval_s,
        "busy_cores": None if percent is None else round(percent / 100 * logical, 2),
        "logical_cores": logical,
        "memory_available_gb": round(psutil.virtual_memory().available / 2**30, 2),
    }


def busy_warning(
    snapshot: Mapping[str, Any], cores: int | None = None, *, share: float = BUSY_SHARE
) -> str | None:
    """A one-line warning when, in a snapshot taken while no trial ran, other work kept more
    than ``share`` of ``cores`` (the snapshot's logical cores when None) busy; None otherwise.
    The CPU busy over the snapshot's interval decides (the load average lags by minutes, so
    right after a configuration it still counts the runner's own trials); the load average
    decides only when the snapshot has no CPU measure."""
    cores = int(cores or snapshot.get("logical_cores") or os.cpu_count() or 1)
    busy = snapshot.get("busy_cores")
    load1 = snapshot.get("load_1")
    if busy is not None:
        if busy <= share * cores:
            return None
        return (
            f"the machine is busy: {busy:.1f} of {cores} cores in use while no trial ran (load "
            f"average {load1:.1f}); timings may be noisy"
        )
    if load1 is not None and load1 > share * cores:
        return (
            f"the machine is busy: load average {load1:.1f} on {cores} cores; timings may be noisy"
        )
    return None


def _start(args: Sequence[str], cwd: str | None = None) -> subprocess.Popen[str] | None:
    env = dict(os.environ, GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
    try:
        return subprocess.Popen(
            list(args),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=env,
        )
    except OSError:
        return None


def _finish(proc: subprocess.Popen[str] | None, timeout: float) -> tuple[int, str, str] | None:
    """Wait for ``proc``; ``(returncode, stdout, stderr)``, or None when it did not finish."""
    if proc is None:
        return None
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return proc.returncode, out, err


def _java_executable() -> str | None:
    java_home = os.environ.get("JAVA_HOME")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("java")


def _source_dir() -> Path:
    """The folder holding the ``runner`` package source (the project checkout's root)."""
    return Path(__file__).resolve().parent.parent


def collect_env() -> dict[str, Any]:
    """Describe this machine and software: python, package versions, CPU model, frequency and
    scaling governor, core counts, memory, OS, hostname, the BLAS/OpenMP libraries
    loaded here (NumPy's and SciPy's, :func:`loaded_libraries`), the BLAS Spark's JVM would load,
    the project's git commit (and whether the checkout has local changes), java."""
    git = shutil.which("git")
    src = _source_dir()
    # Start the slow probes first, then gather the cheap facts while they run.
    rev = _start([git, "-C", str(src), "rev-parse", "--show-toplevel", "HEAD"]) if git else None
    status = _start([git, "-C", str(src), "status", "--porcelain"]) if git else None
    java_exe = _safe(_java_executable)
    java = _start([java_exe, "-version"]) if java_exe else None

    cores = _safe(core_counts, {"logical_cores": os.cpu_count()})
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": _safe(package_versions, {}),
        "cpu_model": _safe(cpu_model),
        **cores,
        "cpu_freq": _safe(cpu_frequency),
        **_safe(cpu_config, {"governor": None, "driver": None, "turbo": None}),
        "memory_gb": _safe(memory_gb),
        "os": _safe(platform.platform),
        "hostname": _safe(socket.gethostname),
        "libraries": _safe(loaded_libraries, []),
        "jvm_blas": _safe(jvm_blas),
    }

    env["git_commit"] = None
    env["git_dirty"] = None
    rev_result = _safe(lambda: _finish(rev, GIT_TIMEOUT_S))
    status_result = _safe(lambda: _finish(status, GIT_TIMEOUT_S))
    if rev_result and rev_result[0] == 0:
        lines = rev_result[1].split()
        # Only the checkout that holds this source counts: an installed copy that happens to sit
        # inside some other repository (a venv in a project) must not report that repo's commit.
        if len(lines) == 2 and _safe(lambda: Path(lines[0]).resolve() == src, False):
            env["git_commit"] = lines[1]
            if status_result and status_result[0] == 0:
                env["git_dirty"] = bool(status_result[1].strip())

    env["java"] = None
    java_result = _safe(lambda: _finish(java, JAVA_TIMEOUT_S))
    if java_result and java_result[0] == 0:
        # The JVM may first announce JAVA_TOOL_OPTIONS ("Picked up ..."); skip such lines.
        lines = [
            line.strip()
            for line in (java_result[2] or java_result[1]).splitlines()
            if line.strip() and not line.startswith(("Picked up", "NOTE: Picked up"))
        ]
        env["java"] = lines[0] if lines else None
    return env
