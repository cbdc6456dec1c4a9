"""Workloads: what a trial trains and scores. Engines decide where the work runs.

Each workload is a scikit-learn-compatible estimator factory plus its default parameters; the
engine fits and scores it (in-process, or spread over a cluster)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner import registry
from runner.config import TYPED_KEYS, Config
from runner.errors import RunnerError
from runner.workloads.noop import DEFAULTS as NOOP_DEFAULTS

#: Keys every workload takes besides its own parameters: engine parameters (``spark_mode``,
#: ``strategy``: checked against the engine), and what the runner fills in or stores beside them
#: (``address`` of an existing cluster, ``data_dir`` and its ``storage``, the ``estimator``).
RUNNER_KEYS = ("spark_mode", "strategy", "address", "data_dir", "storage", "estimator")
#: Labels: keys that name a configuration for the reports (a paper's table or figure, the cluster
#: or machine it stands for) and change nothing that runs; any workload takes them.
LABELS = ("table", "figure", "cluster", "nodes", "machines", "instance", "label", "note")
#: The most a KNN's k and an MLP layer may be: beyond it a value is a typo, not a plan.
MAX_K = 1_000_000
MAX_LAYER = 1_000_000


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: True when fitting is cheap enough to repeat on every worker (KNN stores the training set);
    #: False when one worker fits and the fitted model is shipped to the others.
    fit_on_every_worker: bool = False
    #: the parameters this workload itself takes (the one list: a key that is none of these, a
    #: factor, a :data:`RUNNER_KEYS` key or a :data:`LABELS` label is refused)
    params: tuple[str, ...] = ()

    def takes(self, key: str) -> bool:
        """True when a configuration of this workload may hold ``key``."""
        return key in TYPED_KEYS or key in self.params or key in RUNNER_KEYS or key in LABELS

    def check_keys(self, keys: Iterable[str], where: str) -> None:
        """Refuse a key this workload does not take (``foo = 2`` for knn), listing the ones it
        does: RunnerError, one line starting with ``where``."""
        unknown = [str(k) for k in keys if not self.takes(str(k))]
        if not unknown:
            return
        own = ", ".join(self.params) or "none"
        factors = ", ".join(sorted(TYPED_KEYS - {"experiment", "seed"}))
        raise RunnerError(
            f"{where}: {self.name} takes no parameter {', '.join(unknown)}; its parameters: "
            f"{own}; factors: {factors}; labels: {', '.join(LABELS)}; engine keys: "
            f"{', '.join(RUNNER_KEYS)}"
        )

    def make_estimator(self, config: Config, seed: int) -> Any:
        return _FACTORIES[self.name](config, seed)

    def fit(self, config: Config, seed: int, x: Any, y: Any) -> Any:
        """A fitted estimator (for engines that fit scikit-learn models wherever they run)."""
        return self.make_estimator(config, seed).fit(x, y)

    def training(self, config: Mapping[str, Any]) -> str:
        """Where a distributed engine trains: ``every`` worker fits its own model (KNN),
        ``sharded`` (the scratch network, data-parallel over training shards) or ``driver`` (one
        fit in the driver, the model then shipped to the workers)."""
        if self.fit_on_every_worker:
            return "every"
        return "sharded" if mlp_impl(config) == "scratch" else "driver"

    def preload(self, config: Config) -> None:
        """Import the estimator's library now (in load), not in the first trial's train_s."""
        self.make_estimator(config, 0)

    def resolve(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """The configuration with this workload's defaults filled in, so what is stored is what
        ran and nothing downstream fills them again: its own :attr:`defaults` (knn's ``k``); an
        MLP's ``impl``; the scratch and Keras networks' shape and learning set-up; tensorflow's
        ``strategy``; preprocess's parameters; and, under ``estimator``, the library estimator a
        trial fits with every one of its parameters (scikit-learn's or MLlib's defaults
        included; see :func:`estimator`). Resolving a resolved configuration gives it back
        unchanged."""
        given = config.get(ESTIMATOR_KEY)
        merged = {**self.defaults, **config, "workload": self.name}
        out = _RESOLVE.get(self.name, dict)(merged)
        out.pop(ESTIMATOR_KEY, None)
        if out.get("engine") == "tensorflow" and out.get("strategy") is None:
            from runner.workloads.keras_models import STRATEGIES

            out["strategy"] = STRATEGIES[0]
        try:
            est = estimator(out)
        except (TypeError, ValueError, OverflowError):
            self.check(out)  # names the parameter of the wrong type (k = "five")
            raise
        if given is not None and given != est:
            raise RunnerError(
                f"{self.name}: {ESTIMATOR_KEY} is filled in by the runner from the workload's "
                "parameters (k, hidden, activation, solver, epochs, batch_size, learning_rate); "
                f"drop {ESTIMATOR_KEY} and set those"
            )
        if est is not None:
            out[ESTIMATOR_KEY] = est
        if "workload" not in config:
            out.pop("workload", None)
        return out

    def check(self, config: Mapping[str, Any]) -> None:
        """Refuse bad parameters before anything starts (RunnerError)."""
        _check_engine_params(config)
        _CHECKS[self.name](config)


def _check_engine_params(config: Mapping[str, Any]) -> None:
    """Engine parameters that live among the workload parameters: tensorflow's ``strategy``."""
    from runner.workloads.keras_models import STRATEGIES

    strategy = config.get("strategy")
    if strategy is None:
        return
    engine = str(config["engine"])
    if engine != "tensorflow":
        raise RunnerError(
            f"strategy applies to engine tensorflow only, not {engine}; drop it from this "
            "configuration"
        )
    if strategy not in STRATEGIES:
        raise RunnerError(
            f"tensorflow: unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}"
        )
    workers, batch = int(config["workers"]), config.get("batch_size")
    if strategy == "multiworker" and workers < 2:
        raise RunnerError(
            f"tensorflow: strategy multiworker runs `workers` TensorFlow processes and needs "
            f"workers >= 2, got {workers}; raise workers or use strategy none"
        )
    if strategy in ("mirrored", "multiworker") and isinstance(batch, int) and 0 < batch < workers:
        raise RunnerError(
            f"tensorflow: strategy {strategy} splits each batch over the {workers} workers "
            f"(replicas), so batch_size {batch} is too small; raise batch_size to at least "
            f"{workers} or lower workers"
        )


def dataset_image_shape(name: str, data_dir: str | None = None) -> tuple[int, int] | None:
    """The (rows, cols) of a dataset's images, known before anything loads (digits 8x8; an IDX
    dataset's header, local or in an object store; None for a dataset that is not built in):
    :func:`runner.datasets.image_shape`. The files must exist (``check_dataset`` first)."""
    from runner.datasets import image_shape

    return image_shape(name, data_dir)


def _check_knn(config: Mapping[str, Any]) -> None:
    k = config.get("k")  # resolve filled it in
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RunnerError(f"knn: k must be an integer >= 1, got {k!r}")
    if k > MAX_K:
        raise RunnerError(f"knn: k must be an integer from 1 to {MAX_K:,}, got {k}")


#: The MLP implementations each engine has (the registry's mlp cells); the first is its default.
MLP_IMPLS: dict[str, tuple[str, ...]] = registry.impls("mlp")
MLP_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
#: Solvers per implementation: scikit-learn's, and Spark MLlib's (002 and 004 compare both).
MLP_SOLVERS = {"sklearn": ("lbfgs", "sgd", "adam"), "mllib": ("l-bfgs", "gd")}
#: Keys only one implementation understands; any other implementation refuses them.
_IMPL_ONLY = {
    "solver": ("sklearn", "mllib"),
    "output": ("scratch", "keras"),
    "validation_split": ("keras",),
}


def uses_keras(config: Mapping[str, Any]) -> bool:
    """True when a configuration trains a Keras network (so TensorFlow must be installed)."""
    workload = str(config.get("workload"))
    return workload == "cnn" or (workload == "mlp" and mlp_impl(config) == "keras")


def mlp_impl(config: Mapping[str, Any]) -> str:
    """The MLP implementation a configuration runs: its ``impl``, or its engine's default (the
    first of the registry's mlp cell for that engine)."""
    impl = config.get("impl")
    return str(impl) if impl is not None else MLP_IMPLS[str(config["engine"])][0]


def _resolve_mlp(config: Mapping[str, Any]) -> dict[str, Any]:
    """impl, and the scratch and Keras networks' defaults (the library estimators' go under
    ``estimator``, see :func:`estimator`)."""
    out = {**config, "impl": mlp_impl(config)}
    if out["impl"] == "scratch":
        from runner.workloads.scratch import DEFAULTS

        return {**DEFAULTS, **{k: v for k, v in out.items() if v is not None}}
    if out["impl"] == "keras":
        from runner.workloads.keras_models import KERAS_MLP_DEFAULTS

        return {**KERAS_MLP_DEFAULTS, **{k: v for k, v in out.items() if v is not None}}
    out.setdefault("hidden", [100])
    return out


def _check_mlp(config: Mapping[str, Any]) -> None:
    engine = str(config["engine"])
    impl = mlp_impl(config)
    allowed_impls = MLP_IMPLS[engine]
    if impl not in allowed_impls:
        raise RunnerError(
            f"mlp on {engine}: impl {impl!r} is not supported; available: "
            f"{', '.join(allowed_impls)}"
        )
    hidden = config.get("hidden")  # resolve filled it in
    hidden = [hidden] if isinstance(hidden, int) else hidden
    if (
        not isinstance(hidden, list)
        or not hidden
        or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden)
    ):
        raise RunnerError(f"mlp: hidden must be a list of layer sizes >= 1, got {hidden!r}")
    if any(h > MAX_LAYER for h in hidden):
        raise RunnerError(f"mlp: hidden layer sizes must be at most {MAX_LAYER:,}, got {hidden!r}")
    for key, impls in _IMPL_ONLY.items():
        if config.get(key) is not None and impl not in impls:
            raise RunnerError(
                f"mlp: {key} applies to impl {' | '.join(impls)} only, not {impl}; drop it "
                "from this configuration"
            )
    if impl == "mllib" and config.get("activation") not in (None, "logistic"):
        raise RunnerError(
            f"mlp on spark: MLlib's hidden layers are always logistic (sigmoid), got activation "
            f"{config.get('activation')!r}; drop activation or set it to logistic"
        )
    from runner.workloads.scratch import OUTPUTS

    allowed = {
        "activation": MLP_ACTIVATIONS,
        "solver": MLP_SOLVERS.get(impl, ()),
        "output": OUTPUTS,
    }
    for key, values in allowed.items():
        value = config.get(key)
        if value is not None and value not in values:
            raise RunnerError(f"mlp: {key} {value!r} is not one of {', '.join(values)}")
    _check_training("mlp", config)


