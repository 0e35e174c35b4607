"""Print pytest's counts from its JUnit XML as the one closing line CI reads:
``N passed, N failed`` (``, N skipped`` when any were). Errors (a fixture that broke)
count as failed. A missing or unreadable report is ``0 passed, 1 failed``: the run did not
finish, and must not look green.

Usage: python scripts/junit_summary.py JUNIT.xml
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) over every test suite in the report."""
    root = ET.parse(report).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    total = failed = skipped = 0
    for suite in suites:
        total += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return max(total - failed - skipped, 0), failed, skipped


def line(passed: int, failed: int, skipped: int) -> str:
    text = f"{passed} passed, {failed} failed"
    return text + (f", {skipped} skipped" if skipped else "")


def main(argv: list[str]) -> int:
    try:
        passed, failed, skipped = counts(Path(argv[1]))
    except (OSError, ET.ParseError, IndexError, ValueError):
        passed, failed, skipped = 0, 1, 0
    print(line(passed, failed, skipped))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
