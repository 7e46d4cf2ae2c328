"""advisor dashboard (Streamlit): a layout over `advisor`; every number comes from the library.

    streamlit run app.py          # the demo data; set ADVISOR_DB or the sidebar for another database
"""

from __future__ import annotations

import json
import os

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from advisor import dashboard, store
from advisor.backtest import Grid, Universe, backtest_from_store, summarize
from advisor.errors import AdvisorError
from advisor.optimize import recommend
from advisor.plan import workload_from_dict
from advisor.report import build_report, dump_task, read_task, to_markdown, workload_fields, write_task
from advisor.store.default import resolve_db
from advisor.units import format_usd, hour_after

st.set_page_config(page_title="advisor: GPU bids, reservations, fallbacks", layout="wide")


@st.cache_resource
def connection(path: str):
    return store.connect(path, read_only=True)


@st.cache_data(show_spinner="Reading markets...")
def markets_table(path: str) -> pd.DataFrame:
    return store.list_markets(connection(path))


@st.cache_data(show_spinner="Optimizing over forecast scenarios...")
def cached_recommendation(path: str, workload_json: str, scenarios: int, instance_type: str | None,
                          as_of: str | None):
    origin = pd.Timestamp(as_of) if as_of else None
    rec = recommend(connection(path), workload_from_dict(json.loads(workload_json)), origin, instance_type,
                    n_train=scenarios, n_eval=int(scenarios * 2.5))
    return rec, build_report(rec)


@st.cache_data(show_spinner="Forecasting...")
def cached_forecast(path: str, market: str, as_of: pd.Timestamp, horizon: int):
    fan, model = dashboard.forecast_fan(connection(path), market, as_of, horizon)
    return fan, dashboard.availability_curve(model, market, horizon)


@st.cache_data(show_spinner="Replaying strategies on history...")
def cached_backtest(path: str, spot: tuple[str, ...], on_demand: tuple[str, ...], hours: tuple[float, ...],
                    slack: tuple[float, ...]) -> pd.DataFrame:
    try:
        rows, _ = backtest_from_store(connection(path), Universe(spot=spot, on_demand=on_demand),
                                      Grid(hours=hours, slack=slack), every_hours=72, warmup_hours=14 * 24)
    except ValueError:  # too little history for the grid
        return pd.DataFrame()
    return rows


def sidebar(gpus: list[str], providers: list[str], frame: pd.DataFrame) -> tuple[dict, int, str | None, str | None]:
    side = st.sidebar
    side.header("Workload")
    task = side.file_uploader("SkyPilot task YAML (optional)", type=["yaml", "yml"], key="task")
    from_task = {}
    if task is not None:
        import tempfile

        with tempfile.NamedTemporaryFile("wb", suffix=".yaml", delete=False) as f:
            f.write(task.getvalue())
        from_task = workload_fields(read_task(f.name), task.name)
        side.caption(f"From the task: {from_task}")
    gpu = side.selectbox("GPU", gpus, index=gpus.index(from_task["gpu"]) if from_task.get("gpu") in gpus else 0,
                         key="gpu")
    w = {
        "gpu": gpu,
        "gpus_per_node": int(side.number_input("GPUs per node", 1, 16, from_task.get("gpus_per_node", 8),
                                               key="gpus_per_node")),
        "nodes": int(side.number_input("Nodes (a gang)", 1, 64, from_task.get("nodes", 2), key="nodes")),
        "hours": float(side.number_input("Work (gang wall-hours)", 1.0, 2000.0, 100.0, key="hours")),
        "deadline_hours": float(side.number_input("Deadline (hours from now)", 1.0, 3000.0, 168.0, key="deadline")),
        "checkpoint_every": float(side.number_input("Checkpoint every (h)", 0.0, 24.0, 1.0, key="ckpt")),
        "restart_overhead": float(side.number_input("Restart overhead (h)", 0.0, 0.99, 0.25, key="restart")),
        "target_probability": float(side.slider("P(meet deadline) target", 0.5, 0.99, 0.95, key="target")),
        "credit_value": float(side.slider("Worth of $1 Mithril credit", 0.0, 1.0, 1.0, key="credit")),
    }
    p90 = side.number_input("Work P90 (0 = certain)", 0.0, 4000.0, 0.0, key="p90")
    if p90 > w["hours"]:
        w["hours_p90"] = float(p90)
    budget = side.number_input("Budget USD (0 = none)", 0.0, 1e7, 0.0, key="budget")
    if budget > 0:
        w["budget"] = float(budget)
    chosen = side.multiselect("Providers (none = all)", providers, key="providers")
    if chosen:
        w["providers"] = chosen
    mine = frame[(frame["gpu"] == gpu) & (frame["gpus_per_instance"] == w["gpus_per_node"])]
    types = ["any", *sorted(mine["instance_type"].unique())]
    instance_type = side.selectbox("Instance type", types, key="instance_type")
    markets = side.multiselect("Only these markets (none = all that match)", mine["market"].tolist(), key="markets")
    if markets:
        w["markets"] = markets
    as_of = side.text_input("As of (ISO-8601 UTC; empty = latest data)", "", key="as_of").strip() or None
    if as_of:
        try:
            pd.Timestamp(as_of)
        except ValueError:
            side.error(f"As of: {as_of!r} is not an ISO-8601 timestamp, e.g. 2026-05-01T00:00:00Z")
            as_of = None
    scenarios = int(side.select_slider("Scenarios", [60, 100, 200, 400], value=100, key="scenarios"))
    return w, scenarios, (None if instance_type == "any" else instance_type), as_of


