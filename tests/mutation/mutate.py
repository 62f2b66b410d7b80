"""Mutation testing of the core modules (issue 14, item 4), one module at a time, with mutmut 3.

``python tests/mutation/mutate.py [MODULE ...] [--max-children N] [--keep] [--summary-only]``
(``make mutation``, ``make mutation MODULE=circuits/units.py``). Not part of the test suite.

Each module runs in its own work folder ``runs/mutation/work/<module>/``: links to the packages and
``tests/``, and a ``pyproject.toml`` whose ``[tool.mutmut]`` is the project's one (``pyproject.toml``)
with ``only_mutate`` set to the module and ``pytest_add_cli_args_test_selection`` set to the fast unit
tests of that module (``MODULES`` below). mutmut copies the tree to ``mutants/`` there, records which
selected tests reach each function, and runs only those against each mutant of that function.
Never the real-data tests: every mutant runs in seconds.

Writes, per module, ``runs/mutation/<module>.survivors.md`` (the diff of every surviving mutant)
and updates ``runs/mutation/results.json`` and ``runs/mutation/summary.md`` (killed / survived /
timeout / no tests, kill rate; and the rate once the mutants reviewed as equivalent, listed in
``tests/mutation/equivalent.toml`` with their reason, are left out). See ``docs/mutation.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "runs" / "mutation"
EQUIVALENT = Path(__file__).with_name("equivalent.toml")
LINKED = ("circuits", "edits", "studies", "tests")

#: module → the fast unit tests that check it (mutmut runs, per mutant, only those that reach the function)
MODULES: dict[str, list[str]] = {
    "circuits/units.py": ["tests/unit/test_core_names.py", "tests/unit/test_units_exact.py"],
    "studies/run/cache.py": ["tests/unit/test_cache_keys.py", "tests/unit/test_sweep_cache.py",
                             "tests/unit/test_cache_format.py"],
    "studies/measure/statistics.py": ["tests/unit/test_measures_exact.py",
                                      "tests/unit/test_reference_statistics_exact.py"],
    "studies/measure/paired.py": ["tests/unit/test_statistics_exact.py", "tests/unit/test_family_ablation.py",
                                  "tests/unit/test_paired_defaults_exact.py"],
    "studies/measure/tuning.py": ["tests/unit/test_measures_exact.py", "tests/unit/test_tuning_measures.py",
                                  "tests/unit/test_stimuli_tuning.py", "tests/unit/test_tuning_metrics_edges.py",
                                  "tests/unit/test_measure_paths.py", "tests/unit/test_tuning_exact.py",
                                  # whole-network runs (2–10 s each): they test the architecture, not the measures
                                  "--deselect", "tests/unit/test_stimuli_tuning.py::test_fast_path_with_lucid_padding",
                                  "--deselect",
                                  "tests/unit/test_tuning_measures.py::test_measures_work_for_the_lucid_architecture"],
    "circuits/expanded.py": ["tests/unit/test_expanded_exact.py"],
    "edits/base.py": ["tests/unit/test_edits.py", "tests/unit/test_pathways.py", "tests/unit/test_edit_properties.py",
                      "tests/unit/test_edit_base_exact.py", "tests/unit/test_unit_weights_inputs.py"],
    "edits/ablate.py": ["tests/unit/test_edits.py", "tests/unit/test_interventions.py", "tests/unit/test_ablate_exact.py"],
    "edits/pathways.py": ["tests/unit/test_pathways.py", "tests/unit/test_pathways_exact.py"],
    "edits/linearize.py": ["tests/unit/test_edits.py", "tests/unit/test_pathways.py", "tests/unit/test_linearize_exact.py"],
    "edits/unit_weights.py": ["tests/unit/test_pathways.py", "tests/unit/test_edit_properties.py",
                              "tests/unit/test_unit_weights_exact.py", "tests/unit/test_unit_weights_inputs.py"],
    # test_edit_properties (hypothesis, ~20 s under load) reaches every plan function; left out for plan.py
    "edits/plan.py": ["tests/unit/test_edits.py", "tests/unit/test_pathways.py", "tests/unit/test_plan_exact.py"],
}


def slug(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".")


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)  # strings, numbers and lists of them are valid TOML in JSON spelling


def prepare(module: str, keep: bool) -> Path:
    """The module's work folder: links to the tree and a pyproject.toml restricted to the module."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    config = dict(project["tool"]["mutmut"])
    config["only_mutate"] = [module]
    config["pytest_add_cli_args_test_selection"] = [t for t in MODULES[module]  # options, node ids, existing files
                                                    if t.startswith("-") or "::" in t or (ROOT / t).exists()]
    work = OUT / "work" / slug(module)
    if not keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    for name in LINKED:
        link = work / name
        if not link.exists():
            link.symlink_to(ROOT / name, target_is_directory=True)
    pytest_ini = project["tool"]["pytest"]["ini_options"]
    lines = ["[tool.pytest.ini_options]"] + [f"{k} = {_toml_value(v)}" for k, v in pytest_ini.items()]
    lines += ["", "[tool.mutmut]"] + [f"{k} = {_toml_value(v)}" for k, v in config.items()]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    return work


