"""The registry (runner/registry.py) is the one table of engine x workload cells, and the
runner's packages import each other without a cycle.

The import graph counts every import statement of runner/**/*.py, at module level AND inside
functions (and under ``if TYPE_CHECKING``): a function-level import is a dependency all the same,
only deferred. A cycle that goes through one works today by the timing of calls and breaks when
someone moves an import to the top; and it is the coupling the issue is about (engines' table
reading workloads, workloads checking preprocess, preprocess asking engines about addresses).
Sessions named as strings in the registry (imported with importlib when a session is made) are
not import statements and are not edges: that is how the table stays at the bottom.

The last test runs every cell of `runner list engines` for real (engine-marked)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import duckdb
import pytest

from runner import registry
from runner.config import Config
from runner.errors import RunnerError

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "runner"
#: The groups whose imports must not form a cycle: runner's subpackages and bottom modules.
GROUPS = ("engines", "workloads", "preprocess", "datasets", "registry", "config", "errors")


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every runner module ``path`` imports, at any depth of its code."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # ``from runner import registry``: the submodule is what is imported
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name == "runner" or name.startswith("runner.")}


def _group(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in GROUPS else None


def import_graph(root: Path = RUNNER) -> dict[str, set[str]]:
    """Group -> the groups it imports (self-imports left out)."""
    graph: dict[str, set[str]] = {g: set() for g in GROUPS}
    for path in sorted(root.rglob("*.py")):
        source = _group(_module_name(path, root))
        if source is None:
            continue
        for target in filter(None, map(_group, _imports(path))):
            if target != source:
                graph[source].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that starts and ends at the same node, or None."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_cycle_finder_finds_the_old_circle() -> None:
    # the circle issue 13 found: engines -> workloads -> preprocess -> engines
    old = {"engines": {"workloads"}, "workloads": {"preprocess"}, "preprocess": {"engines"}}
    cycle = find_cycle(old)
    assert cycle is not None and cycle[0] == cycle[-1] and len(cycle) == 4
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_import_graph_reads_function_level_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "runner"
    (pkg / "engines").mkdir(parents=True)
    (pkg / "workloads").mkdir()
    (pkg / "engines" / "__init__.py").write_text("def f():\n    from runner import workloads\n")
    (pkg / "workloads" / "__init__.py").write_text("import runner.engines.x\n")
    graph = import_graph(pkg)
    assert graph["engines"] == {"workloads"} and graph["workloads"] == {"engines"}
    assert find_cycle(graph) is not None


def test_runner_packages_import_without_a_cycle() -> None:
    graph = import_graph()
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph) or [])}"
    # the bottom: the registry imports only the error type, which imports nothing of runner
    assert graph["registry"] <= {"errors"}
    assert graph["errors"] == set()
    # and the resolved configuration every session reads: nothing of runner but the error type
    assert graph["config"] <= {"errors"}
    # the edges that made the circle are gone
    assert "engines" not in graph["preprocess"] and "engines" not in graph["workloads"]


# -- the table ------------------------------------------------------------------------------


def test_every_cell_names_a_known_engine_workload_and_session() -> None:
    from runner.workloads import WORKLOADS

    seen = set()
    for cell in registry.CELLS:
        assert cell.engine in registry.ENGINES, cell
        assert cell.workload in WORKLOADS, cell
        assert (cell.engine, cell.workload) not in seen, f"{cell.engine} x {cell.workload} twice"
        seen.add((cell.engine, cell.workload))
        assert cell.description
        module, _, attribute = cell.session.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, cell.session
        # the attribute is defined in that module (read, not imported: no engine starts here)
        tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
        defined = {n.name for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)}
        assert attribute in defined, cell.session
    # every workload runs somewhere
    assert {c.workload for c in registry.CELLS} == set(WORKLOADS)


def test_support_matrix_is_the_registry() -> None:
    from runner.engines import support_matrix

    text = support_matrix()
    header, *rows = text.split("\n\n")[0].splitlines()
    names = header.split()[2:]
    assert names == registry.workload_names()
    for row in rows:
        engine = row.split()[0]
        cells = row.split()[-len(names) :]
        for name, shown in zip(names, cells, strict=True):
            cell = registry.find_cell(engine, name)
            want = "-" if cell is None else (",".join(cell.impls) if cell.impls else "yes")
            assert shown == want, (engine, name, shown)
    for cell in registry.CELLS:
        assert f"  {cell.workload}: {cell.description}" in text


def test_checks_and_impls_read_the_registry() -> None:
    from runner.engines import check_supported, make_session
    from runner.workloads import MLP_IMPLS, mlp_impl

    for engine in registry.ENGINES:
        for workload in registry.workload_names():
            if registry.find_cell(engine, workload) is None:
                with pytest.raises(RunnerError, match=f"engine {engine} cannot run workload"):
                    check_supported(engine, workload, 1)
            else:
                check_supported(engine, workload, 1)
    assert {c.engine: c.impls for c in registry.CELLS if c.workload == "mlp"} == MLP_IMPLS
    assert mlp_impl({"engine": "spark"}) == "mllib"
    assert mlp_impl({"engine": "local", "impl": "scratch"}) == "scratch"
    # the session is the cell's (local sessions: nothing starts in the constructor)
    from runner.engines.local import Session as LocalSession
    from runner.preprocess.local import Session as PreprocessSession

    base = {"engine": "local", "experiment": "t", "seed": 0}
    assert type(make_session({**base, "workload": "knn"})) is LocalSession
    preprocess = {**base, "workload": "preprocess", "data_size": 8, "batch_size": 4}
    from runner.workloads import get_workload

    assert type(make_session(get_workload("preprocess").resolve(preprocess))) is PreprocessSession


def test_is_loopback_still_importable_from_engines() -> None:
    from runner.engines import is_loopback

    assert is_loopback("spark://127.0.0.1:7077") and is_loopback("localhost:1")
    assert not is_loopback("tcp://10.0.0.1:8786")


# -- the library defaults stored with a configuration ---------------------------------------


def _plain(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}


def test_knn_stores_scikit_learns_defaults() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    from runner.workloads import get_workload

    workload = get_workload("knn")
    config = workload.resolve({"engine": "local", "workload": "knn", "k": 7})
    expected = KNeighborsClassifier(n_neighbors=7).get_params()
    del expected["n_jobs"]
    assert config["estimator"] == {
        "class": "sklearn.neighbors.KNeighborsClassifier",
        "params": expected,
    }
    # what is stored is what runs: the estimator built for a trial has exactly these
    run = Config.from_mapping({**config, "experiment": "t", "seed": 0, "threads_per_worker": 2})
    built = workload.make_estimator(run, seed=0).get_params()
    assert built == {**expected, "n_jobs": 2}
    # k's default is the workload's resolve's: a configuration without k gets 5, stored
    assert workload.resolve({"engine": "local", "workload": "knn"})["k"] == 5


def test_sklearn_mlp_stores_every_default_it_ran_with() -> None:
    from sklearn.neural_network import MLPClassifier

    from runner.workloads import get_workload

    workload = get_workload("mlp")
    spec = {"engine": "dask", "workload": "mlp", "hidden": [64, 32], "epochs": 15}
    config = workload.resolve(spec)
    stored = config["estimator"]["params"]
    expected = _plain(MLPClassifier(hidden_layer_sizes=(64, 32), max_iter=15).get_params())
    del expected["random_state"]
    assert config["estimator"]["class"] == "sklearn.neural_network.MLPClassifier"
    assert stored == expected
    for key in ("learning_rate_init", "alpha", "tol", "n_iter_no_change", "batch_size"):
        assert key in stored
    assert stored["batch_size"] == "auto" and stored["max_iter"] == 15
    run = Config.from_mapping({**config, "experiment": "t", "seed": 0})
    built = workload.make_estimator(run, seed=4).get_params()
    assert _plain(built) == {**expected, "random_state": 4}
    # resolving again changes nothing; an estimator the spec sets itself is refused
    assert workload.resolve(config) == config
    with pytest.raises(RunnerError, match="estimator is filled in by the runner"):
        workload.resolve({**spec, "estimator": {"class": "x", "params": {"alpha": 1.0}}})
    # the Keras and scratch networks have no library estimator: their keys are the set-up
    assert "estimator" not in workload.resolve({"engine": "local", "impl": "scratch"})


def test_mllib_stores_its_defaults() -> None:
    from runner.workloads import MLLIB_MLP_DEFAULTS, get_workload

    config = get_workload("mlp").resolve({"engine": "spark", "workload": "mlp", "epochs": 50})
    params = config["estimator"]["params"]
    assert (
        config["estimator"]["class"] == "pyspark.ml.classification.MultilayerPerceptronClassifier"
    )
    assert params == {**MLLIB_MLP_DEFAULTS, "maxIter": 50}
    assert {"blockSize", "stepSize", "tol", "maxIter", "solver"} <= set(params)


def test_validation_split_has_one_default() -> None:
    from runner.workloads import get_workload
    from runner.workloads.keras_models import VALIDATION_SPLIT

    keras = get_workload("mlp").resolve({"engine": "tensorflow", "workload": "mlp"})
    cnn = get_workload("cnn").resolve({"engine": "tensorflow", "workload": "cnn"})
    assert keras["validation_split"] == cnn["validation_split"] == VALIDATION_SPLIT
    # no other module of runner/ writes a validation_split default of its own
    for path in RUNNER.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for literal in ('"validation_split": 0', 'validation_split") or 0'):
            assert literal not in text, (path, literal)


@pytest.mark.engine
def test_mllib_table_matches_pyspark() -> None:
    pytest.importorskip("pyspark")
    from pyspark.ml.classification import MultilayerPerceptronClassifier
    from pyspark.sql import SparkSession

    from runner.workloads import MLLIB_MLP_DEFAULTS

    spark = (
        SparkSession.builder.master("local[1]")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    try:
        defaults = {
            p.name: v for p, v in MultilayerPerceptronClassifier().extractParamMap().items()
        }
    finally:
        spark.stop()
    assert {k: defaults[k] for k in MLLIB_MLP_DEFAULTS} == MLLIB_MLP_DEFAULTS


# -- every cell runs ------------------------------------------------------------------------

#: The smallest settings per workload: one trial on (part of) digits.
SMALL = {
    "knn": {"k": 3},
    "mlp": {"epochs": 2},
    "cnn": {"epochs": 1},
    "preprocess": {"data_size": 16, "batch_size": 8},
}


def every_cell_spec(cells: list[registry.Cell] | None = None) -> str:
    """An experiment of one small configuration per cell (of the registry, or ``cells``)."""
    lines = [
        'name = "every-cell"',
        "n = 1",
        "warmup = 0",
        "seed = 5",
        "timeout = 300",
        "",
        "[defaults]",
        'dataset = "digits"',
        "data_fraction = 0.3",
        "workers = 1",
        "threads_per_worker = 1",
        "",
    ]
    for workload, params in SMALL.items():
        lines.append(f"[workloads.{workload}]")
        lines += [f"{k} = {v}" for k, v in params.items()]
        lines.append("")
    for cell in registry.CELLS if cells is None else cells:
        lines += ["[[matrix]]", f'engine = "{cell.engine}"', f'workload = "{cell.workload}"', ""]
    return "\n".join(lines)


def _ok_rows(db: Path) -> list[tuple]:
    """(engine, workload, accuracy, train_accuracy_n, throughput_ips, dataset, data_fraction) of
    ``db``'s ok measured trials (columns a database without them lacks are None)."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        have = {r[0] for r in con.execute("DESCRIBE observations").fetchall()}
        columns = ("engine", "workload", "accuracy", "train_accuracy_n", "throughput_ips")
        columns += ("dataset", "data_fraction")
        select = ", ".join(c if c in have else f"NULL AS {c}" for c in columns)
        return con.execute(
            f"SELECT {select} FROM observations WHERE status = 'ok' AND NOT warmup"
        ).fetchall()
    finally:
        con.close()


