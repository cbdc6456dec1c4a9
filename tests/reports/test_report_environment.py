"""The appendix's environment tables: what one run recorded, what several share and where
they differ."""

from __future__ import annotations

from types import SimpleNamespace

from reports.blocks import Paragraph, Table
from reports.environment import environment_section


def _run(run_id: str, env: dict[str, object]) -> SimpleNamespace:
    return SimpleNamespace(run_id=run_id, source="measured", started_at=None, n_trials=10,
                           experiments=("x",), argv=["runner", "trials"], env=env)  # fmt: skip


ENV = {"python": "3.11.7", "hostname": "vm", "packages": {"dask": "2026.8.0", "numpy": "2.4.6"}}
#: threadpoolctl's records, as runner.envinfo.loaded_libraries stores them
LIBRARIES = [
    {"user_api": "blas", "internal_api": "openblas", "num_threads": 2, "version": "0.3.30",
     "filepath": "/v/lib/scipy.libs/libscipy_openblas-6cdc3b4a.so", "architecture": "SkylakeX",
     "threading_layer": "pthreads"},
    {"user_api": "openmp", "internal_api": "openmp", "num_threads": 2, "version": None,
     "filepath": "/v/lib/scikit_learn.libs/libgomp-e985bcbb.so.1.0.0", "architecture": None},
]  # fmt: skip


def _tables(section: object) -> dict[str, Table]:
    return {b.id: b for b in section.blocks if isinstance(b, Table)}  # type: ignore[attr-defined]


def _paragraphs(section: object) -> list[str]:
    return [b.text for b in section.blocks if isinstance(b, Paragraph)]  # type: ignore[attr-defined]


def test_one_run_s_environment_names_the_run_and_every_package_s_version() -> None:
    section = environment_section([_run("r1", {**ENV, "libraries": LIBRARIES})])
    same = _tables(section)["env-same"]
    assert same.caption == "Environment of run r1"
    rows = dict(same.rows)
    assert rows["packages"] == "dask 2026.8.0, numpy 2.4.6"
    assert rows["python"] == "3.11.7"
    assert rows["libraries"] == (
        "openblas 0.3.30 (libscipy_openblas-6cdc3b4a.so, SkylakeX, 2 threads); "
        "openmp (libgomp-e985bcbb.so.1.0.0, 2 threads)"
    )
    # with one run there is nothing to differ: no sentence saying nothing differs
    assert not any("differs" in text for text in _paragraphs(section))


def test_several_runs_share_a_table_and_differ_in_another() -> None:
    other = {**ENV, "hostname": "box", "packages": {"dask": "2026.8.0", "numpy": "2.5.0"}}
    section = environment_section([_run("r1", ENV), _run("r2", other)])
    tables = _tables(section)
    assert tables["env-same"].caption == "Environment shared by all 2 runs that recorded one"
    rows = dict(tables["env-same"].rows)
    assert rows["packages"] == "dask 2026.8.0"  # numpy differs: not among the shared
    assert "hostname" not in rows
    differ = [t for name, t in tables.items() if name != "env-same" and name != "runs"]
    assert differ, tables.keys()
    keys = [row[0] for row in differ[0].rows]
    assert "hostname" in keys and "packages.numpy" in keys
    same = environment_section([_run("r1", ENV), _run("r2", ENV)])
    assert "Nothing in the recorded environments differs between runs." in _paragraphs(same)