def market_view(path: str, frame: pd.DataFrame, gpu: str) -> None:
    mine = frame[frame["gpu"] == gpu]
    chosen = st.multiselect("Markets", mine["market"].tolist(),
                            default=mine.loc[mine["kind"] == "spot", "market"].tolist()[:4], key="market_pick")
    if not chosen:
        st.info("Pick one or more markets.")
        return
    first, last = pd.Timestamp(mine["first_ts"].min()), pd.Timestamp(mine["last_ts"].max()) + pd.Timedelta(hours=1)
    lo, hi = st.slider("Range", min_value=first.to_pydatetime(), max_value=last.to_pydatetime(),
                       value=(max(first, last - pd.Timedelta(days=14)).to_pydatetime(), last.to_pydatetime()),
                       key="range")
    od = mine.loc[mine["kind"] == "on_demand", "market"].tolist()
    data = dashboard.market_history(connection(path), chosen + [m for m in od if m not in chosen], lo, hi)
    fig = px.line(data[data["kind"] != "on_demand"], x="hour", y="price", color="market",
                  labels={"price": "$ / instance-hour"})
    for m in od:
        level = data.loc[data["market"] == m, "price"].dropna()
        if len(level):
            fig.add_hline(y=float(level.iloc[-1]), line_dash="dash", annotation_text=m, opacity=0.5)
    st.plotly_chart(fig, width="stretch")


def forecast_view(path: str, frame: pd.DataFrame, gpu: str, rec) -> None:
    spot = frame.loc[(frame["gpu"] == gpu) & (frame["kind"] == "spot"), "market"].tolist()
    if not spot:
        st.info("No spot market for this GPU.")
        return
    bids = {b.market: b.limit_price for b in rec.chosen.plan.bids} if rec else {}
    default = next((i for i, m in enumerate(spot) if m in bids), 0)
    market = st.selectbox("Market", spot, index=default, key="forecast_market")
    as_of = hour_after(frame.loc[frame["market"] == market, "last_ts"].iloc[0])
    fan, curve = cached_forecast(path, market, as_of, 168)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=fan["hour"], y=fan["q90"], line={"width": 0}, showlegend=False))
    fig.add_trace(go.Scatter(x=fan["hour"], y=fan["q10"], fill="tonexty", name="10-90%", line={"width": 0}))
    fig.add_trace(go.Scatter(x=fan["hour"], y=fan["q75"], line={"width": 0}, showlegend=False))
    fig.add_trace(go.Scatter(x=fan["hour"], y=fan["q25"], fill="tonexty", name="25-75%", line={"width": 0}))
    fig.add_trace(go.Scatter(x=fan["hour"], y=fan["q50"], name="median", line={"color": "black"}))
    fig.update_layout(title=f"{market}: price forecast from {as_of:%Y-%m-%d %H:%M} UTC",
                      yaxis_title="$ / instance-hour")
    st.plotly_chart(fig, width="stretch")
    avail = px.line(curve, x="limit", y="probability", labels={"limit": "limit $ / instance-hour",
                                                                "probability": "share of hours the bid holds"})
    if market in bids:
        avail.add_vline(x=bids[market], line_dash="dash", annotation_text=f"recommended ${bids[market]:.2f}")
    st.plotly_chart(avail, width="stretch")


