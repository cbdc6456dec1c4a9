"""Experiment specs: expansion, overrides and validation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from runner.errors import RunnerError
from runner.spec import (
    builtin_experiments,
    config_id,
    experiment_info,
    load_experiment,
    resolve_experiment,
)
from tests.conftest import assert_user_error, run_cli


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return str(path)


def test_default_experiment_expands_to_local_and_dask_grid() -> None:
    exp = load_experiment("default")
    cells = {(c["engine"], c["workload"], c["workers"]) for c in exp.configs}
    assert cells == {
        ("local", "knn", 1),
        ("local", "mlp", 1),
        ("dask", "knn", 1),
        ("dask", "knn", 2),
        ("dask", "mlp", 1),
        ("dask", "mlp", 2),
    }
    assert exp.n == 10 and exp.warmup == 1
    knn = next(c for c in exp.configs if c["workload"] == "knn")
    assert knn["k"] == 5 and knn["dataset"] == "digits"


def test_options_filter_a_named_spec_and_override_its_numbers() -> None:
    exp = load_experiment("default", engines=["dask"], workloads=["knn"], workers=[2], n=3)
    assert [c["workers"] for c in exp.configs] == [2]
    assert exp.n == 3
    # a grid built from the options: local stays at one worker, dask gets those asked for
    exp = load_experiment(engines=["local", "dask"], workloads=["knn"], workers=[1, 2, 3])
    assert sorted((c["engine"], c["workers"]) for c in exp.configs) == [
        ("dask", 1),
        ("dask", 2),
        ("dask", 3),
        ("local", 1),
    ]


def test_lists_cross_and_list_params_stay_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[matrix]]
engine = "local"
workload = "mlp"
hidden = [[10], [20, 10]]
epochs = [5, 10]
""",
    )
    exp = load_experiment(path)
    assert sorted((tuple(c["hidden"]), c["epochs"]) for c in exp.configs) == [
        ((10,), 5),
        ((10,), 10),
        ((20, 10), 5),
        ((20, 10), 10),
    ]
    assert len({config_id(c) for c in exp.configs}) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[matrix]]\nengine = "spork"\nworkload = "knn"\n', "unknown engine 'spork'"),
        ('[[matrix]]\nengine = "local"\nworkload = "svm"\n', "unknown workload 'svm'"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\nworkers = 2\n', "workers=1 only"),
        ('[[matrix]]\nengine = "dask"\nworkload = "knn"\nworkers = 0\n', "workers must be"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\nk = 0\n', "k must be"),
        ('[[matrix]]\nengine = "local"\nworkload = "mlp"\nimpl = "keras"\n', "impl 'keras'"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\ndataset = "cifar"\n', "unknown dataset"),
        ('[[matrix]]\nengine = "local"\nworkload = "knn"\ndata_fraction = 2\n', "data_fraction"),
        ('nn = 3\n[[matrix]]\nengine = "local"\nworkload = "knn"\n', "unknown key(s) nn"),
        ("n = 3\n", "no [[matrix]]"),
        (
            '[[matrix]]\nengine = "spark"\nworkload = "mlp"\nactivation = "relu"\n',
            "always logistic",
        ),
        ("[[matrix\n", "not valid TOML"),
    ],
)
def test_bad_specs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RunnerError, match=re.escape(message)):
        load_experiment(write(tmp_path, text))


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match="--n must be an integer from 1"):
        load_experiment("default", n=0)
    with pytest.raises(RunnerError, match="--n must be an integer from 1"):
        load_experiment("default", n=-3)
    with pytest.raises(RunnerError, match="unknown experiment 'nope'"):
        load_experiment("nope")
    with pytest.raises(RunnerError, match="--timeout must be a number of seconds > 0"):
        load_experiment("default", timeout=0)
    only_local = write(tmp_path, '[[matrix]]\nengine = "local"\nworkload = "knn"\n')
    with pytest.raises(RunnerError, match="has no configuration with engine dask"):
        load_experiment(only_local, engines=["dask"])


