"""Start-up: ``--help`` of the console scripts imports no heavy library (issue 14, target 5), and
the lazy ``analysis`` package still gives every public name.

Each check runs in a fresh interpreter (the test process has long imported everything). No
timing here: ``bench/startup.py`` measures; these tests check what ``--help`` imports.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: top-level packages ``--help`` must not import: the data stack, templates, plotting, engines
HEAVY = (
    "duckdb",
    "numpy",
    "scipy",
    "pandas",
    "matplotlib",
    "jinja2",
    "statsmodels",
    "pyarrow",
    "sklearn",
    "dask",
    "distributed",
    "ray",
    "pyspark",
    "tensorflow",
)

#: (module holding the Typer app, its arguments): the three scripts, then subcommands
HELP_CASES = [
    ("runner.cli", ["--help"]),
    ("analysis.cli", ["--help"]),
    ("reports.cli", ["--help"]),
    ("runner.cli", ["trials", "--help"]),
    ("runner.cli", ["import", "csv", "--help"]),
    ("analysis.cli", ["anova", "--help"]),
    ("analysis.cli", ["ttest", "--help"]),
    ("analysis.cli", ["summary", "--help"]),
    ("analysis.cli", ["regress", "--help"]),
    ("analysis.cli", ["power", "--help"]),
    ("analysis.cli", ["scaling", "--help"]),
    ("analysis.cli", ["cost", "--help"]),
    ("analysis.cli", ["cost-metric", "--help"]),
    ("analysis.cli", ["compare", "--help"]),
    ("reports.cli", ["build", "--help"]),
]

#: run the app's --help in-process (its text captured), then print whether the help was printed
#: and every imported module, as JSON
HELP_PROBE = """
import contextlib, importlib, io, json, sys
module, args = sys.argv[1], sys.argv[2:]
app = importlib.import_module(module).app
text = io.StringIO()
with contextlib.redirect_stdout(text):
    try:
        app(args=args, standalone_mode=False)
    except SystemExit as exc:
        assert exc.code in (0, None), exc.code
print(json.dumps({"usage": "Usage:" in text.getvalue(), "modules": sorted(sys.modules)}))
"""


def _python(code: str, *args: str) -> str:
    """stdout of ``python -c code args`` in a fresh interpreter run from the repository."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _heavy(modules: list[str]) -> list[str]:
    return sorted({m.split(".")[0] for m in modules} & set(HEAVY))


@pytest.mark.parametrize(
    ("module", "args"), HELP_CASES, ids=[" ".join([m, *a]) for m, a in HELP_CASES]
)
def test_help_imports_no_heavy_module(module: str, args: list[str]) -> None:
    report = json.loads(_python(HELP_PROBE, module, *args).splitlines()[-1])
    assert report["usage"], f"{module} {' '.join(args)} printed no help"
    assert _heavy(report["modules"]) == []
    # typer 0.29 coerces an unset --help flag of the group through pydantic (~0.08 s);
    # runner.climain.QuickHelpGroup avoids that
    assert "pydantic" not in {m.split(".")[0] for m in report["modules"]}


def test_the_probe_sees_heavy_modules() -> None:
    # the check above can fail: running an analysis in the same way does import DuckDB
    code = "import sys, json, analysis\nanalysis.connect\nprint(json.dumps(sorted(sys.modules)))"
    assert "duckdb" in _heavy(json.loads(_python(code).splitlines()[-1]))


def test_importing_the_analysis_package_is_light() -> None:
    code = (
        "import sys, json\nimport analysis, analysis.errors\nprint(json.dumps(sorted(sys.modules)))"
    )
    assert _heavy(json.loads(_python(code).splitlines()[-1])) == []


def test_all_lists_every_lazy_name() -> None:
    import analysis

    assert sorted(analysis.__all__) == sorted(analysis._WHERE)
    assert set(analysis.__all__) <= set(dir(analysis))


#: for each public name: the module its object says defines it (constants: analysis.defaults),
#: and whether ``from analysis import NAME`` gives that very object; NAMES_FIRST imports the
#: names before any submodule, SUBMODULES_FIRST imports every submodule first (so the package
#: attribute ``analysis.anova`` was once set to the module ``analysis.anova``)
SAME_OBJECT = """
import importlib, json, sys
import analysis
names = list(analysis.__all__)
if sys.argv[1] == "submodules-first":
    for module in sorted(set(analysis._WHERE.values())):
        importlib.import_module(module)
out = {}
for name in names:
    namespace = {}
    exec(f"from analysis import {name} as value", namespace)
    value = namespace["value"]
    if isinstance(value, type(sys)):  # a submodule where the function should be
        out[name] = [value.__name__, False, False]
        continue
    home = getattr(value, "__module__", None) or "analysis.defaults"
    out[name] = [home, getattr(importlib.import_module(home), name) is value,
                 getattr(analysis, name) is value]
star = {}
exec("from analysis import *", star)
out["*"] = sorted(k for k in star if not k.startswith("__"))
print(json.dumps(out))
"""


@pytest.mark.parametrize("order", ["names-first", "submodules-first"])
def test_every_public_name_is_the_defining_modules_object(order: str) -> None:
    import analysis

    out = json.loads(_python(SAME_OBJECT, order).splitlines()[-1])
    assert out.pop("*") == sorted(analysis.__all__)
    assert sorted(out) == sorted(analysis.__all__)
    wrong = {name: row for name, row in out.items() if not (row[1] and row[2])}
    assert wrong == {}
    # a function named like its module is the function, as before the package was lazy
    for name in ("anova", "compare", "cost", "cost_metric", "power", "regress", "scaling", "ttest"):
        assert out[name][0] == f"analysis.{name}"


def test_unknown_name_is_an_attribute_error() -> None:
    import analysis

    with pytest.raises(AttributeError, match="no attribute 'nonesuch'"):
        analysis.nonesuch  # noqa: B018
    with pytest.raises(ImportError):
        exec("from analysis import nonesuch", {})