def recommendation_view(rec, report: dict) -> None:
    cost = report["cost"]
    cols = st.columns(4)
    cols[0].metric("Expected cost", format_usd(cost['mean']))
    cols[1].metric("P50 / P90", f"{format_usd(cost['p50'])} / {format_usd(cost['p90'])}")
    cols[2].metric("P(meet deadline)", f"{report['probability_meet_deadline']:.1%}")
    cols[3].metric("Saving vs on-demand", f"{report['savings_vs_on_demand']['fraction']:.0%}")
    st.subheader("Plan")
    st.dataframe(dashboard.plan_table(rec), hide_index=True, width="stretch")
    if report["reservation_reason"]:
        st.caption(f"Reservation tiers compared: {report['reservation_reason']}")
    for cmd in report["bid_commands"]:
        st.code(cmd, language="bash")
    with st.expander("What these numbers assume, and what was adjusted after the optimizer"):
        st.markdown("\n".join(f"- {a}" for a in report["assumptions"]))
    left, right = st.columns(2)
    left.plotly_chart(px.histogram(pd.DataFrame({"cost": rec.chosen.result.cost}), x="cost", nbins=40,
                                   title="Cost over the evaluation scenarios (USD)"), width="stretch")
    timeline = dashboard.median_timeline(rec)
    right.plotly_chart(px.scatter(timeline, x="hour", y="where", color="preempted",
                                  title="Where the median scenario runs, hour by hour"), width="stretch")
    st.subheader("Alternatives considered")
    st.dataframe(dashboard.alternatives_table(rec), hide_index=True, width="stretch")
    c1, c2, c3 = st.columns(3)
    c1.download_button("JSON report", json.dumps(report, indent=2), "report.json", "application/json")
    c2.download_button("Markdown section", to_markdown(report), "plan.md", "text/markdown")
    task = write_task({"resources": {"accelerators": f"{rec.workload.gpu}:{rec.workload.gpus_per_node}"},
                       "num_nodes": rec.workload.nodes}, rec.chosen.plan, {})
    c3.download_button("SkyPilot task YAML", dump_task(task), "task.yaml", "text/yaml")


def backtest_view(path: str, frame: pd.DataFrame, w: dict) -> None:
    mine = frame[(frame["gpu"] == w["gpu"]) & (frame["gpus_per_instance"] == w["gpus_per_node"])]
    spot = tuple(mine.loc[mine["kind"] == "spot", "market"])
    od = tuple(mine.loc[mine["kind"] == "on_demand", "market"])
    if not spot or not od:
        st.info("The backtest needs spot and on-demand markets for this GPU.")
        return
    st.caption("Baselines replayed on recorded history, every 3 days after 2 weeks, against the hindsight optimum.")
    rows = cached_backtest(path, spot, od, (24.0, 72.0), (1.25, 2.0))
    if rows.empty:
        st.info("Too little history for a backtest.")
        return
    table = summarize(rows)
    st.dataframe(table, hide_index=True, width="stretch")
    st.plotly_chart(px.bar(table, x="strategy", y="mean_ratio", title="Mean cost / hindsight optimum"),
                    width="stretch")


def main() -> None:
    st.title("advisor: what to bid, whether to reserve, where to fall back")
    default = os.environ.get("ADVISOR_DB") or str(resolve_db(None))
    path = st.sidebar.text_input("Database", value=default, key="db")
    try:
        frame = markets_table(path)
    except Exception as exc:  # any unreadable file: say so instead of a traceback
        st.error(f"Cannot read the database {path}: {str(exc).splitlines()[0]}. Pick another file in the sidebar, "
                 f"or build one with `advisor ingest FILE --db {path}`.")
        st.stop()
    if frame.empty:
        st.error(f"The database {path} holds no markets yet. Load prices with `advisor ingest FILE --db {path}` "
                 f"or clear the path to use the demo data.")
        st.stop()
    gpus = dashboard.gpus_of(frame)
    w, scenarios, instance_type, as_of = sidebar(gpus, sorted(frame["provider"].unique()), frame)
    rec, report, problem = None, None, None
    try:
        rec, report = cached_recommendation(path, json.dumps(w, sort_keys=True), scenarios, instance_type, as_of)
    except AdvisorError as exc:
        problem = str(exc)
    tabs = st.tabs(["Recommendation", "Market", "Forecast", "Backtest"])
    with tabs[0]:
        if problem:
            st.error(problem)
        else:
            recommendation_view(rec, report)
    with tabs[1]:
        market_view(path, frame, w["gpu"])
    with tabs[2]:
        forecast_view(path, frame, w["gpu"], rec)
    with tabs[3]:
        backtest_view(path, frame, w)


main()