def _check_training(workload: str, config: Mapping[str, Any]) -> None:
    """The learning set-up: learning_rate, batch_size, epochs > 0; validation_split in [0, 1)."""
    for key, kind in (("learning_rate", float), ("batch_size", int), ("epochs", int)):
        value = config.get(key)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise RunnerError(f"{workload}: {key} must be a finite number > 0, got {value!r}")
        if value is not None and kind is int and not isinstance(value, int):
            raise RunnerError(f"{workload}: {key} must be an integer, got {value!r}")
    split = config.get("validation_split")
    if split is not None and (
        isinstance(split, bool) or not isinstance(split, int | float) or not 0 <= split < 1
    ):
        raise RunnerError(
            f"{workload}: validation_split must be a fraction in [0, 1), got {split!r}"
        )


def _resolve_cnn(config: Mapping[str, Any]) -> dict[str, Any]:
    from runner.workloads.keras_models import CNN_DEFAULTS

    return {**CNN_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}


def _check_cnn(config: Mapping[str, Any]) -> None:
    from runner.workloads.keras_models import CNN_MIN_SIDE

    dataset = str(config["dataset"])
    shape = dataset_image_shape(dataset, config.get("data_dir"))
    if shape is not None and (shape[0] != shape[1] or shape[0] < CNN_MIN_SIDE):
        rows, cols = shape
        raise RunnerError(
            f"cnn: dataset {dataset} has {rows}x{cols} images ({rows * cols} features); the CNN "
            f"needs square images of at least {CNN_MIN_SIDE}x{CNN_MIN_SIDE}: use another "
            "dataset or workload"
        )
    for key in ("hidden", "activation", "output", "solver"):
        if config.get(key) is not None:
            raise RunnerError(
                f"cnn: {key} does not apply to the CNN (000's fixed network); drop it from this "
                "configuration"
            )
    _check_training("cnn", config)


