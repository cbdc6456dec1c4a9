"""Statistics over the trialkit results store: result objects, no printing.

Every function reads the ``observations`` view of a results database (``--db``), pushes the
per-group aggregation into DuckDB and returns a frozen dataclass with ``to_dict()``,
``to_frame()`` and a readable ``str()``. User-fixable problems raise :class:`AnalysisError`.

The public names below are imported on first use (PEP 562), so that importing the package, or
one light module of it (``analysis.errors``, ``analysis.cli``), does not import DuckDB, NumPy or
SciPy: ``analyze --help`` stays instant. ``from analysis import anova`` works as before.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what the names are, for type checkers; at run time see _WHERE
    from analysis.anova import AnovaResult, GroupStats, anova
    from analysis.boxstats import BoxStats, BoxStatsResult, box_stats
    from analysis.compare import compare
    from analysis.compare_result import CompareResult, CompareRow
    from analysis.cost import CostResult, cost
    from analysis.cost_metric import CostMetricResult, cost_metric
    from analysis.data import connect
    from analysis.defaults import DEFAULT_BY, DEFAULT_METRICS
    from analysis.errors import AnalysisError
    from analysis.posthoc import PairComparison, PosthocResult
    from analysis.power import PowerResult, power
    from analysis.regress import regress
    from analysis.regress_result import RegressionResult
    from analysis.runs import RunInfo, list_runs
    from analysis.scaling import scaling
    from analysis.scaling_results import ScalingResult
    from analysis.stratified import StratifiedResult, StratumResult
    from analysis.summary import summarize
    from analysis.summary_result import SummaryResult
    from analysis.ttest import ttest
    from analysis.ttest_result import TtestResult
    from analysis.twoway import TwoWayAnovaResult, TwoWayTerm, twoway_anova
    from analysis.where import Filter, parse_where

#: public name -> the module that defines it (imported when the name is first used)
_WHERE: dict[str, str] = {
    "AnalysisError": "analysis.errors",
    "AnovaResult": "analysis.anova",
    "BoxStats": "analysis.boxstats",
    "BoxStatsResult": "analysis.boxstats",
    "CompareResult": "analysis.compare_result",
    "CompareRow": "analysis.compare_result",
    "CostMetricResult": "analysis.cost_metric",
    "CostResult": "analysis.cost",
    "DEFAULT_BY": "analysis.defaults",
    "DEFAULT_METRICS": "analysis.defaults",
    "Filter": "analysis.where",
    "GroupStats": "analysis.anova",
    "PairComparison": "analysis.posthoc",
    "PosthocResult": "analysis.posthoc",
    "PowerResult": "analysis.power",
    "RegressionResult": "analysis.regress_result",
    "RunInfo": "analysis.runs",
    "ScalingResult": "analysis.scaling_results",
    "StratifiedResult": "analysis.stratified",
    "StratumResult": "analysis.stratified",
    "SummaryResult": "analysis.summary_result",
    "TtestResult": "analysis.ttest_result",
    "TwoWayAnovaResult": "analysis.twoway",
    "TwoWayTerm": "analysis.twoway",
    "anova": "analysis.anova",
    "box_stats": "analysis.boxstats",
    "compare": "analysis.compare",
    "connect": "analysis.data",
    "cost": "analysis.cost",
    "cost_metric": "analysis.cost_metric",
    "list_runs": "analysis.runs",
    "parse_where": "analysis.where",
    "power": "analysis.power",
    "regress": "analysis.regress",
    "scaling": "analysis.scaling",
    "summarize": "analysis.summary",
    "ttest": "analysis.ttest",
    "twoway_anova": "analysis.twoway",
}

#: the public surface (the keys of _WHERE; tests/test_startup.py checks both agree)
__all__ = [
    "AnalysisError",
    "AnovaResult",
    "BoxStats",
    "BoxStatsResult",
    "CompareResult",
    "CompareRow",
    "CostMetricResult",
    "CostResult",
    "DEFAULT_BY",
    "DEFAULT_METRICS",
    "Filter",
    "GroupStats",
    "PairComparison",
    "PosthocResult",
    "PowerResult",
    "RegressionResult",
    "RunInfo",
    "ScalingResult",
    "StratifiedResult",
    "StratumResult",
    "SummaryResult",
    "TtestResult",
    "TwoWayAnovaResult",
    "TwoWayTerm",
    "anova",
    "box_stats",
    "compare",
    "connect",
    "cost",
    "cost_metric",
    "list_runs",
    "parse_where",
    "power",
    "regress",
    "scaling",
    "summarize",
    "ttest",
    "twoway_anova",
]


def __getattr__(name: str) -> Any:
    """Import the module defining ``name`` on first use and keep the name here."""
    module_name = _WHERE.get(name)
    if module_name is None:  # an AttributeError lets ``from analysis import data`` find the module
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


class _Package(types.ModuleType):
    """The package's module type: a function named like its module stays the function.

    ``analysis.anova`` is the function ``anova`` (as when this file imported it eagerly), even
    after ``import analysis.anova`` stored the submodule here; the module itself stays in
    ``sys.modules["analysis.anova"]``, where ``from analysis.anova import ...`` finds it.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and _WHERE.get(name) == value.__name__ == f"{__name__}.{name}"
            and hasattr(value, name)
        ):
            value = getattr(value, name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
