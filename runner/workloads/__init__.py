"""Workloads: what a trial trains and scores. Engines decide where the work runs.

Each workload is a scikit-learn-compatible estimator factory plus its default parameters; the
engine fits and scores it (in-process, or spread over a cluster)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runner.errors import RunnerError


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    defaults: Mapping[str, Any] = field(default_factory=dict)
    #: True when fitting is cheap enough to repeat on every worker (KNN stores the training set);
    #: False when one worker fits and the fitted model is shipped to the others.
    fit_on_every_worker: bool = False

    def make_estimator(self, config: Mapping[str, Any], seed: int) -> Any:
        return _FACTORIES[self.name](config, seed)

    def fit(self, config: Mapping[str, Any], seed: int, x: Any, y: Any) -> Any:
        """A fitted estimator (for engines that fit scikit-learn models wherever they run)."""
        return self.make_estimator(config, seed).fit(x, y)

    def preload(self, config: Mapping[str, Any]) -> None:
        """Import the estimator's library now (in load), not in the first trial's train_s."""
        self.make_estimator(config, 0)

    def check(self, config: Mapping[str, Any]) -> None:
        """Refuse bad parameters before anything starts (RunnerError)."""
        _CHECKS[self.name](config)


def _check_knn(config: Mapping[str, Any]) -> None:
    k = config.get("k", 5)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise RunnerError(f"knn: k must be an integer >= 1, got {k!r}")


MLP_IMPLS = ("sklearn",)
MLP_ACTIVATIONS = ("identity", "logistic", "tanh", "relu")
#: Solvers per engine family: scikit-learn's, and Spark MLlib's (002 and 004 compare both).
MLP_SOLVERS = {"spark": ("l-bfgs", "gd")}
SKLEARN_SOLVERS = ("lbfgs", "sgd", "adam")


def _check_mlp(config: Mapping[str, Any]) -> None:
    impl = config.get("impl", "sklearn")
    if impl not in MLP_IMPLS:
        raise RunnerError(f"mlp: impl {impl!r} is not supported; available: {', '.join(MLP_IMPLS)}")
    hidden = config.get("hidden", [100])
    hidden = [hidden] if isinstance(hidden, int) else hidden
    if (
        not isinstance(hidden, list)
        or not hidden
        or any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden)
    ):
        raise RunnerError(f"mlp: hidden must be a list of layer sizes >= 1, got {hidden!r}")
    if config.get("engine") == "spark" and config.get("activation") not in (None, "logistic"):
        raise RunnerError(
            f"mlp on spark: MLlib's hidden layers are always logistic (sigmoid), got activation "
            f"{config.get('activation')!r}; drop activation or set it to logistic"
        )
    solvers = MLP_SOLVERS.get(str(config.get("engine")), SKLEARN_SOLVERS)
    for key, allowed in (("activation", MLP_ACTIVATIONS), ("solver", solvers)):
        value = config.get(key)
        if value is not None and value not in allowed:
            raise RunnerError(f"mlp: {key} {value!r} is not one of {', '.join(allowed)}")


def _knn(config: Mapping[str, Any], seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    k = int(config.get("k", 5))
    return KNeighborsClassifier(n_neighbors=k, n_jobs=int(config.get("threads_per_worker") or 1))


def _mlp(config: Mapping[str, Any], seed: int) -> Any:
    from sklearn.neural_network import MLPClassifier

    hidden = config.get("hidden", [100])
    if isinstance(hidden, int):
        hidden = [hidden]
    batch = config.get("batch_size")
    return MLPClassifier(
        hidden_layer_sizes=tuple(int(h) for h in hidden),
        activation=str(config.get("activation", "relu")),
        solver=str(config.get("solver") or "adam"),
        max_iter=int(config.get("epochs") or 200),
        batch_size=int(batch) if batch else "auto",
        learning_rate_init=float(config.get("learning_rate", 0.001)),
        random_state=seed,
    )


_FACTORIES: dict[str, Callable[[Mapping[str, Any], int], Any]] = {"knn": _knn, "mlp": _mlp}
_CHECKS: dict[str, Callable[[Mapping[str, Any]], None]] = {"knn": _check_knn, "mlp": _check_mlp}

WORKLOADS: dict[str, Workload] = {
    "knn": Workload(
        "knn",
        "k-nearest neighbours (paper 000), k from params (default 5)",
        {"k": 5},
        fit_on_every_worker=True,
    ),
    "mlp": Workload(
        "mlp",
        "scikit-learn MLPClassifier (paper 001); hidden, activation, solver, epochs, batch_size",
        # no epochs here: each engine's own default applies (scikit-learn 200, MLlib 100)
        {"hidden": [100]},
    ),
}


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise RunnerError(
            f"unknown workload {name!r}; available: {', '.join(sorted(WORKLOADS))}"
        ) from None
