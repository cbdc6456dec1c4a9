"""The ANOVA's assumption checks and alternatives, and the t-test's effect sizes, in the report.

The report compares every factor with the others held fixed: here workers within each engine
(an ANOVA over three worker counts) and, with ``--compare engine=local,dask``, local against dask
at one worker (a t-test).

Every expected number is recomputed with scipy/numpy on the trials read from the DuckDB file
with plain SQL, and formatted here by independent code; the report must show the same strings.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import numpy as np
import pytest
from scipy import stats
from scipy.special import gammaln

from analysis import AnovaResult
from reports import build_report
from reports.blocks import slug
from reports.compare import compare
from reports.context import ALPHA
from reports.context import checks as _checks
from reports.latex import escape_latex
from runner.store import TrialRecord, open_store

from .conftest import HOSTILE

needs_tex = pytest.mark.skipif(
    shutil.which("latexmk") is None or shutil.which("pdflatex") is None,
    reason="TeX Live (latexmk, pdflatex) not installed",
)

Draw = Callable[[np.random.Generator, int], np.ndarray]

#: (engine, workload, workers, trials, draw): chosen so that each recommendation occurs —
#: dask: normal, equal spread (Welch: the default); ray: 30 trials a level, spreads 0.02 vs 0.3
#: (Welch); spark: 12 trials a level, two of them far out (Kruskal-Wallis); local: one worker
#: count (not tested).
SPEC: list[tuple[str, str, int, int, Draw]] = [
    ("local", "fit", 1, 12, lambda rng, n: rng.normal(1.00, 0.05, n)),
    ("dask", "fit", 1, 12, lambda rng, n: rng.normal(1.40, 0.05, n)),
    ("dask", "fit", 2, 12, lambda rng, n: rng.normal(1.33, 0.05, n)),
    ("dask", "fit", 3, 12, lambda rng, n: rng.normal(1.30, 0.05, n)),
    ("ray", "fit", 1, 30, lambda rng, n: rng.normal(1.20, 0.02, n)),
    ("ray", "fit", 2, 30, lambda rng, n: rng.normal(1.15, 0.30, n)),
    ("ray", "fit", 3, 30, lambda rng, n: rng.normal(1.10, 0.30, n)),
    ("spark", "fit", 1, 12, lambda rng, n: np.r_[rng.normal(1.0, 0.05, n - 2), 5.0, 6.0]),
    ("spark", "fit", 2, 12, lambda rng, n: np.r_[rng.normal(0.9, 0.05, n - 2), 4.0, 7.0]),
    ("spark", "fit", 3, 12, lambda rng, n: np.r_[rng.normal(0.8, 0.05, n - 2), 5.5, 6.5]),
]
EXPECTED_RECOMMENDED = {"dask": "Welch's ANOVA", "ray": "Welch's ANOVA", "spark": "Kruskal–Wallis"}


def write_db(path: Path, names: dict[str, str] | None = None, seed: int = 7) -> None:
    """The trials of :data:`SPEC` (plus one warm-up per configuration), names mapped."""
    names = names or {}
    rng = np.random.default_rng(seed)
    with open_store(path) as store:
        run = store.begin_run(source="measured", argv=["runner", "trials"], env={})
        records = []
        for engine, workload, workers, n, draw in SPEC:
            values = draw(rng, n + 1)
            for rep, train in enumerate(values):
                fields = {
                    "experiment": "checks",
                    "engine": names.get(engine, engine),
                    "workload": names.get(workload, workload),
                    "dataset": "digits",
                    "workers": workers,
                    "threads_per_worker": 1,
                    "warmup": rep == 0,
                    "repetition": rep,
                    "train_s": float(train),
                    "wall_s": float(train) + 0.1,
                }
                records.append(TrialRecord(run_id=run, status="ok", values=fields))
        store.append_trials(records)
        store.finish_run(run)


# -- independent reference: plain SQL + scipy, formatted here --------------------------------------
def _levels(path: Path, engine: str, workload: str) -> list[np.ndarray]:
    """The train_s of the ok, non-warm-up trials of one engine/workload, one array per worker
    count (ascending)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute(
            "SELECT workers, train_s FROM trials WHERE status = 'ok' AND NOT warmup "
            "AND engine = ? AND workload = ? AND train_s IS NOT NULL",
            [engine, workload],
        ).fetchall()
    finally:
        con.close()
    by: dict[int, list[float]] = {}
    for workers, value in rows:
        by.setdefault(workers, []).append(value)
    return [np.array(by[w]) for w in sorted(by)]


