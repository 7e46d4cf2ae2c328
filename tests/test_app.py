"""The Streamlit dashboard through AppTest: every view renders, the deadline drives the plan, bad databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from advisor import store

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ADVISOR_DB", raising=False)
    return AppTest.from_file(APP, default_timeout=180)


def test_every_view_renders_on_the_demo_data(app: AppTest) -> None:
    at = app.run()
    assert not at.exception
    assert len(at.tabs) == 4
    labels = [m.label for m in at.metric]
    assert labels == ["Expected cost", "P50 / P90", "P(meet deadline)", "Saving vs on-demand"]
    assert at.metric[0].value.startswith("$")
    assert not at.error
    assert len(at.get("plotly_chart")) >= 5  # cost histogram, timeline, market history, fan chart, availability
    assert len(at.dataframe) >= 3  # plan, alternatives, backtest
    assumptions = at.expander[0]
    assert "assume" in assumptions.label
    assert "forecast scenarios that the optimizer did not see" in assumptions.markdown[0].value


def test_changing_the_deadline_changes_the_recommendation(app: AppTest) -> None:
    at = app.run()
    relaxed = [m.value for m in at.metric]
    at.number_input(key="deadline").set_value(104.0).run()
    assert not at.exception
    tight = [m.value for m in at.metric]
    assert tight != relaxed
    at.number_input(key="deadline").set_value(50.0).run()  # 100 h of work cannot fit
    assert any("earliest deadline you can meet is 101 h" in e.value for e in at.error)


def test_empty_database_shows_a_message(app: AppTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store.connect(tmp_path / "empty.duckdb").close()
    monkeypatch.setenv("ADVISOR_DB", str(tmp_path / "empty.duckdb"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "holds no markets yet" in at.error[0].value


def test_unreadable_database_shows_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "junk.duckdb").write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("ADVISOR_DB", str(tmp_path / "junk.duckdb"))
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert at.error[0].value.startswith("Cannot read the database")


def test_as_of_and_markets_restrict_the_recommendation(app: AppTest) -> None:
    at = app.run()
    at.text_input(key="as_of").set_value("2026-05-01T00:00:00Z").run()
    assert not at.exception and not at.error
    assert "2026-05-01" in at.sidebar.text_input(key="as_of").value
    at.text_input(key="as_of").set_value("2027-06-01T00:00:00Z").run()  # a year past the demo's records
    assert not at.exception and any("381 days after the last record" in e.value for e in at.error)
    at.text_input(key="as_of").set_value("2026-05-01T00:00:00Z").run()
    only = "lambda:us-east-1:gpu_8x_h100_sxm5:on_demand"
    at.multiselect(key="markets").set_value([only]).run()
    assert not at.exception
    assert at.metric[3].value == "0%"  # on-demand only: no saving against on-demand


def test_plan_table_states_each_rule_of_the_plan() -> None:
    from dataclasses import replace
    from types import SimpleNamespace

    from advisor.dashboard import plan_table
    from advisor.plan import Bid, Fallback, Plan

    plan = Plan(bids=(Bid("mithril:us-central3-a:h100-80gb.sxm.8x:spot", 15.94),),
                fallback=(Fallback("lambda:us-east-1:gpu_8x_h100_sxm5:on_demand"),), guard_margin_hours=2.0,
                late_limit=29.88, late_margin_hours=13.5)
    table = plan_table(SimpleNamespace(chosen=SimpleNamespace(plan=plan)))
    assert list(table["step"]) == ["bid 1", "raise limits", "fallback 1"]
    assert table["detail"][1] == "to $29.88/instance-h once 13.5 h of slack are left"
    table = plan_table(SimpleNamespace(chosen=SimpleNamespace(plan=replace(plan, late_after_hours=24.0))))
    assert table["detail"][1] == ("to $29.88/instance-h once 13.5 h of slack are left, or after 24 h in a row "
                                  "waiting below the fallback's price")
    table = plan_table(SimpleNamespace(chosen=SimpleNamespace(plan=replace(plan, dear_excess_hours=1.0))))
    assert list(table["step"]) == ["bid 1", "raise limits", "cap limits", "fallback 1"]
    assert table["detail"][2] == "at the fallback's price once paying above it has cost 1 h of its price more"
    table = plan_table(SimpleNamespace(chosen=SimpleNamespace(plan=replace(plan, keep_pace=True))))
    assert list(table["step"]) == ["bid 1", "raise limits", "fallback 1", "keep pace"]
    assert table["market"][3] == "lambda:us-east-1:gpu_8x_h100_sxm5:on_demand"
    ladder = replace(plan, bids=(*plan.bids, Bid("mithril:us-central5-a:h100-80gb.sxm.8x:spot", 15.94)),
                     patience_hours=2.0, switch_below=0.8)
    table = plan_table(SimpleNamespace(chosen=SimpleNamespace(plan=ladder)))
    assert list(table["step"]) == ["bid 1", "bid 2", "raise limits", "patience", "switch", "fallback 1"]
    assert table["detail"][3] == ("when a market drops the job, wait up to 2 h for it (or an earlier one) before "
                                  "taking a later one")
    assert table["detail"][4] == "to the first other bid in the list priced below 80% of the price paid"
    table = plan_table(SimpleNamespace(chosen=SimpleNamespace(plan=replace(plan, return_below=0.8))))
    assert list(table["step"]) == ["bid 1", "raise limits", "fallback 1", "return"]
    assert table["detail"][3] == ("after the fallback, a bid priced below 80% of its price while the slack left "
                                  "absorbs a preemption there")