def run_module(module: str, max_children: int, keep: bool, only: list[str] | None = None) -> float | None:
    """Run mutmut on one module; its wall time in s, or ``None`` when mutmut failed (see its log)."""
    work = prepare(module, keep)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # only mutants/ may be imported
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",  # forked workers: no thread pools
               CIRCUITS_DATA=os.environ.get("CIRCUITS_DATA", str(ROOT.parent / "shared" / "data")))
    t0 = time.perf_counter()
    with open(OUT / f"{slug(module)}.log", "w") as log:
        rc = subprocess.call([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *(only or [])],
                             cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - t0
    if rc != 0:
        print(f"mutmut failed on {module} (exit {rc}); see {OUT / (slug(module) + '.log')}", file=sys.stderr)
        return None
    return wall


def statuses(module: str) -> dict[str, str]:
    """mutant name → mutmut status (killed, survived, timeout, no tests, …) from the module's .meta file."""
    from mutmut.stats import status_by_exit_code

    meta = OUT / "work" / slug(module) / "mutants" / (module + ".meta")
    if not meta.exists():
        return {}
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    return {name: status_by_exit_code[code] for name, code in sorted(codes.items())}


_SHOW = """
import json, sys
from mutmut.mutation.diff_apply import get_diff_for_mutant
print(json.dumps({n: get_diff_for_mutant(n, path=sys.argv[1]) for n in sys.argv[2:]}))
"""


def write_survivors(module: str, found: dict[str, str]) -> None:
    """The diff of every mutant not killed, in ``runs/mutation/<module>.survivors.md`` (one mutmut call)."""
    names = [n for n, s in found.items() if s in ("survived", "no tests", "suspicious")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    diffs = json.loads(subprocess.run([sys.executable, "-c", _SHOW, module, *names], cwd=OUT / "work" / slug(module),
                                      env=env, capture_output=True, text=True, check=True).stdout) if names else {}
    parts = [f"# Mutants of {module} not killed ({len(names)})\n"]
    parts += [f"## {n} ({found[n]})\n\n```diff\n{diffs[n].strip()}\n```\n" for n in names]
    (OUT / f"{slug(module)}.survivors.md").write_text("\n".join(parts))


def row(module: str, found: dict[str, str], wall: float | None, equivalent: dict[str, str]) -> dict:
    counts = {s: sum(v == s for v in found.values()) for s in ("killed", "survived", "timeout", "no tests")}
    total = len(found)
    other = total - sum(counts.values())
    detected = counts["killed"] + counts["timeout"]
    eq = sum(1 for name, s in found.items() if name in equivalent and s != "killed")
    return {"module": module, "mutants": total, **counts, "other": other, "equivalent": eq,
            "kill_rate": detected / total if total else float("nan"),
            "kill_rate_without_equivalent": detected / (total - eq) if total > eq else float("nan"),
            "wall_s": None if wall is None else round(wall, 1)}


def write_summary(rows: dict[str, dict]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    head = ("| module | mutants | killed | timeout | survived | no tests | other | equivalent | kill rate "
            "| kill rate w/o equivalent | time (s) |")
    lines = ["# Mutation testing summary (tests/mutation/mutate.py)", "",
             "kill rate = (killed + timeout) / mutants; 'w/o equivalent' leaves out the survivors reviewed as "
             "equivalent in tests/mutation/equivalent.toml.", "", head, "|" + "---|" * 11]
    for r in rows.values():
        lines.append(f"| {r['module']} | {r['mutants']} | {r['killed']} | {r['timeout']} | {r['survived']} "
                     f"| {r['no tests']} | {r['other']} | {r['equivalent']} | {r['kill_rate']:.1%} "
                     f"| {r['kill_rate_without_equivalent']:.1%} | {r['wall_s']} |")
    (OUT / "summary.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("modules", nargs="*", help=f"modules to mutate (default: all): {', '.join(MODULES)}")
    p.add_argument("--max-children", type=int, default=2, help="parallel mutant workers (default 2)")
    p.add_argument("--keep", action="store_true", help="reuse the work folder and mutmut's earlier results")
    p.add_argument("--summary-only", action="store_true", help="rebuild the summary from earlier runs, run nothing")
    p.add_argument("--mutants", nargs="+", metavar="PATTERN",
                   help="run only these mutants (mutmut name patterns, e.g. 'studies.measure.tuning.x_tuning_metrics*'); "
                        "the others stay unchecked")
    args = p.parse_args(argv)
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        p.error(f"unknown module(s) {unknown}; choose from {list(MODULES)}")
    equivalent = {name: reason for entries in tomllib.loads(EQUIVALENT.read_text()).values()
                  for name, reason in entries.items()}
    OUT.mkdir(parents=True, exist_ok=True)
    results = OUT / "results.json"
    rows = json.loads(results.read_text()) if results.exists() else {}
    for module in args.modules or list(MODULES):
        wall = None if args.summary_only else run_module(module, args.max_children, args.keep, args.mutants)
        if wall is None and not args.summary_only:
            continue  # mutmut failed: nothing measured
        found = statuses(module)
        if not found:
            continue
        if wall is None and module in rows:
            wall = rows[module]["wall_s"]
        rows[module] = row(module, found, wall, equivalent)
        write_survivors(module, found)
        r = rows[module]
        print(f"{module}: {r['mutants']} mutants, killed {r['killed']}, timeout {r['timeout']}, survived "
              f"{r['survived']}, no tests {r['no tests']}: kill rate {r['kill_rate']:.1%} "
              f"({r['kill_rate_without_equivalent']:.1%} without equivalent), {r['wall_s']} s")
        write_summary(rows)  # after each module: a long run stopped half-way keeps what it measured
    write_summary(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