SPARK_MODE_SPEC = """
[defaults]
spark_mode = "standalone"

[[matrix]]
engine = ["spark", "dask"]
workload = "knn"
workers = 2

[[matrix]]
engine = "spark"
workload = "mlp"
spark_mode = ["local", "standalone"]
"""


def test_spark_mode_is_a_spark_parameter(tmp_path: Path) -> None:
    exp = load_experiment(write(tmp_path, SPARK_MODE_SPEC))
    modes = sorted((c["engine"], c["workload"], c.get("spark_mode", "-")) for c in exp.configs)
    # [defaults] reaches spark only; "local" (the default) is not stored; a list gives levels
    assert modes == [
        ("dask", "knn", "-"),
        ("spark", "knn", "standalone"),
        ("spark", "mlp", "-"),
        ("spark", "mlp", "standalone"),
    ]
    # a dask configuration's id does not depend on a spark-only default
    plain = load_experiment(
        write(tmp_path, SPARK_MODE_SPEC.replace('spark_mode = "standalone"', ""))
    )
    ids = {config_id(c) for c in plain.configs if c["engine"] == "dask"}
    assert ids == {config_id(c) for c in exp.configs if c["engine"] == "dask"}
    # spelling out the default changes no spark configuration's id either
    local = load_experiment(write(tmp_path, SPARK_MODE_SPEC.replace('"standalone"', '"local"', 1)))
    assert config_id(local.configs[0]) == config_id(plain.configs[0])


def test_strategy_in_defaults_is_a_tensorflow_parameter(tmp_path: Path) -> None:
    text = """
[defaults]
strategy = "mirrored"
workers = 2

[workloads.mlp]
strategy = "none"

[[matrix]]
engine = ["tensorflow", "dask"]
workload = "cnn"

[[matrix]]
engine = "dask"
workload = ["knn", "mlp"]

[[matrix]]
engine = "tensorflow"
workload = "mlp"
"""
    exp = load_experiment(write(tmp_path, text))
    got = sorted((c["engine"], c["workload"], c.get("strategy", "-")) for c in exp.configs)
    assert got == [
        ("dask", "cnn", "-"),
        ("dask", "knn", "-"),
        ("dask", "mlp", "-"),
        ("tensorflow", "cnn", "mirrored"),
        ("tensorflow", "mlp", "none"),
    ]


