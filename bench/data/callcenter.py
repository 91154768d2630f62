"""A synthetic call-center outcome table whose attainable accuracy is known.

Each row is one inbound customer contact. The label `resolved` ("yes"/"no": was the issue
resolved on this contact?) follows a documented points rule, then a fraction `noise` of labels
is flipped at random. Because the rule is a deterministic function of the features, the best
possible accuracy is exactly ``1 - noise`` (for noise < 0.5), which lets the harness show how
close each method gets to the ceiling.

The rule (points; resolved when the total is >= 1):

* call reason: billing +2, sales +2, technical 0, complaint -1, cancellation -2
* queue wait: over 300 s -1, over 900 s a further -1
* agent tenure: 12+ months +1, 36+ months a further +1 (unknown tenure counts 0)
* previous contacts in the last 30 days: -1 for each beyond the first, at most -3
* night shift (22:00-05:59): -1
* technical issue on the phone channel: +1 (an interaction a linear model misses)
* customer tenure over 24 months: +1

`handle_time_s` is recorded after the call ends and depends on the outcome: a leak column.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["REASON_POINTS", "generate_callcenter", "load_callcenter", "rule_points"]

REASON_POINTS = {"billing": 2, "sales": 2, "technical": 0, "complaint": -1, "cancellation": -2}
REASON_SHARES = {
    "billing": 0.3,
    "technical": 0.3,
    "sales": 0.1,
    "complaint": 0.15,
    "cancellation": 0.15,
}
CHANNELS = {"phone": 0.6, "chat": 0.3, "callback": 0.1}


def rule_points(frame: pd.DataFrame) -> np.ndarray:
    """The documented points of each row (see the module docstring)."""
    points = frame["call_reason"].map(REASON_POINTS).to_numpy(dtype=float)
    wait = frame["queue_wait_s"].to_numpy()
    points -= (wait > 300).astype(float) + (wait > 900).astype(float)
    tenure = frame["agent_tenure_months"].fillna(0).to_numpy()
    points += (tenure >= 12).astype(float) + (tenure >= 36).astype(float)
    points -= np.clip(frame["previous_contacts_30d"].to_numpy() - 1, 0, 3)
    hour = frame["hour_of_day"].to_numpy()
    points -= ((hour >= 22) | (hour < 6)).astype(float)
    technical_phone = (frame["call_reason"] == "technical") & (frame["channel"] == "phone")
    points += technical_phone.to_numpy(dtype=float)
    points += (frame["customer_tenure_months"].fillna(0).to_numpy() > 24).astype(float)
    return points


def generate_callcenter(rows: int = 5000, seed: int = 0, noise: float = 0.1) -> pd.DataFrame:
    """`rows` synthetic contacts; a fraction `noise` of labels is flipped."""
    if not 0 <= noise < 0.5:
        raise ValueError(
            f"callcenter noise must be in [0, 0.5), got {noise} (dataset.params.noise)"
        )
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "call_reason": rng.choice(list(REASON_SHARES), rows, p=list(REASON_SHARES.values())),
            "channel": rng.choice(list(CHANNELS), rows, p=list(CHANNELS.values())),
            "queue_wait_s": rng.gamma(shape=1.5, scale=250.0, size=rows).round(0),
            "agent_tenure_months": rng.gamma(shape=2.0, scale=12.0, size=rows).round(0),
            "previous_contacts_30d": rng.poisson(0.9, rows),
            "hour_of_day": rng.choice(24, rows, p=_hour_profile()),
            "customer_tenure_months": rng.exponential(30.0, rows).round(0),
        }
    )
    # Real contact logs have gaps: new agents' records lag, new customers have no history yet.
    frame.loc[rng.random(rows) < 0.04, "agent_tenure_months"] = np.nan
    frame.loc[rng.random(rows) < 0.06, "customer_tenure_months"] = np.nan
    clean = rule_points(frame) >= 1
    flipped = rng.random(rows) < noise
    resolved = clean ^ flipped
    frame["resolved"] = np.where(resolved, "yes", "no")
    base = rng.gamma(shape=3.0, scale=120.0, size=rows)
    frame["handle_time_s"] = (base * np.where(resolved, 0.8, 1.6)).round(0)
    frame.insert(0, "contact_id", np.arange(1, rows + 1))
    return frame


def load_callcenter(
    rows: int = 5000, seed: int = 0, noise: float = 0.1
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Dataset source entry point: the table plus its known accuracy ceiling."""
    frame = generate_callcenter(rows=rows, seed=seed, noise=noise)
    meta = {
        "origin": f"synthetic call-center generator (rows={rows}, seed={seed}, noise={noise})",
        "attainable_accuracy": 1.0 - noise,
    }
    return frame, meta


def _hour_profile() -> np.ndarray:
    """Contacts by hour: busy in office hours, a thin night shift."""
    weights = np.array(
        [1, 1, 1, 1, 1, 1, 2, 4, 8, 10, 10, 10, 9, 9, 10, 10, 9, 8, 6, 4, 3, 2, 1, 1]
    )
    return weights / weights.sum()
