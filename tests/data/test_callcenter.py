"""The synthetic call-center generator: deterministic, and labelled by its documented rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bench.data.callcenter import REASON_POINTS, generate_callcenter, load_callcenter, rule_points


def test_same_seed_gives_the_same_table() -> None:
    pd.testing.assert_frame_equal(
        generate_callcenter(rows=500, seed=7), generate_callcenter(rows=500, seed=7)
    )


def test_different_seeds_give_different_tables() -> None:
    a, b = generate_callcenter(rows=500, seed=0), generate_callcenter(rows=500, seed=1)
    assert not a.drop(columns="contact_id").equals(b.drop(columns="contact_id"))


@pytest.mark.parametrize("noise", [0.0, 0.1, 0.3])
def test_labels_follow_the_rule_except_for_the_flipped_fraction(noise: float) -> None:
    rows = 20_000
    frame = generate_callcenter(rows=rows, seed=3, noise=noise)
    rule_says_yes = rule_points(frame) >= 1
    agreement = np.mean(rule_says_yes == (frame["resolved"] == "yes").to_numpy())
    # Flips are Bernoulli(noise): the standard error of the agreement is below 0.0035 here.
    assert agreement == pytest.approx(1 - noise, abs=0.015)
    if noise == 0.0:
        assert agreement == 1.0


def test_both_outcomes_occur_in_useful_shares() -> None:
    share = (generate_callcenter(rows=5000, seed=0)["resolved"] == "yes").mean()
    assert 0.2 < share < 0.8


@pytest.mark.parametrize("noise", [-0.1, 0.5, 0.9])
def test_noise_out_of_range_names_the_config_key(noise: float) -> None:
    with pytest.raises(ValueError, match=r"dataset\.params\.noise"):
        generate_callcenter(rows=10, noise=noise)


def test_rule_points_follow_the_documented_rule() -> None:
    # Rows built by hand from the rule in the module docstring.
    frame = pd.DataFrame(
        {
            "call_reason": ["billing", "technical", "cancellation", "technical"],
            "channel": ["chat", "phone", "phone", "chat"],
            "queue_wait_s": [0.0, 301.0, 1000.0, 100.0],
            "agent_tenure_months": [40.0, 12.0, np.nan, 0.0],
            "previous_contacts_30d": [1, 0, 9, 2],
            "hour_of_day": [12, 23, 3, 10],
            "customer_tenure_months": [30.0, np.nan, 25.0, 24.0],
        }
    )
    expected = [
        2 + 2 + 1,  # billing, tenure 36+, long-standing customer
        0 - 1 + 1 - 1 + 1,  # technical, wait > 300, tenure 12+, night, technical on phone
        -2 - 2 - 3 - 1 + 1,  # cancellation, wait > 900, 3+ extra contacts (capped), night
        0 - 1,  # technical on chat, one extra contact; 24 months is not "over 24"
    ]
    np.testing.assert_array_equal(rule_points(frame), expected)
    assert REASON_POINTS["billing"] == REASON_POINTS["sales"] > REASON_POINTS["cancellation"]


def test_leak_column_depends_on_the_outcome() -> None:
    frame = generate_callcenter(rows=5000, seed=0)
    by_outcome = frame.groupby("resolved")["handle_time_s"].median()
    assert by_outcome["yes"] < by_outcome["no"]


def test_tenure_columns_have_gaps_like_real_logs() -> None:
    frame = generate_callcenter(rows=5000, seed=0)
    for column in ("agent_tenure_months", "customer_tenure_months"):
        assert 0 < frame[column].isna().mean() < 0.2
    assert frame.drop(columns=["agent_tenure_months", "customer_tenure_months"]).notna().all().all()


def test_source_entry_point_reports_the_attainable_accuracy() -> None:
    frame, meta = load_callcenter(rows=300, seed=2, noise=0.2)
    assert len(frame) == 300
    assert frame["contact_id"].is_unique
    assert meta["attainable_accuracy"] == pytest.approx(0.8)
    assert "seed=2" in meta["origin"]