def _p(p: float) -> str:
    if p < 1e-16:
        return "<1e-16"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.4f}"


def _sig(x: float, digits: int = 4) -> str:
    return np.format_float_positional(x, precision=digits, unique=False, fractional=False, trim="k")


def _yes(p: float) -> str:
    return "yes" if p < ALPHA else "no"


def expected_checks(groups: list[np.ndarray]) -> dict[str, str]:
    """The cells of one row of "Assumption checks and alternatives", from scipy on the rows."""
    k = len(groups)
    welch = stats.f_oneway(*groups, equal_var=False)
    kruskal = stats.kruskal(*groups)
    levene = stats.levene(*groups, center="median")
    residuals = np.concatenate([g - g.mean() for g in groups])
    shapiro = stats.shapiro(residuals)
    # Welch's denominator df (Welch 1951), textbook form
    w = np.array([len(g) / g.var(ddof=1) for g in groups])
    tmp = sum((1 - wi / w.sum()) ** 2 / (len(g) - 1) for wi, g in zip(w, groups, strict=True))
    welch_df_den = (k**2 - 1) / (3 * tmp)

    # the documented rule of analysis.anova.recommend: Kruskal-Wallis when some level of at
    # least 10 trials has 2 or more values beyond Tukey's far-out fences (numpy's quartiles),
    # else Welch's ANOVA
    def far_out(g: np.ndarray) -> int:
        q1, q3 = np.percentile(g, [25, 75])
        return int(((g < q1 - 3 * (q3 - q1)) | (g > q3 + 3 * (q3 - q1))).sum())

    if any(len(g) >= 10 and far_out(g) >= 2 for g in groups):
        name, p = "Kruskal–Wallis", kruskal.pvalue
    else:
        name, p = "Welch's ANOVA", welch.pvalue
    return {
        "levene_p": _p(levene.pvalue),
        "shapiro_p": _p(shapiro.pvalue),
        "welch_statistic": _sig(welch.statistic),
        "welch_df": f"{k - 1}, {welch_df_den:.1f}",
        "welch_p": _p(welch.pvalue),
        "kruskal_statistic": _sig(kruskal.statistic),
        "kruskal_df": str(k - 1),
        "kruskal_p": _p(kruskal.pvalue),
        "recommended": name,
        "recommended_p": _p(p),
        "recommended_significant": _yes(p),
    }


def expected_omega_sq(groups: list[np.ndarray]) -> str:
    x = np.concatenate(groups)
    ss_between = sum(len(g) * (g.mean() - x.mean()) ** 2 for g in groups)
    ss_within = sum(((g - g.mean()) ** 2).sum() for g in groups)
    df_between, df_within = len(groups) - 1, len(x) - len(groups)
    ms_within = ss_within / df_within
    return f"{(ss_between - df_between * ms_within) / (ss_between + ss_within + ms_within):.3f}"


def _ttest_levels(path: Path, workload: str) -> tuple[np.ndarray, np.ndarray]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        out = []
        for engine in ("local", "dask"):
            rows = con.execute(
                "SELECT train_s FROM trials WHERE status = 'ok' AND NOT warmup "
                "AND engine = ? AND workload = ? AND workers = 1",
                [engine, workload],
            ).fetchall()
            out.append(np.array([r[0] for r in rows]))
    finally:
        con.close()
    return out[0], out[1]


def expected_hedges_g(a: np.ndarray, b: np.ndarray) -> str:
    df = len(a) + len(b) - 2
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1)) / df)
    j = math.exp(gammaln(df / 2) - gammaln((df - 1) / 2)) / math.sqrt(df / 2)
    return f"{j * (a.mean() - b.mean()) / pooled:.2f}"