def test_spark_mode_option_overrides_the_spec_for_spark_only(tmp_path: Path) -> None:
    path = write(tmp_path, SPARK_MODE_SPEC)
    exp = load_experiment(path, spark_mode="local")
    assert all("spark_mode" not in c for c in exp.configs)
    exp = load_experiment(path, spark_mode="standalone")
    spark = [c for c in exp.configs if c["engine"] == "spark"]
    assert len(spark) == 2 and all(c["spark_mode"] == "standalone" for c in spark)
    assert all("spark_mode" not in c for c in exp.configs if c["engine"] == "dask")
    # meaningless without spark configurations, but still checked
    assert load_experiment("default", spark_mode="standalone").configs
    with pytest.raises(RunnerError, match=r"--spark-mode must be one of local, standalone"):
        load_experiment("default", spark_mode="yarn")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'spark_mode = "yarn"\n[[matrix]]\nengine = "spark"\nworkload = "knn"\n',
            "spark_mode must be one of local, standalone, got 'yarn'",
        ),
        (
            '[[matrix]]\nengine = "spark"\nworkload = "knn"\nspark_mode = ["local", "k8s"]\n',
            "spark_mode must be one of local, standalone, got 'k8s'",
        ),
        (
            '[[matrix]]\nengine = ["spark", "dask"]\nworkload = "knn"\nspark_mode = "local"\n',
            "spark_mode applies to engine spark only, not dask",
        ),
        (
            '[workloads.knn]\nspark_mode = "cluster"\n'
            '[[matrix]]\nengine = "dask"\nworkload = "knn"\n',
            "[workloads.knn]: spark_mode must be one of local, standalone",
        ),
    ],
)
def test_bad_spark_modes_are_refused(tmp_path: Path, text: str, message: str) -> None:
    if text.startswith("spark_mode"):  # in [defaults]
        text = "[defaults]\n" + text
    with pytest.raises(RunnerError, match=re.escape(message)) as info:
        load_experiment(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_a_standalone_cluster_and_an_existing_master_exclude_each_other(tmp_path: Path) -> None:
    spark = {"spark": "spark://127.0.0.1:7077"}
    path = write(tmp_path, '[[matrix]]\nengine = "spark"\nworkload = "knn"\n')
    with pytest.raises(RunnerError, match="choose one"):
        load_experiment(path, spark_mode="standalone", addresses=spark)
    standalone = write(tmp_path, SPARK_MODE_SPEC)
    with pytest.raises(RunnerError, match=r"spark_mode 'standalone'.*--spark-master.*choose one"):
        load_experiment(standalone, addresses=spark)
    # local mode with a master is the existing-cluster mode, as before
    exp = load_experiment(standalone, addresses=spark, spark_mode="local")
    assert {c.get("address") for c in exp.configs if c["engine"] == "spark"} == {spark["spark"]}


# --- the tensorflow engine's workloads (cnn, mlp impl keras) and its strategy -----------------


def test_tensorflow_configurations_store_what_runs(tmp_path: Path) -> None:
    exp = load_experiment(
        write(
            tmp_path,
            '[[matrix]]\nengine = "tensorflow"\nworkload = ["cnn", "mlp"]\n'
            '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\nstrategy = "mirrored"\n'
            "workers = 2\nepochs = 3\n",
        )
    )
    cnn, mlp, mirrored = exp.configs
    assert cnn["strategy"] == "none" and mirrored["strategy"] == "mirrored"
    assert (cnn["epochs"], cnn["batch_size"], cnn["learning_rate"]) == (10, 32, 0.001)
    assert cnn["validation_split"] == 0.1
    assert (mirrored["workers"], mirrored["epochs"]) == (2, 3)
    assert mlp["impl"] == "keras" and mlp["hidden"] == [100, 50]
    assert (mlp["activation"], mlp["output"], mlp["learning_rate"]) == ("relu", "tanh", 0.1)
    # spelling out the default strategy is the same configuration
    spelled = load_experiment(
        write(tmp_path, '[[matrix]]\nengine = "tensorflow"\nworkload = "cnn"\nstrategy = "none"\n')
    )
    assert config_id(spelled.configs[0]) == config_id(cnn)


def test_image_shapes_are_known_before_loading(tmp_path: Path) -> None:
    from runner.workloads import dataset_image_shape
    from tests.runner.test_datasets import tiny, write_dataset

    assert dataset_image_shape("digits") == (8, 8)
    folder = write_dataset(tmp_path / "idx", tiny())  # 5x7 images, gzipped
    assert dataset_image_shape("mnist", str(folder)) == (5, 7)
    assert dataset_image_shape("emnist", str(folder)) == (7, 5)  # stored transposed
    broken = folder / "train-images-idx3-ubyte.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(RunnerError, match="cannot read"):
        dataset_image_shape("mnist", str(folder))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('engine = "tensorflow"\nworkload = "cnn"\nstrategy = "tpu"\n', "unknown strategy 'tpu'"),
        (
            'engine = "tensorflow"\nworkload = "cnn"\nstrategy = "multiworker"\n',
            "strategy multiworker runs `workers` TensorFlow processes and needs workers >= 2, "
            "got 1",
        ),
        ('engine = "tensorflow"\nworkload = "cnn"\nbatch_size = 0\n', "batch_size must be"),
        ('engine = "tensorflow"\nworkload = "cnn"\nepochs = 1.5\n', "epochs must be"),
        (
            'engine = "tensorflow"\nworkload = "cnn"\nstrategy = "mirrored"\nworkers = 4\n'
            "batch_size = 2\n",
            "batch_size 2 is too small; raise batch_size to at least 4 or lower workers",
        ),
        (
            'engine = "tensorflow"\nworkload = "cnn"\nstrategy = "multiworker"\nworkers = 2\n'
            "batch_size = 1\n",
            "strategy multiworker splits each batch over the 2 workers",
        ),
        ('engine = "tensorflow"\nworkload = "cnn"\nhidden = [10]\n', "cnn: hidden does not"),
        ('engine = "tensorflow"\nworkload = "mlp"\nsolver = "adam"\n', "solver applies"),
        ('engine = "tensorflow"\nworkload = "knn"\n', "cannot run workload 'knn'"),
        ('engine = "spark"\nworkload = "cnn"\n', "supports: knn, mlp, preprocess"),
        (
            'engine = "spark"\nworkload = "mlp"\nimpl = "keras"\nstrategy = "none"\n',
            "engine tensorflow only",
        ),
        ('engine = "ray"\nworkload = "knn"\nstrategy = "none"\n', "engine tensorflow only"),
        ('engine = "local"\nworkload = "mlp"\nvalidation_split = 0.2\n', "impl keras only"),
    ],
)
def test_bad_tensorflow_specs_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(RunnerError, match=re.escape(message)) as info:
        load_experiment(write(tmp_path, "[[matrix]]\n" + text))
    assert "\n" not in str(info.value)


