"""The machine and software a run happened on, recorded in ``runs.env``.

:func:`collect_env` is cheap (well under half a second: the git and java probes run in parallel)
and never raises: a probe that fails records ``None`` (or leaves a package out) instead.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
from collections.abc import Callable, Sequence
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
#: Shared-library name prefixes that tell whether a native BLAS is installed (Spark MLlib uses one).
_BLAS_PREFIXES = ("libblas.so", "libopenblas", "libmkl_rt.so")
_LIB_DIRS = ("/usr/lib", "/usr/lib64", "/lib64", "/usr/local/lib")


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


def blas_libraries() -> list[str]:
    """File names of native BLAS libraries found in the usual library folders (Linux)."""
    dirs = [Path(d) for d in _LIB_DIRS]
    for base in ("/usr/lib", "/lib"):
        dirs += sorted(Path(base).glob("*-linux-gnu"))
    found: set[str] = set()
    for folder in dirs:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        found.update(n for n in names if n.startswith(_BLAS_PREFIXES))
    return sorted(found)


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
    """Describe this machine and software: python, package versions, CPU, memory, OS, hostname,
    the project's git commit (and whether the checkout has local changes), java, native BLAS."""
    git = shutil.which("git")
    src = _source_dir()
    # Start the slow probes first, then gather the cheap facts while they run.
    rev = _start([git, "-C", str(src), "rev-parse", "--show-toplevel", "HEAD"]) if git else None
    status = _start([git, "-C", str(src), "status", "--porcelain"]) if git else None
    java_exe = _safe(_java_executable)
    java = _start([java_exe, "-version"]) if java_exe else None

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "packages": _safe(package_versions, {}),
        "cpu_model": _safe(cpu_model),
        "logical_cores": os.cpu_count(),
        "memory_gb": _safe(memory_gb),
        "os": _safe(platform.platform),
        "hostname": _safe(socket.gethostname),
        "blas": _safe(blas_libraries, []),
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
