"""A PNG chart of the cost comparison: monthly and cumulative cost per scenario.

matplotlib is imported only when a chart is drawn, with the Agg backend, so
planning works without it and without a display.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from datamove.errors import UsageError
from datamove.tiering.cost import CostComparison

log = logging.getLogger(__name__)

_STYLES = {
    "all_hot": {"color": "#c0392b", "linestyle": "-"},
    "plan": {"color": "#27ae60", "linestyle": "-"},
    "automatic": {"color": "#2980b9", "linestyle": "--"},
}


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise UsageError(
            "drawing the cost chart needs matplotlib; install it "
            "(pip install matplotlib) or leave out the chart"
        ) from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as pyplot

    return pyplot


def write_cost_chart(
    comparison: CostComparison, path: str | os.PathLike[str], *, title: str = ""
) -> str:
    """Draw the comparison over its horizon and save it as a PNG.

    The left panel shows each scenario's cost per month, the right panel the
    running total, so the one-off fees of the plan and where it overtakes
    the others are both visible.

    Args:
        comparison: the costs from a :class:`~datamove.tiering.TierPlan`.
        path: the PNG file to write (its directory must exist).
        title: a heading; by default provider, region and price date.

    Returns:
        The path written.

    Raises:
        UsageError: matplotlib is not installed, or the file cannot be written.
    """
    pyplot = _pyplot()
    target = os.fspath(path)
    heading = title or (
        f"{comparison.provider} {comparison.region}: storage, requests, retrievals "
        f"and fees over {comparison.horizon_months} months "
        f"(prices as of {comparison.prices_as_of})"
    )
    figure, (monthly, cumulative) = pyplot.subplots(1, 2, figsize=(12, 4.5), dpi=100)
    try:
        for scenario in comparison.scenarios:
            style = _STYLES.get(scenario.name, {})
            months = [m.month for m in scenario.months]
            label = f"{scenario.label}: {comparison.currency} {scenario.total:,.2f}"
            monthly.plot(
                months,
                [m.total for m in scenario.months],
                marker="o",
                markersize=3,
                label=label,
                **style,
            )
            cumulative.plot(
                months,
                scenario.cumulative(),
                marker="o",
                markersize=3,
                label=label,
                **style,
            )
        monthly.set_title("per month")
        cumulative.set_title("cumulative")
        for axes in (monthly, cumulative):
            axes.set_xlabel("month")
            axes.set_ylabel(comparison.currency)
            axes.grid(True, alpha=0.3)
            axes.set_ylim(bottom=0)
        cumulative.legend(loc="upper left", fontsize=8)
        figure.suptitle(heading, fontsize=10)
        figure.tight_layout()
        try:
            figure.savefig(target, format="png")
        except OSError as error:
            raise UsageError(
                f"{target}: cannot write the chart ({error.strerror}); "
                "check that the directory exists and is writable"
            ) from None
    finally:
        pyplot.close(figure)
    log.info("%s: cost chart written", target)
    return target