def _cell_ran(row: tuple) -> bool:
    """Whether an ok trial shows its cell working: a pre-processing throughput; no model for
    noop (tests/runner/test_noop.py checks its metrics); otherwise an accuracy above chance and
    every training row scored for train_accuracy (digits has fewer than 10,000)."""
    from runner.datasets import load_split

    engine, workload, accuracy, n_train, ips, dataset, fraction = row
    if workload == "preprocess":
        return ips is not None and ips > 0
    if workload == "noop":
        return accuracy is None
    if dataset != "digits" or accuracy is None or accuracy <= 0.1:
        return False
    # the number of rows a fraction keeps does not depend on the split's seed
    return n_train == len(load_split("digits", seed=0, data_fraction=fraction or 1.0).y_train)


@pytest.mark.engine
def test_every_cell_of_the_registry_runs(tmp_path: Path) -> None:
    """Every cell runs through `runner trials`. Cells an engine suite already ran in this pytest
    session (tests.conftest.RUNS, e.g. test_engine_keras's CNN on Dask) count when one of their
    ok trials passes _cell_ran; the others run here, one small configuration each, and every one
    of those trials must pass it."""
    from tests.conftest import RUNS, run_spec

    ran: dict[tuple[str, str], Path] = {}
    for db in RUNS:
        for row in _ok_rows(db):
            if _cell_ran(row):
                ran.setdefault((row[0], row[1]), db)
    rest = [c for c in registry.CELLS if (c.engine, c.workload) not in ran]
    if rest:
        db = run_spec(tmp_path, every_cell_spec(rest), ok_trials=len(rest), timeout=1200)
        rows = _ok_rows(db)
        assert {(r[0], r[1]) for r in rows} == {(c.engine, c.workload) for c in rest}
        for row in rows:
            assert _cell_ran(row), row
            ran[(row[0], row[1])] = db
    assert set(ran) == {(c.engine, c.workload) for c in registry.CELLS}, sorted(ran)


def test_cell_ran_checks_what_a_cell_leaves() -> None:
    digits_03 = 431  # floor(0.3 x 1437): train_test_split rounds a train_size fraction down
    assert _cell_ran(("local", "knn", 0.95, digits_03, None, "digits", 0.3))
    assert not _cell_ran(("local", "knn", 0.95, digits_03 - 1, None, "digits", 0.3))
    assert not _cell_ran(("local", "knn", 0.05, digits_03, None, "digits", 0.3))
    assert not _cell_ran(("local", "knn", None, digits_03, None, "digits", 0.3))
    assert _cell_ran(("dask", "mlp", 0.9, 1437, None, "digits", 1.0))
    assert _cell_ran(("ray", "preprocess", None, None, 120.0, "digits", 1.0))
    assert not _cell_ran(("ray", "preprocess", None, None, None, "digits", 1.0))
    assert _cell_ran(("local", "noop", None, None, None, "digits", 1.0))
    assert not _cell_ran(("local", "noop", 0.5, None, None, "digits", 1.0))
