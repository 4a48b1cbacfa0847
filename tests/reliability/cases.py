"""Case counting for the reliability suite's summary: pytest items per part, and the sub-cases they cover.

A plugin loaded by tests/conftest.py rather than hooks in tests/reliability/conftest.py: under pytest-xdist
the tests run in worker processes and the summary is written by the controller, which never collects (so
never loads a sub-directory's conftest). Sub-case counts therefore travel with the test reports.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Generator
from typing import Any

import pytest

# Sub-cases a test covers inside one pytest item (hypothesis examples, model mutations, flows scanned).
CASES: Counter[str] = Counter()
# pytest items per part, by outcome, filled from the reports.
_ITEMS: dict[str, Counter[str]] = {}
# Counted by the test running now and not yet carried by one of its reports.
_PENDING: Counter[str] = Counter()
_PROPERTY = "reliability_cases"


def count(part: str, n: int = 1) -> None:
    _PENDING[part] += n


def _part(nodeid: str) -> str | None:
    match = re.search(r"tests/reliability/test_(\w+)\.py", nodeid)
    return match[1] if match else None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if _PENDING:
        # user_properties are sent with the report from a worker to the controller.
        report.user_properties.append((_PROPERTY, dict(_PENDING)))
        _PENDING.clear()
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    for name, cases in report.user_properties:
        if name == _PROPERTY and isinstance(cases, dict):
            CASES.update({str(part): int(n) for part, n in cases.items()})
    part = _part(report.nodeid)
    if part is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _ITEMS.setdefault(part, Counter())[outcome] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _ITEMS and not CASES:
        return
    terminalreporter.write_sep("=", "reliability suite: cases covered")
    for part in sorted(set(_ITEMS) | {p.split(":")[0] for p in CASES}):
        items = _ITEMS.get(part, Counter())
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(items.items()))
        terminalreporter.write_line(f"{part}: {sum(items.values())} test cases ({outcomes or 'none run'})")
        for key, n in sorted(CASES.items()):
            if key.split(":")[0] == part and ":" in key:
                terminalreporter.write_line(f"    {key.split(':', 1)[1]}: {n}")
