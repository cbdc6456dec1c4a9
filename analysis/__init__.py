"""Statistics over the trialkit results store: result objects, no printing.

Every function reads the ``observations`` view of a results database (``--db``), pushes the
per-group aggregation into DuckDB and returns a frozen dataclass with ``to_dict()``,
``to_frame()`` and a readable ``str()``. User-fixable problems raise :class:`AnalysisError`.
"""

from analysis.anova import AnovaResult, GroupStats, anova
from analysis.compare import CompareResult, CompareRow, compare
from analysis.cost import CostMetricResult, CostResult, cost, cost_metric
from analysis.data import Filter, connect, parse_where
from analysis.errors import AnalysisError
from analysis.posthoc import PairComparison, PosthocResult
from analysis.power import PowerResult, power
from analysis.regress import RegressionResult, regress
from analysis.scaling import ScalingResult, scaling
from analysis.strata import StratifiedResult, StratumResult
from analysis.summary import (
    DEFAULT_BY,
    DEFAULT_METRICS,
    BoxStats,
    BoxStatsResult,
    RunInfo,
    SummaryResult,
    box_stats,
    list_runs,
    summarize,
)
from analysis.ttest import TtestResult, ttest
from analysis.twoway import TwoWayAnovaResult, TwoWayTerm, twoway_anova

__all__ = [
    "CompareResult",
    "CompareRow",
    "StratifiedResult",
    "StratumResult",
    "compare",
    "PairComparison",
    "PosthocResult",
    "TwoWayAnovaResult",
    "TwoWayTerm",
    "twoway_anova",
    "CostMetricResult",
    "CostResult",
    "PowerResult",
    "RegressionResult",
    "ScalingResult",
    "cost",
    "cost_metric",
    "power",
    "regress",
    "scaling",
    "DEFAULT_BY",
    "DEFAULT_METRICS",
    "AnalysisError",
    "AnovaResult",
    "BoxStats",
    "BoxStatsResult",
    "Filter",
    "GroupStats",
    "RunInfo",
    "SummaryResult",
    "TtestResult",
    "anova",
    "box_stats",
    "connect",
    "list_runs",
    "parse_where",
    "summarize",
    "ttest",
]