#: The key of a resolved configuration that holds the library estimator its trials fit:
#: ``{"class": "<module>.<Class>", "params": {...}}``, every parameter of the estimator but those
#: set per trial or per task (:data:`PER_TRIAL_PARAMS`).
ESTIMATOR_KEY = "estimator"
#: Estimator parameters that are not stored: ``random_state`` / ``seed`` is the trial's seed
#: (stored with the trial) and ``n_jobs`` the engine's threads per task (threads_per_worker, or 1
#: inside a Spark task).
PER_TRIAL_PARAMS = ("random_state", "n_jobs", "seed")
#: Spark MLlib's MultilayerPerceptronClassifier defaults for the parameters that shape a fit
#: (pyspark's ``_MultilayerPerceptronParams._setDefault``). Read from this table, not from
#: pyspark: building the estimator needs a running JVM. A test compares it with pyspark's
#: ``MultilayerPerceptronClassifier().extractParamMap()``.
MLLIB_MLP_DEFAULTS: dict[str, Any] = {
    "blockSize": 128,
    "maxIter": 100,
    "solver": "l-bfgs",
    "stepSize": 0.03,
    "tol": 1e-6,
}
MLLIB_MLP_CLASS = "pyspark.ml.classification.MultilayerPerceptronClassifier"