def test_cnn_needs_square_images(tmp_path: Path) -> None:
    from tests.runner.test_datasets import tiny, write_dataset

    folder = write_dataset(tmp_path / "idx", tiny())
    cell = '[[matrix]]\nengine = "tensorflow"\ndataset = "mnist"\nworkload = '
    path = write(tmp_path, cell + '"cnn"\n')
    with pytest.raises(RunnerError, match=re.escape("cnn: dataset mnist has 5x7 images")):
        load_experiment(path, data_dir=str(folder))
    # the same files are fine for the MLP
    path = write(tmp_path, cell + '"mlp"\n')
    assert load_experiment(path, data_dir=str(folder)).configs


QUICK_SPEC = """
name = "q"
description = "A small grid. With a second sentence."
n = 10
warmup = 1
timeout = 600
expected_minutes = {full = 12, quick = 2.5}

[[matrix]]
engine = "dask"
workload = "knn"
workers = [1, 2]
k = [1, 3, 5]

[quick]
n = 2
warmup = 0
timeout = 30
where = {workers = 1, k = [1, 5]}
"""


def test_quick_overrides_n_warmup_timeout_and_filters_the_grid(tmp_path: Path) -> None:
    path = write(tmp_path, QUICK_SPEC)
    full = load_experiment(path)
    assert (full.n, full.warmup, full.timeout, full.quick) == (10, 1, 600, False)
    assert len(full.configs) == 6
    quick = load_experiment(path, quick=True)
    assert (quick.n, quick.warmup, quick.timeout, quick.quick) == (2, 0, 30, True)
    assert sorted((c["workers"], c["k"]) for c in quick.configs) == [(1, 1), (1, 5)]
    # the quick configurations are the full ones (same ids), just fewer of them
    assert {config_id(c) for c in quick.configs} <= {config_id(c) for c in full.configs}
    # the stored spec says which variant ran, and how long each is expected to take
    stored = quick.to_dict()
    assert stored["quick"] is True and full.to_dict()["quick"] is False
    assert stored["expected_minutes"] == {"full": 12.0, "quick": 2.5}
    # options still override the quick values
    assert load_experiment(path, quick=True, n=5).n == 5


def test_quick_matrix_replaces_the_grid(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        QUICK_SPEC.replace(
            "where = {workers = 1, k = [1, 5]}",
            '[[quick.matrix]]\nengine = "local"\nworkload = "knn"\nk = 7\n',
        ),
    )
    quick = load_experiment(path, quick=True)
    assert [(c["engine"], c["k"]) for c in quick.configs] == [("local", 7)]


def test_quick_where_skips_configurations_without_the_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[matrix]]
engine = "local"
workload = "knn"