# -- reading the rendered tables -------------------------------------------------------------------
class _Tables(HTMLParser):
    """Every <table> as a list of rows of cell texts (entities decoded)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_table(html: str, table_id: str) -> list[list[str]]:
    """The table inside the wrapper ``id="<table_id>"``."""
    part = html.split(f'id="{table_id}"', 1)[1]
    parser = _Tables()
    parser.feed(part[part.index("<table") : part.index("</table>") + 8])
    (table,) = parser.tables
    return table


def checks_id(workload: str = "fit", factor: str = "workers") -> str:
    return slug(f"checks-{workload}-{factor}")


def html_rows(table: list[list[str]], header_cell: str) -> tuple[list[str], list[list[str]]]:
    """The header row that holds ``header_cell`` and the non-empty rows below it."""
    (header,) = [row for row in table if header_cell in row]
    return header, [row for row in table[table.index(header) + 1 :] if row]


def html_records(table: list[list[str]], header_cell: str) -> list[dict[str, str]]:
    """:func:`html_rows` as dicts by column name (the header's names must be unique)."""
    header, rows = html_rows(table, header_cell)
    assert len(set(header)) == len(header), header
    return [dict(zip(header, row, strict=True)) for row in rows]


CHECK_KEYS = (
    "levene_p",
    "shapiro_p",
    "welch_statistic",
    "welch_df",
    "welch_p",
    "kruskal_statistic",
    "kruskal_df",
    "kruskal_p",
    "recommended",
    "recommended_p",
    "recommended_significant",
)


def _tex_cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)&", line.removesuffix(r"\\").strip())]


def tex_longtables(tex: str) -> list[tuple[str, list[str]]]:
    """Every longtable as ``(column spec, row lines)``."""
    out = []
    for m in re.finditer(r"\\begin\{longtable\}\{([^\n]*)\}\n(.*?)\\end\{longtable\}", tex, re.S):
        rows = [
            ln
            for ln in m.group(2).splitlines()
            if ln.rstrip().endswith(r"\\") and not ln.startswith(r"\caption*{")
        ]
        out.append((m.group(1), rows))
    return out


def spec_columns(spec: str) -> int:
    spec = re.sub(r"@\{[^{}]*\}", "", spec)
    spec = re.sub(r">\{(?:[^{}]|\{[^{}]*\})*\}", "", spec)
    spec = re.sub(r"p\{[^{}]*\}", "p", spec)
    return len(re.findall(r"[lrcp]", spec))


def row_columns(line: str) -> int:
    return sum(
        int(m.group(1)) if (m := re.match(r"\\multicolumn\{(\d+)\}", cell)) else 1
        for cell in _tex_cells(line)
    )


def tex_table_rows(tex: str, caption_start: str) -> list[list[str]]:
    """The body rows of the longtable whose caption starts with ``caption_start``."""
    section = tex.split(r"\caption*{" + caption_start, 1)[1]
    body = section.split(r"\endfoot", 1)[1].split(r"\end{longtable}", 1)[0]
    return [_tex_cells(ln) for ln in body.splitlines() if ln.rstrip().endswith(r"\\")]


def tex_checks_rows(tex: str, workload: str = "fit") -> list[list[str]]:
    return tex_table_rows(tex, f"{workload}: workers, assumption checks")


# -- tests -----------------------------------------------------------------------------------------
@pytest.fixture
def checks_db(tmp_path: Path) -> Path:
    path = tmp_path / "checks.duckdb"
    write_db(path)
    return path