def _plain(value: Any) -> Any:
    """A parameter value as JSON keeps it (tuples as lists), so a stored configuration compares
    equal to the one that ran."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _sklearn(cls: Any, given: Mapping[str, Any]) -> dict[str, Any]:
    params = {**cls().get_params(deep=False), **given}
    return {
        "class": f"{cls.__module__.split('._')[0]}.{cls.__name__}",
        "params": {k: _plain(v) for k, v in sorted(params.items()) if k not in PER_TRIAL_PARAMS},
    }


def _hidden(config: Mapping[str, Any]) -> list[int]:
    hidden = config["hidden"]
    return [int(hidden)] if isinstance(hidden, int) else [int(h) for h in hidden]


def estimator(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The library estimator a configuration's trials fit, ``{"class", "params"}``: the
    workload's parameters mapped onto the estimator's, and the library's defaults for the rest
    (scikit-learn's from the installed estimator's ``get_params()``, MLlib's from
    :data:`MLLIB_MLP_DEFAULTS`). None when no library estimator runs (the scratch and Keras
    networks, whose set-up is the configuration's own keys; cnn; preprocess).

    knn: scikit-learn's KNeighborsClassifier, ``n_neighbors`` = k. mlp impl sklearn:
    MLPClassifier, ``hidden_layer_sizes`` = hidden, activation, solver, ``max_iter`` = epochs,
    batch_size, ``learning_rate_init`` = learning_rate. mlp impl mllib:
    MultilayerPerceptronClassifier, ``maxIter`` = epochs, ``blockSize`` = batch_size, ``stepSize``
    = learning_rate, solver (its ``layers`` are [features, *hidden, classes])."""
    workload = config.get("workload")
    if workload == "knn":
        from sklearn.neighbors import KNeighborsClassifier

        return _sklearn(KNeighborsClassifier, {"n_neighbors": int(config["k"])})
    if workload != "mlp":
        return None
    impl = mlp_impl(config)
    names = {
        "epochs": "max_iter",
        "batch_size": "batch_size",
        "learning_rate": "learning_rate_init",
    }
    names.update(activation="activation", solver="solver")
    if impl == "mllib":
        names = {"epochs": "maxIter", "batch_size": "blockSize", "learning_rate": "stepSize"}
        names.update(solver="solver")
    given = {theirs: config[ours] for ours, theirs in names.items() if config.get(ours) is not None}
    if impl == "sklearn":
        from sklearn.neural_network import MLPClassifier

        given["hidden_layer_sizes"] = _hidden(config)
        return _sklearn(MLPClassifier, given)
    if impl == "mllib":
        return {
            "class": MLLIB_MLP_CLASS,
            "params": dict(sorted({**MLLIB_MLP_DEFAULTS, **given}.items())),
        }
    return None


