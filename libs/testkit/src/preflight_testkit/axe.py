"""Accessibility checked in a real browser: axe-core (npm; `make setup` installs it into
`.cache/axe-core`) run on the page a Selenium WebDriver shows, against WCAG 2.2 level AA.

`wcag_violations(driver)` injects axe-core into the page (a console page's Content-Security-Policy
allows no script, but WebDriver's own scripts are not the page's) and returns what it finds.
"""

from __future__ import annotations

from typing import Any

from preflight_testkit.checkout import repository

AXE = repository() / ".cache/axe-core/node_modules/axe-core/axe.min.js"

WCAG_22_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22a", "wcag22aa")
"""axe-core's tags for every WCAG 2.0, 2.1 and 2.2 success criterion of levels A and AA."""


def wcag_violations(driver: Any) -> list[str]:
    """Each WCAG 2.2 AA violation axe-core finds on the page `driver` shows, one line each (rule:
    help at the elements' selectors), or axe-core's own failure; empty when there is none. Fails,
    never skips, when axe-core is not installed."""
    assert AXE.exists(), f"{AXE} is missing: run `make setup`"
    driver.execute_script(AXE.read_text())
    found = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        axe.run(document, {runOnly: {type: "tag", values: arguments[0]}})
          .then(r => done(r.violations.map(
            v => v.id + ": " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", "))))
          .catch(e => done(["axe-core failed: " + e]));
        """,
        list(WCAG_22_AA),
    )
    return [str(line) for line in found]