@pytest.fixture
def hostile_checks_db(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    names = {"ray": "ray" + HOSTILE, "spark": "spark" + HOSTILE, "fit": "fit" + HOSTILE}
    path = tmp_path / "hostile-checks.duckdb"
    write_db(path, names)
    return path, names


def _check_html(path: Path, html: str, names: dict[str, str]) -> None:
    workload = names.get("fit", "fit")
    header, rows = html_rows(html_table(html, checks_id(workload)), "Held fixed")
    assert header[0] == "Held fixed" and len(header) == 1 + len(CHECK_KEYS)
    raw = {f"engine={names.get(e, e)}": e for e in EXPECTED_RECOMMENDED}
    assert sorted(row[0] for row in rows) == sorted(raw)
    for row in rows:
        engine = row[0].removeprefix("engine=")
        expected = expected_checks(_levels(path, engine, workload))
        assert row[1:] == [expected[k] for k in CHECK_KEYS], row[0]
        # the data were made so that each test is recommended once
        assert row[1 + CHECK_KEYS.index("recommended")] == EXPECTED_RECOMMENDED[raw[row[0]]]


def test_html_checks_equal_scipy_on_the_rows(checks_db: Path, tmp_path: Path) -> None:
    out = build_report(checks_db, fmt="html", out=tmp_path / "r.html").path
    html = out.read_text(encoding="utf-8")
    _check_html(checks_db, html, {})
    assert "fit: workers, assumption checks and alternatives" in html


def test_html_omega_squared_equals_numpy(checks_db: Path, tmp_path: Path) -> None:
    html = build_report(checks_db, fmt="html", out=tmp_path / "r.html").path.read_text("utf-8")
    rows = html_records(html_table(html, slug("anova-fit-workers")), "ω²")
    firsts = [r for r in rows if r["Held fixed"]]
    assert [r["Held fixed"] for r in firsts] == ["engine=dask", "engine=ray", "engine=spark"]
    for row in firsts:
        groups = _levels(checks_db, row["Held fixed"].removeprefix("engine="), "fit")
        assert row["ω²"] == expected_omega_sq(groups)
        assert row["η²"]  # kept beside it


def test_html_ttest_hedges_g_and_ratio(checks_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    html = build_report(
        checks_db, fmt="html", out=out, compare=["engine=local,dask"]
    ).path.read_text("utf-8")
    (row,) = html_records(html_table(html, slug("ttest-fit-engine")), "g")
    assert (row["a"], row["b"], row["Held fixed"]) == ("local", "dask", "workers=1")
    a, b = _ttest_levels(checks_db, "fit")
    assert row["g"] == expected_hedges_g(a, b)
    assert row["d"] != row["g"]  # the small-sample correction shows at 22 df
    ratio, low, high = (float(x) for x in re.findall(r"[-0-9.e]+", row["ratio a/b [95% CI]"]))
    assert row["ratio a/b [95% CI]"].startswith(_sig(a.mean() / b.mean(), 3) + " [")
    assert low < ratio < high
    ref = stats.bootstrap(
        (a, b),
        lambda x, y, axis: x.mean(axis=axis) / y.mean(axis=axis),
        n_resamples=20000,
        method="percentile",
        random_state=np.random.default_rng(1),
        vectorized=True,
    ).confidence_interval
    # Monte-Carlo error of a 2000-resample percentile bound: well inside 1% of the ratio here
    assert low == pytest.approx(ref.low, rel=0.01)
    assert high == pytest.approx(ref.high, rel=0.01)
    assert "2000 resamples, seed 0" in html


def test_tex_checks_equal_scipy_on_the_rows(checks_db: Path, tmp_path: Path) -> None:
    tex = build_report(checks_db, fmt="tex", out=tmp_path / "r.tex").path.read_text("utf-8")
    rows = tex_checks_rows(tex)
    assert [r[0] for r in rows] == ["engine=dask", "engine=ray", "engine=spark"]
    for row in rows:
        expected = expected_checks(_levels(checks_db, row[0].removeprefix("engine="), "fit"))
        assert row[1:] == [escape_latex(expected[k]) for k in CHECK_KEYS]
    a, b = _ttest_levels(checks_db, "fit")
    out = tmp_path / "c.tex"
    tex = build_report(checks_db, fmt="tex", out=out, compare=["engine=local,dask"]).path.read_text(
        "utf-8"
    )
    (ttest_row,) = tex_table_rows(tex, "fit: engine, Welch")
    assert ttest_row[:3] == ["workers=1", "local", "dask"]
    assert ttest_row[14] == escape_latex(expected_hedges_g(a, b))
    assert ttest_row[9].startswith(escape_latex(_sig(a.mean() / b.mean(), 3) + " ["))


def test_tex_rows_match_the_longtable_specs(checks_db: Path, tmp_path: Path) -> None:
    for names in ({}, {"dask": "dask" + HOSTILE, "fit": "fit" + HOSTILE}):
        path = tmp_path / f"t{len(names)}.duckdb"
        write_db(path, names)
        tex = build_report(path, fmt="tex", out=tmp_path / f"t{len(names)}.tex").path.read_text(
            "utf-8"
        )
        tables = tex_longtables(tex)
        assert len(tables) >= 5  # summary, ANOVA and checks of engine and of workers, runs
        for spec, rows in tables:
            assert rows
            for line in rows:
                assert row_columns(line) == spec_columns(spec), (spec, line)


def test_hostile_names_in_checks_html(
    hostile_checks_db: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, names = hostile_checks_db
    html = build_report(path, fmt="html", out=tmp_path / "h.html").path.read_text("utf-8")
    assert "<script" not in html
    _check_html(path, html, names)  # cells decoded back to the raw names, values unchanged
    why = html.split(checks_id(names["fit"]), 1)[1].split("Recommended test", 1)[1]
    assert "engine=ray_ % &amp; $ # { } ~ ^ \\ \\input{/etc/passwd} &lt;script&gt;" in why


def test_hostile_names_in_checks_tex(
    hostile_checks_db: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    path, names = hostile_checks_db
    tex = build_report(path, fmt="tex", out=tmp_path / "h.tex").path.read_text("utf-8")
    assert r"\input{/etc/passwd}" not in tex and "<script>" not in tex
    raw = {escape_latex("engine=" + names.get(e, e)): names.get(e, e) for e in EXPECTED_RECOMMENDED}
    rows = tex_checks_rows(tex, escape_latex(names["fit"]))
    assert sorted(r[0] for r in rows) == sorted(raw)
    for row in rows:
        expected = expected_checks(_levels(path, raw[row[0]], names["fit"]))
        assert row[1:] == [escape_latex(expected[k]) for k in CHECK_KEYS]
    assert r"\item engine=spark\_ \% \& \$ \# \{ \} \textasciitilde{} \textasciicircum{}" in tex


def _latex_log(tex_path: Path, cwd: Path) -> str:
    subprocess.run(
        [
            "latexmk",
            "-pdf",
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-no-shell-escape",
            tex_path.name,
        ],
        cwd=cwd,
        capture_output=True,
        timeout=300,
        check=True,
    )
    return tex_path.with_suffix(".log").read_text(encoding="latin-1")


@needs_tex
@pytest.mark.parametrize("long_names", [False, True])
def test_tables_fit_the_page(tmp_path: Path, long_names: bool) -> None:
    """No overfull box anywhere: every table (wrapped columns for long names) fits the page."""
    names = (
        {
            "spark": "spark standalone with two executors",
            "ray": "ray runtime started in local mode",
            "fit": "multilayer perceptron on fashion mnist",
        }
        if long_names
        else {}
    )
    path = tmp_path / "fit.duckdb"
    write_db(path, names)
    out = tmp_path / "fit.tex"
    build_report(path, fmt="tex", out=out)
    log = _latex_log(out, tmp_path)
    assert "Overfull" not in log, re.findall(r"Overfull.*", log)


def _anova_result(**fields: object) -> AnovaResult:
    base = dict(
        metric="train_s",
        group="workers",
        groups=(),
        statistic=2.0,
        p_value=0.2,
        df_num=1.0,
        df_den=10000.0,
        eta_sq=0.1,
        n=12000,
        where=(),
        welch_p_value=0.01,
        kruskal_p_value=0.03,
        shapiro_p_value=0.001,
        shapiro_n=5000,
        recommended="welch",
        recommendation="Welch's ANOVA is recommended.",
    )
    return AnovaResult(**{**base, **fields})


def test_sampled_shapiro_shows_its_n() -> None:
    cells = _checks(_anova_result())
    assert cells["shapiro_p"] == "0.0010 (n = 5000)"
    assert cells["recommended"] == "Welch's ANOVA"
    assert (cells["recommended_p"], cells["recommended_significant"]) == ("0.0100", "yes")
    assert _checks(_anova_result(shapiro_n=12000))["shapiro_p"] == "0.0010"


def test_recommended_test_that_did_not_run_is_not_called_significant() -> None:
    cells = _checks(
        _anova_result(
            recommended="kruskal",
            kruskal_p_value=math.nan,
            notes=("Kruskal-Wallis is undefined: every value is tied",),
        )
    )
    assert cells["recommended"] == "Kruskal–Wallis"
    assert (cells["recommended_p"], cells["recommended_significant"]) == ("–", "–")
    assert cells["recommendation"].endswith("Kruskal-Wallis is undefined: every value is tied.")
    assert cells["welch_df"] == "–"
    f_test = _checks(_anova_result(recommended="anova", p_value=0.2))
    assert (f_test["recommended"], f_test["recommended_significant"]) == ("F test", "no")


def test_comparisons_say_whether_shapiro_was_sampled(checks_db: Path) -> None:
    with duckdb.connect(str(checks_db), read_only=True) as con:
        result = compare(con)
    assert result.anovas  # 24 to 90 trials: every residual is tested
    assert not any(c.anova.shapiro_sampled for c in result.anovas)


def _write(path: Path, rows: list[dict]) -> None:
    with open_store(path) as store:
        run = store.begin_run(source="measured", argv=["runner", "trials"], env={})
        store.append_trials([TrialRecord(run_id=run, status="ok", values=r) for r in rows])
        store.finish_run(run)


def test_each_dataset_is_held_fixed(tmp_path: Path) -> None:
    # knn on two datasets with very different times: pooling them would compare mixtures
    rng = np.random.default_rng(11)
    path = tmp_path / "two-datasets.duckdb"
    draws = {}
    rows = []
    for dataset, base in (("digits", 0.2), ("fashion-mnist", 5.0)):
        for engine in ("local", "dask"):
            for workers in (1, 2, 3):
                values = rng.normal(base * (1.1 if engine == "dask" else 1.0), 0.01, 6)
                draws[dataset, engine, workers] = values
                for rep, v in enumerate(values):
                    rows.append({
                        "engine": engine, "workload": "knn", "dataset": dataset,
                        "workers": workers, "threads_per_worker": 1, "warmup": False,
                        "repetition": rep, "train_s": float(v), "wall_s": float(v) + 0.1,
                    })  # fmt: skip
    _write(path, rows)
    with duckdb.connect(str(path), read_only=True) as con:
        result = compare(con)
    anovas = {(c.factor, c.stratum.fixed_label): c.anova for c in result.anovas}
    assert set(anovas) == {
        ("workers", f"engine={e}, dataset={d}")
        for e in ("local", "dask")
        for d in ("digits", "fashion-mnist")
    }
    ref = stats.f_oneway(*(draws["fashion-mnist", "dask", w] for w in (1, 2, 3)))
    res = anovas["workers", "engine=dask, dataset=fashion-mnist"]
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-9)
    labels = {(c.factor, c.stratum.fixed_label) for c in result.ttests}
    assert ("engine", "dataset=digits, workers=1") in labels
    assert ("dataset", "engine=dask, workers=2") in labels


def test_trials_without_a_dataset_are_not_pooled_with_the_others(tmp_path: Path) -> None:
    path = tmp_path / "null-dataset.duckdb"
    rows = []
    for dataset, base in (("digits", 1.0), (None, 6.0)):
        for engine in ("local", "dask"):
            for rep in range(5):
                v = base + 0.01 * rep + (0.2 if engine == "dask" else 0.0)
                rows.append({
                    "engine": engine, "workload": "knn", "dataset": dataset, "workers": 1,
                    "threads_per_worker": 1, "warmup": False, "repetition": rep,
                    "train_s": v, "wall_s": v + 0.1,
                })  # fmt: skip
    _write(path, rows)
    with duckdb.connect(str(path), read_only=True) as con:
        result = compare(con, requested=[("engine", ())])
    tests = [c.ttest for c in result.ttests]
    assert len(tests) == 2
    assert {(t.n_a, t.n_b) for t in tests} == {(5, 5)}
    assert sorted(t.mean_b for t in tests) == pytest.approx([1.02, 6.02], rel=1e-3)