def estimator_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The estimator parameters a trial of this configuration fits with: those its resolved
    configuration stores (``Workload.resolve`` put them there), so what is stored is what runs."""
    stored = config.get(ESTIMATOR_KEY)
    if not isinstance(stored, Mapping):
        raise RuntimeError(
            f"configuration of {config.get('workload')!r} has no {ESTIMATOR_KEY}: resolve it with "
            "its workload (runner.workloads.get_workload(name).resolve) first"
        )
    return dict(stored["params"])


def _knn(config: Config, seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(**estimator_params(config), n_jobs=config.threads_per_worker)


def _keras_only(workload: str) -> Any:
    raise RunnerError(
        f"{workload}: the Keras network runs on engine tensorflow only (see `runner list engines`)"
    )


def _mlp(config: Config, seed: int) -> Any:
    if mlp_impl(config) == "keras":
        _keras_only("mlp")
    if mlp_impl(config) == "scratch":
        from runner.workloads.scratch import ScratchMLP

        return ScratchMLP(config, seed)
    from sklearn.neural_network import MLPClassifier

    params = estimator_params(config)
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    return MLPClassifier(**params, random_state=seed)


def _check_preprocess(config: Mapping[str, Any]) -> None:
    from runner.preprocess import check

    check(config)


def _resolve_preprocess(config: Mapping[str, Any]) -> dict[str, Any]:
    from runner.preprocess import resolve

    return resolve(config)


def _check_noop(config: Mapping[str, Any]) -> None:
    from runner.workloads.noop import check

    check(config)


_FACTORIES: dict[str, Callable[[Config, int], Any]] = {
    "knn": _knn,
    "mlp": _mlp,
    "cnn": lambda config, seed: _keras_only("cnn"),
    "preprocess": lambda config, seed: None,  # no estimator: runner.preprocess sessions
    "noop": lambda config, seed: None,  # no estimator: runner.workloads.noop
}
_CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {
    "knn": _check_knn,
    "mlp": _check_mlp,
    "cnn": _check_cnn,
    "preprocess": _check_preprocess,
    "noop": _check_noop,
}
_RESOLVE: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "mlp": _resolve_mlp,
    "cnn": _resolve_cnn,
    "preprocess": _resolve_preprocess,
}

WORKLOADS: dict[str, Workload] = {
    "knn": Workload(
        "knn",
        "k-nearest neighbours (paper 000), k from params (default 5)",
        {"k": 5},
        fit_on_every_worker=True,
        params=("k",),
    ),
    "mlp": Workload(
        "mlp",
        "multilayer perceptron: impl sklearn (001's MLPClassifier), scratch (002's NumPy "
        "network, inputs-100-50-classes ReLU/ReLU/tanh), keras (the same network in Keras, "
        "SGD) or mllib (Spark); hidden, activation, output, solver, epochs, batch_size, "
        "learning_rate, validation_split (keras)",
        # no epochs here for sklearn/mllib: each library's own default (200, 100) applies
        params=(
            "impl",
            "hidden",
            "activation",
            "output",
            "solver",
            "learning_rate",
            "validation_split",
        ),
    ),
    "cnn": Workload(
        "cnn",
        "convolutional network of paper 000 (Table 1): Conv2D 32 3x3 ReLU, MaxPool 2x2, Dense "
        "128 ReLU, Dense softmax; Adam; epochs (10), batch_size (32), learning_rate (0.001), "
        "validation_split (0.1); square images only",
        params=("learning_rate", "validation_split"),
    ),
    "preprocess": Workload(
        "preprocess",
        "image pre-processing throughput (paper 003): decode -> resize -> normalise -> write, "
        "images per second (throughput_ips); file_format images | records, batch_size, "
        "batch_number, data_size, passes, cache",
        params=(
            "file_format",
            "data_size",
            "batch_number",
            "passes",
            "cache",
            "resize",
            "shards",
            "work_dir",
        ),
    ),
    "noop": Workload(
        "noop",
        "does nothing (measures the runner's own per-trial cost): reports `metrics` metrics "
        "noop_1.. (7); spin: a fixed pure-Python loop of that many iterations as train_s (0)",
        dict(NOOP_DEFAULTS),
        params=tuple(NOOP_DEFAULTS),
    ),
}


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise RunnerError(
            f"unknown workload {name!r}; available: {', '.join(sorted(WORKLOADS))}"
        ) from None
