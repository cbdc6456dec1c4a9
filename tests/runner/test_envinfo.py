"""runner.envinfo: what collect_env records about this machine."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import namedtuple
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from runner import envinfo
from runner.envinfo import busy_warning, collect_env, load_snapshot

# envinfo's own file, not the ``runner`` package's: under pytest ``runner`` can resolve to a
# namespace package (tests/runner) without a __file__, while its modules still load from the source.
CHECKOUT = Path(envinfo.__file__).resolve().parent.parent
IS_CHECKOUT = (
    shutil.which("git") is not None
    and subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True
    ).returncode
    == 0
)


def test_keys_and_types() -> None:
    env = collect_env()
    assert isinstance(env["python"], str) and re.match(r"^\d+\.\d+\.\d+", env["python"])
    assert isinstance(env["implementation"], str) and env["implementation"]
    assert isinstance(env["packages"], dict)
    assert env["packages"]["duckdb"] == metadata.version("duckdb")
    assert env["packages"]["pandas"] == metadata.version("pandas")
    assert all(isinstance(v, str) for v in env["packages"].values())
    assert env["cpu_model"] is None or isinstance(env["cpu_model"], str)
    assert env["logical_cores"] == os.cpu_count()
    assert isinstance(env["memory_gb"], float) and env["memory_gb"] > 0
    assert isinstance(env["os"], str) and env["os"]
    assert isinstance(env["hostname"], str)
    assert isinstance(env["libraries"], list)
    assert env["jvm_blas"] is None or Path(env["jvm_blas"]).is_file()
    assert env["physical_cores"] is None or 1 <= env["physical_cores"] <= os.cpu_count()
    assert env["usable_cores"] == len(os.sched_getaffinity(0))
    assert env["governor"] is None or isinstance(env["governor"], str)
    assert env["cpu_freq"] is None or env["cpu_freq"]["current_mhz"] > 0
    assert env["git_dirty"] in (True, False, None)
    assert env["java"] is None or (isinstance(env["java"], str) and "\n" not in env["java"])
    json.dumps(env)  # stored as JSON in runs.env


def test_not_installed_packages_left_out() -> None:
    packages = collect_env()["packages"]
    for name in ("pyspark", "ray", "tensorflow"):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            assert name not in packages


@pytest.mark.skipif(not IS_CHECKOUT, reason="trialkit is not running from a git checkout")
def test_git_commit_of_checkout() -> None:
    env = collect_env()
    head = subprocess.run(
        ["git", "-C", str(CHECKOUT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{40}", env["git_commit"])
    assert env["git_commit"] == head
    assert isinstance(env["git_dirty"], bool)


def test_git_commit_independent_of_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = collect_env()["git_commit"]
    monkeypatch.chdir(tmp_path)  # not a repository: the commit still comes from the source folder
    assert collect_env()["git_commit"] == expected


@pytest.mark.skipif(shutil.which("java") is None, reason="no java on PATH")
def test_java_version_line() -> None:
    assert "version" in collect_env()["java"]


def test_fast() -> None:
    collect_env()  # warm caches (metadata, page cache)
    start = time.perf_counter()
    collect_env()
    assert time.perf_counter() - start < 1.0  # target 0.5 s; slack for loaded CI machines


# -- libraries loaded in this process (threadpoolctl) ------------------------------------------


def test_libraries_are_numpys_openblas_not_system_files() -> None:
    import numpy

    blas = numpy.__config__.CONFIG["Build Dependencies"]["blas"]
    if "openblas" not in str(blas.get("name")):
        pytest.skip(f"this NumPy is built against {blas.get('name')}, not OpenBLAS")
    libs = collect_env()["libraries"]
    numpy_dir = Path(numpy.__file__).resolve().parent.parent
    mine = [lib for lib in libs if Path(lib["filepath"]).resolve().is_relative_to(numpy_dir)]
    # NumPy's own build record names the OpenBLAS version it ships
    assert any(
        lib["internal_api"] == "openblas" and lib["version"] == blas["version"] for lib in mine
    ), (blas["version"], libs)
    assert all(lib["user_api"] in ("blas", "openmp") for lib in libs)
    assert all(isinstance(lib["num_threads"], int) and lib["num_threads"] >= 1 for lib in libs)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="no /proc/self/maps")
def test_libraries_are_mapped_into_this_process() -> None:
    libs = envinfo.loaded_libraries()
    maps = Path("/proc/self/maps").read_text()
    assert libs
    for lib in libs:  # the kernel's own list of mapped files, not threadpoolctl's
        assert os.path.realpath(lib["filepath"]) in maps, lib["filepath"]


# -- CPU frequency, governor, cores ------------------------------------------------------------


def _fake_cpus(root: Path, cpus: dict[int, dict[str, str]]) -> Path:
    for cpu, files in cpus.items():
        folder = root / f"cpu{cpu}" / "cpufreq"
        folder.mkdir(parents=True)
        for name, value in files.items():
            (folder / name).write_text(value + "\n")
    (root / "cpufreq").mkdir()  # not a CPU: must be ignored
    return root


def test_frequency_and_governor_from_sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _fake_cpus(
        tmp_path,
        {
            0: {
                "scaling_cur_freq": "1200000",
                "cpuinfo_min_freq": "800000",
                "cpuinfo_max_freq": "3400000",
                "scaling_governor": "powersave",
                "scaling_driver": "intel_pstate",
            },
            1: {
                "scaling_cur_freq": "3000000",
                "cpuinfo_min_freq": "800000",
                "cpuinfo_max_freq": "3600000",
                "scaling_governor": "performance",
                "scaling_driver": "intel_pstate",
            },
        },
    )
    (root / "intel_pstate").mkdir()
    (root / "intel_pstate" / "no_turbo").write_text("1\n")
    monkeypatch.setattr(envinfo, "_CPU_SYSFS", root)
    # kHz in sysfs: mean of 1.2 and 3.0 GHz, lowest minimum, highest maximum
    assert envinfo.cpu_frequency() == {
        "current_mhz": 2100.0,
        "min_mhz": 800.0,
        "max_mhz": 3600.0,
        "source": "sysfs",
    }
    assert envinfo.cpu_config() == {
        "governor": "cpu0=powersave, cpu1=performance",
        "driver": "intel_pstate",
        "turbo": False,
    }


def test_frequency_falls_back_to_psutil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    monkeypatch.setattr(envinfo, "_CPU_SYSFS", tmp_path)  # no cpufreq folders (a VM)
    monkeypatch.setattr(
        psutil, "cpu_freq", lambda: SimpleNamespace(current=2600.0, min=0.0, max=0.0)
    )
    assert envinfo.cpu_frequency() == {
        "current_mhz": 2600.0,
        "min_mhz": None,  # psutil's 0.0 means unknown
        "max_mhz": None,
        "source": "psutil",
    }
    assert envinfo.cpu_config() == {"governor": None, "driver": None, "turbo": None}


def test_core_counts() -> None:
    import psutil

    cores = envinfo.core_counts()
    assert cores["logical_cores"] == os.cpu_count()
    assert cores["physical_cores"] == psutil.cpu_count(logical=False)
    assert cores["usable_cores"] == len(os.sched_getaffinity(0))


# -- load ---------------------------------------------------------------------------------------

_Times = namedtuple("_Times", "user nice system idle iowait irq softirq steal guest guest_nice")


def test_load_snapshot_cpu_share(monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    # 4 s of CPU time pass: 2.5 s user (0.5 of it guest, already inside user), 0.5 s system,
    # 0.5 s idle, 0.5 s iowait -> busy 3.0 of 4.0 s = 75 %
    before = _Times(10.0, 0.0, 5.0, 100.0, 1.0, 0.0, 0.0, 0.0, 2.0, 0.0)
    after = _Times(12.5, 0.0, 5.5, 100.5, 1.5, 0.0, 0.0, 0.0, 2.5, 0.0)
    calls = iter([before, after])
    monkeypatch.setattr(psutil, "cpu_times", lambda: next(calls))
    snap = load_snapshot(interval_s=0.0)
    assert snap["cpu_percent"] == pytest.approx(75.0)
    assert snap["busy_cores"] == pytest.approx(0.75 * os.cpu_count())
    json.dumps(snap)


def test_load_snapshot_load_average() -> None:
    for _ in range(3):  # the kernel updates the averages every 5 s: retry across an update
        expected = os.getloadavg()
        snap = load_snapshot(interval_s=0.05)
        if os.getloadavg() == expected:
            break
    assert (snap["load_1"], snap["load_5"], snap["load_15"]) == pytest.approx(expected, abs=0.01)
    assert 0.0 <= snap["cpu_percent"] <= 100.0
    assert snap["logical_cores"] == os.cpu_count()
    assert snap["memory_available_gb"] > 0


def test_load_snapshot_sees_a_busy_core() -> None:
    # a child spinning on one core makes at least (about) that core busy, whatever else runs
    spin = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.time() + 5\nwhile time.time() < end: pass"]
    )
    try:
        time.sleep(0.3)
        snap = load_snapshot(interval_s=0.5)
    finally:
        spin.kill()
        spin.wait()
    assert snap["busy_cores"] >= 0.8


def test_busy_warning() -> None:
    busy = {"busy_cores": 1.6, "load_1": 1.8, "logical_cores": 2}
    assert busy_warning(busy, 2) == (
        "the machine is busy: 1.6 of 2 cores in use while no trial ran (load average 1.8); "
        "timings may be noisy"
    )
    assert busy_warning({**busy, "busy_cores": 1.0}, 2) is None  # exactly half: not more
    # right after a configuration the load average still counts our own trials: CPU decides
    assert busy_warning({**busy, "busy_cores": 0.1, "load_1": 3.0}, 2) is None
    assert busy_warning({**busy, "busy_cores": 1.6}, 8) is None  # on 8 cores that is little
    assert busy_warning({"busy_cores": None, "load_1": 1.8, "logical_cores": 2}) == (
        "the machine is busy: load average 1.8 on 2 cores; timings may be noisy"
    )
    assert busy_warning({"busy_cores": None, "load_1": 0.4, "logical_cores": 2}) is None