[[matrix]]
engine = "local"
workload = "mlp"
solver = ["adam", "sgd"]

[quick]
where = {solver = "adam"}
""",
    )
    quick = load_experiment(path, quick=True)
    assert sorted((c["workload"], c.get("solver", "-")) for c in quick.configs) == [
        ("knn", "-"),
        ("mlp", "adam"),
    ]


@pytest.mark.parametrize(
    ("quick", "message"),
    [
        (
            "[quick]\nnn = 2\n",
            "[quick] has unknown key(s) nn; allowed: n, warmup, timeout, rounds, matrix",
        ),
        ("[quick]\nwhere = {wrkers = 1}\n", "where.wrkers names no key"),
        ("[quick]\nwhere = {workers = 5}\n", "where keeps no configuration"),
        ("[quick]\nwhere = 3\n", "where must be a table"),
        ("quick = 3\n", "[quick] must be a table"),
        ("expected_minutes = {full = 3, fast = 1}\n", "unknown key(s) fast; allowed: full, quick"),
        ("expected_minutes = {full = -1}\n", "expected_minutes.full must be a number"),
        ("expected_minutes = 3\n", "expected_minutes must be a table"),
        ("[quick]\nn = 0\n", "[quick] n must be an integer from 1 to 1,000,000, got 0"),
        ('[quick]\nwarmup = "1"\n', "[quick] warmup must be an integer from 0 to"),
        ("[quick]\ntimeout = 0\n", "[quick] timeout must be a number of seconds > 0"),
        (
            "n = 2.5\n[quick]\nwarmup = 0\n",
            "exp.toml: n must be an integer from 1 to 1,000,000, got 2.5",
        ),
    ],
)
def test_bad_quick_tables_are_refused(tmp_path: Path, quick: str, message: str) -> None:
    body = '[[matrix]]\nengine = "dask"\nworkload = "knn"\nworkers = [1, 2]\n'
    top, _, table = quick.partition("[quick]")
    path = write(tmp_path, top + body + ("[quick]" + table if table else ""))
    with pytest.raises(RunnerError, match=re.escape(message)):
        load_experiment(path, quick=True)


def test_quick_without_a_quick_table_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[[matrix]]\nengine = "local"\nworkload = "knn"\n')
    with pytest.raises(RunnerError, match=r"has no \[quick\] table"):
        load_experiment(path, quick=True)


def test_paper_002_and_003_quick_variants_are_subsets() -> None:
    for key in ("002", "003"):
        full, quick = load_experiment(key), load_experiment(key, quick=True)
        assert quick.quick and quick.n < full.n and len(quick.configs) < len(full.configs)
        assert {config_id(c) for c in quick.configs} <= {config_id(c) for c in full.configs}
    full = load_experiment("002")
    impls = {(c["engine"], c["impl"], c.get("solver")) for c in full.configs}
    assert impls == {
        ("local", "scratch", None),
        ("local", "sklearn", None),
        ("tensorflow", "keras", None),
        ("spark", "keras", None),
        ("spark", "mllib", "l-bfgs"),
        ("spark", "mllib", "gd"),
    }
    fractions = {c["data_fraction"] for c in full.configs if c.get("solver") == "l-bfgs"}
    assert fractions == {0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}
    table3 = {
        (c["strategy"], c["batch_size"])
        for c in load_experiment("003").configs
        if c["workload"] == "cnn"
    }
    assert table3 == {
        (s, b) for s in ("none", "mirrored", "multiworker") for b in (32, 64, 128, 256, 512)
    }


def test_a_bare_paper_key_names_its_experiment() -> None:
    assert resolve_experiment("003") == resolve_experiment("paper003")
    assert resolve_experiment("003").name == "paper003.toml"
    with pytest.raises(RunnerError, match="unknown experiment '999'"):
        resolve_experiment("999")


def test_experiment_info_reads_the_first_sentence(tmp_path: Path) -> None:
    info = experiment_info(write(tmp_path, QUICK_SPEC))
    assert info.name == "q" and info.has_quick
    assert info.summary == "A small grid."
    assert dict(info.expected_minutes) == {"full": 12.0, "quick": 2.5}


def test_every_builtin_experiment_loads_with_its_times() -> None:
    for name in builtin_experiments():
        info = experiment_info(name)
        assert info.summary, name
        if name.startswith("paper"):  # every paper's spec has a CI variant and its run times
            assert info.has_quick, f"{name} has no [quick] table"
            assert set(info.expected_minutes) == {"full", "quick"}, name
            load_experiment(name, quick=True)


def test_list_experiments_aligns_times_and_first_sentences() -> None:
    proc = run_cli("runner", "list", "experiments")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["experiment", "full", "quick", "description"]
    # every description starts in the header's column
    desc_col = lines[0].index("description")
    for name, line in zip(builtin_experiments(), lines[1:], strict=True):
        assert line.startswith(name)
        assert line[desc_col - 2 : desc_col] == "  " and line[desc_col] != " "
    assert run_cli("runner", "trials", "-e", "paper003", "--quick", "--help").returncode == 0


def test_trials_quick_without_quick_table_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[matrix]]\nengine = "local"\nworkload = "knn"\n')
    db = tmp_path / "r.duckdb"
    line = assert_user_error(run_cli("runner", "trials", "-e", path, "--quick", "--db", db))
    assert "has no [quick] table" in line
    assert not db.exists()


KNN = '[[matrix]]\nengine = "local"\nworkload = "knn"\n'


@pytest.mark.parametrize(
    ("text", "where", "unknown", "own"),
    [
        (KNN + "foo = 2\n", "[[matrix]] entry 1", "knn takes no parameter foo", "k"),
        ("[defaults]\nfoo = 2\n" + KNN, "[defaults]", "knn takes no parameter foo", "k"),
        ("[workloads.knn]\nhidden = [5]\n" + KNN, "[workloads.knn]", "parameter hidden", "k"),
        (
            '[[matrix]]\nengine = "local"\nworkload = "noop"\nk = 3\n',
            "[[matrix]] entry 1",
            "noop takes no parameter k",
            "metrics, spin",
        ),
        (
            '[[matrix]]\nengine = "local"\nworkload = "mlp"\nkk = 3\n',
            "[[matrix]] entry 1",
            "mlp takes no parameter kk",
            "impl, hidden, activation, output, solver, learning_rate, validation_split",
        ),
    ],
)
def test_a_key_the_workload_does_not_take_is_refused_with_its_parameters(
    tmp_path: Path, text: str, where: str, unknown: str, own: str
) -> None:
    with pytest.raises(RunnerError) as info:
        load_experiment(write(tmp_path, 'name = "t"\n' + text))
    message = str(info.value)
    assert f"experiment exp.toml, {where}: " in message and unknown in message
    assert f"its parameters: {own};" in message
    assert "labels: table, figure" in message and "\n" not in message


def test_the_workload_parameters_are_listed_once() -> None:
    from runner.workloads import LABELS, RUNNER_KEYS, WORKLOADS

    for workload in WORKLOADS.values():
        # every default a workload fills in is one of its parameters or a factor
        for key in workload.defaults:
            assert workload.takes(key), (workload.name, key)
        assert not set(workload.params) & (set(LABELS) | set(RUNNER_KEYS))
    assert WORKLOADS["knn"].params == ("k",)


def test_a_param_from_the_command_line_goes_to_the_workloads_that_take_it() -> None:
    exp = load_experiment(workloads=["knn", "mlp"], params={"hidden": [[10]]})
    by_workload = {c["workload"]: c for c in exp.configs}
    assert by_workload["mlp"]["hidden"] == [10] and "hidden" not in by_workload["knn"]
    with pytest.raises(RunnerError, match=r"^--param foo: knn takes no parameter foo; its "):
        load_experiment(workloads=["knn"], params={"foo": [2]})
    # a label goes to every configuration
    exp = load_experiment(workloads=["knn", "mlp"], params={"table": ["T1"]})
    assert {c["table"] for c in exp.configs} == {"T1"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("seed = -1\n" + KNN, "seed must be an integer >= 0, got -1"),
        ('seed = "abc"\n' + KNN, "seed must be an integer >= 0, got 'abc'"),
        ("seed = 1.5\n" + KNN, "seed must be an integer >= 0, got 1.5"),
        ("seed = 4294967296\n" + KNN, "at most 2,147,483,647"),
        (KNN + "seed = 5\n", "seed is set once, at the top of the spec"),
        (KNN + 'experiment = "x"\n', "experiment is set once, at the top of the spec (name"),
        ("matrix = [1, 2]\n", "[[matrix]] entry 1 must be a table of keys, got 1"),
        ("defaults = 3\n" + KNN, "defaults must be a table ([defaults]), got 3"),
        ("workloads = 3\n" + KNN, "workloads must be a table ([workloads]), got 3"),
        ("workloads = {knn = 3}\n" + KNN, "workloads.knn must be a table"),
        ("description = 3\n" + KNN, "description must be a string, got 3"),
        (KNN + 'k = "five"\n', "knn: k must be an integer >= 1, got 'five'"),
        (KNN + "k = {a = 1}\n", "k = a table cannot be stored"),
        (KNN + "k = 1979-05-27\n", "k = a date or time cannot be stored"),
        (KNN + "k = nan\n", "k = nan cannot be stored"),
        (KNN + "k = 10000000000000000000\n", "cannot be stored"),
        (KNN + "k = 9223372036854775807\n", "k must be an integer from 1 to 1,000,000"),
        (KNN + "table = inf\n", "table = inf cannot be stored"),
        (KNN + "memory_gb = nan\n", "memory_gb = nan cannot be stored"),
        ("expected_minutes = {full = nan}\n" + KNN, "expected_minutes.full must be a number"),
        ("[quick]\nmatrix = [3]\n" + KNN, "matrix must be [[quick.matrix]] entries"),
        (
            '[[matrix]]\nengine = "local"\nworkload = "mlp"\nhidden = "big"\n',
            "hidden must be a list of layer sizes",
        ),
        (
            '[[matrix]]\nengine = "local"\nworkload = "mlp"\nhidden = [[[1]]]\n',
            "hidden = too deeply nested cannot be stored",
        ),
        (
            '[[matrix]]\nengine = "local"\nworkload = "mlp"\nhidden = [1000000000000]\n',
            "hidden layer sizes must be at most 1,000,000",
        ),
        (
            '[[matrix]]\nengine = "local"\nworkload = "mlp"\nlearning_rate = 1e400\n',
            "learning_rate = inf cannot be stored",
        ),
        (
            '[[matrix]]\nengine = "local"\nworkload = "noop"\nmetrics = 100000\n',
            "metrics must be an integer from 0 to 1,000",
        ),
    ],
)
def test_ill_typed_spec_values_are_one_line_errors(tmp_path: Path, text: str, message: str):
    with pytest.raises(RunnerError) as info:
        load_experiment(write(tmp_path, 'name = "t"\n' + text))
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


@pytest.mark.parametrize("name", ["3", "{a = 1}", '""', '"' + "x" * 257 + '"'])
def test_the_name_is_a_short_string(tmp_path: Path, name: str) -> None:
    with pytest.raises(RunnerError, match="name must be a non-empty string of at most 256"):
        load_experiment(write(tmp_path, f"name = {name}\n" + KNN))


def test_the_seed_option_is_checked(tmp_path: Path) -> None:
    with pytest.raises(RunnerError, match=r"^--seed must be an integer >= 0, got -1$"):
        load_experiment("default", seed=-1)
    with pytest.raises(RunnerError, match="--seed must be an integer >= 0 and at most"):
        load_experiment("default", seed=2**32)
    assert load_experiment("default", seed=2**31 - 1).seed == 2**31 - 1
