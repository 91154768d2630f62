"""The cost-to-deploy table and the break-even sentences, as text both renderers lay out.

A row per method at the largest training size it ran: its score, what it costs once (training,
tuning, code generation, labelling), what each 1,000 predictions cost, and the cost of a day at
`report.daily_predictions`. USD where the run paid or `report.usd_per_cpu_hour` prices compute,
else compute time.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import pandas as pd

from bench.report.cost import BreakEven, break_even, deploy_costs, format_volume
from bench.report.doc import Block, Bullets, Heading, Table
from bench.report.runs import metric_name
from bench.report.verdict import format_sig

if TYPE_CHECKING:
    from bench.report.content import DatasetSection

__all__ = ["break_even_lines", "deploy_blocks", "deploy_header", "deploy_rows"]


def deploy_blocks(section: DatasetSection) -> list[Block]:
    """The cost-to-deploy table and the break-even sentences."""
    settings, metric = section.settings, section.metric
    daily = settings.daily_predictions
    deploy = deploy_costs(section.runs, metric, daily, settings.usd_per_cpu_hour)
    if not len(deploy):
        return []
    lines = break_even_lines(break_even(section.runs, metric), daily)
    return [
        Heading("Cost to deploy", 3),
        Table(
            tuple(deploy_header(metric, daily)),
            tuple(map(tuple, deploy_rows(deploy, metric, section.unit))),
        ),
        *([Bullets(tuple(lines))] if lines else []),
    ]


def deploy_header(metric: str, daily_predictions: int) -> list[str]:
    return [
        "method",
        "n_train",
        metric_name(metric),
        "one-off",
        "per 1,000 predictions",
        f"per day at {daily_predictions:,}",
    ]


def _usd(x: float) -> str:
    return f"${format_sig(x)}"


def _seconds(x: float) -> str:
    if math.isnan(x):
        return "-"
    if x >= 3600:
        return f"{format_sig(x / 3600)} h"
    return f"{format_sig(x)} s"


def _cell(usd: float, seconds: float, priced: bool) -> str:
    """USD when priced (the compute time beside it), else compute time; '-' when unknown."""
    if priced and not math.isnan(usd):
        return _usd(usd) + (f" ({_seconds(seconds)})" if not math.isnan(seconds) else "")
    return _seconds(seconds)


def deploy_rows(deploy: pd.DataFrame, metric: str, unit: str) -> list[list[str]]:
    """The `deploy_costs` frame as display rows (see `deploy_header`); `unit` "usd" shows
    prices, "seconds" (nothing priced) compute time only."""
    priced = unit == "usd"
    rows = []
    for row in deploy.itertuples(index=False):
        values = row._asdict()
        per_day_hours = float(values.get("per_day_cpu_hours", float("nan")))
        per_day = (
            _usd(float(values["per_day_usd"]))
            if priced and not math.isnan(float(values.get("per_day_usd", float("nan"))))
            else ("-" if math.isnan(per_day_hours) else f"{format_sig(per_day_hours)} compute-h")
        )
        rows.append(
            [
                str(values["label"]),
                f"{int(values['n_train']):,}",
                f"{float(values[metric]):.3f}",
                _cell(float(values["one_off_usd"]), float(values["one_off_seconds"]), priced),
                _cell(
                    float(values["marginal_usd_per_1k"]),
                    float(values["marginal_seconds_per_1k"]),
                    priced,
                ),
                per_day,
            ]
        )
    return rows


def _method(label: str) -> str:
    """`llm_icl (local_gemma3_270m, csv_table)` -> `llm_icl`: the sentence names the LLM once."""
    return label.split(" (")[0]


def break_even_lines(items: list[BreakEven], daily_predictions: int) -> list[str]:
    """One sentence per LLM that was both served (in-context) and distilled."""
    lines = []
    for item in items:
        head = (
            f"Distilling {item.llm} ({_method(item.distilled)}) against serving it "
            f"({_method(item.served)}), both at {item.n_train} rows"
        )
        if item.volume is None:
            lines.append(f"{head}: distilling never pays off (it costs no less per prediction).")
        elif item.volume == 0:
            lines.append(f"{head}: distilling is cheaper from the first prediction.")
        else:
            when = format_volume(item.volume, daily_predictions)
            lines.append(f"{head}: distilling is cheaper after {when}.")
    return lines
