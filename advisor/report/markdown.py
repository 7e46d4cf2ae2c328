"""The recommendation as a Markdown section a person pastes into a planning document."""

from __future__ import annotations

from advisor.units import format_usd

SLACK = "the slack left (hours to the deadline less the work left and a restart)"


def _plan_lines(plan: dict) -> list[str]:
    lines, slack = [], SLACK  # the first mention says what the slack left is
    for i, bid in enumerate(plan["bids"], 1):
        lines.append(f"{i}. Bid on `{bid['market']}` with a limit of **${bid['limit_price']:.2f}/instance-hour**")
    if plan["bids"] and plan.get("late_limit") is not None:
        lines.append(f"- Raise every limit to **${plan['late_limit']:.2f}/instance-hour** once {slack} is "
                     f"{plan['late_margin_hours']:g} h{_waited(plan.get('late_after_hours'))}")
        slack = "the slack left"
    if plan["bids"] and plan.get("dear_excess_hours") is not None:
        lines.append(f"- Lower every limit to the first fallback's price once riding prices above it has cost, in "
                     f"a row of such hours, {plan['dear_excess_hours']:g} h of its price more than it would have "
                     f"(unless the limits were raised first)")
    if len(plan["bids"]) > 1 and plan.get("patience_hours"):
        lines.append(f"- When a market drops the job, wait up to {plan['patience_hours']:g} h for it (or an earlier "
                     f"one) before taking a later one")
    if len(plan["bids"]) > 1 and plan.get("switch_below") is not None:
        lines.append(f"- Switch to the first other bid in the list priced below {plan['switch_below']:.0%} of the "
                     f"price paid (a checkpoint, then a restart there)")
    res = plan["reservation"]
    if res:
        lines.append(f"- Reserve **{res['instances']} x `{res['market']}`**, {res['tier']} flexibility, "
                     f"{res['hours']} h from hour {res['start_hour']} at ${res['unit_price']:.2f}/instance-hour "
                     f"(pause credit ${res['pause_credit']:.2f}, return credit ${res['return_credit']:.2f})")
    if plan["fallback"]:
        order = " -> ".join(f"`{f['market']}`" for f in plan["fallback"])
        lines.append(f"- Fall back to {order} once {slack} is {plan['guard_margin_hours']:g} h")
        if plan["bids"] and plan.get("return_below") is not None:
            lines.append(f"- After that, still run a bid priced below {plan['return_below']:.0%} of the first "
                         f"fallback's price (the one held, else the first in the list) while the slack left would "
                         f"absorb a preemption there: a checkpoint interval and a restart, and a restart to move")
        if plan.get("keep_pace"):
            lines.append(f"- Keep pace: while no bid can run and the work done is over an hour behind elapsed x work "
                         f"/ deadline, run on `{plan['fallback'][0]['market']}` until back within the hour, then "
                         f"return to the bids")
    return lines


def restarts_line(report: dict) -> str:
    """The report's restarts per job as one line (the Markdown section and the terminal summary)."""
    return (f"Restarts per job (the start, preemptions, moves): median {report['restarts']['p50']:g}, "
            f"P90 {report['restarts']['p90']:g}")


def _waited(hours: float | None) -> str:
    """The late limit's second trigger, as the end of its sentence."""
    if hours is None:
        return ""
    return (f", or once no bid has run for {hours:g} h in a row while every bid market was priced below the first "
            f"fallback")


def _cost_row(name: str, cost: dict, p_meet: float) -> str:
    return (f"| {name} | {format_usd(cost['mean'])} | {format_usd(cost['p50'])} | {format_usd(cost['p90'])} | "
            f"{p_meet:.1%} |")


def to_markdown(report: dict) -> str:
    """Render a validated report dict."""
    w, cost = report["workload"], report["cost"]
    gpu = w.get("gpu") or "GPU"
    out = [
        f"### GPU plan: {w['hours']:g} h x {w['nodes']} node(s) of {w.get('gpus_per_node', 8)} {gpu}, "
        f"deadline {w['deadline_hours']:g} h",
        "",
        f"**Expected cost {format_usd(cost['mean'])}** (P50 {format_usd(cost['p50'])}, "
        f"P90 {format_usd(cost['p90'])}); "
        f"**P(meet deadline) {report['probability_meet_deadline']:.1%}**.",
    ]
    if report.get("restarts"):
        out.append(f"{restarts_line(report)}, each costing the restart overhead.")
    saving = report.get("savings_vs_on_demand")
    if saving and saving["usd"] > 0:
        out.append(f"That is {format_usd(saving['usd'])} ({saving['fraction']:.0%}) less than on-demand only.")
    out += ["", "**Plan**", "", *_plan_lines(report["plan"])]
    if report.get("reservation_reason"):
        out += ["", f"Reservation tier: {report['reservation_reason']}."]
    if report["bid_commands"]:
        out += ["", "**Commands**", "", "```bash", *report["bid_commands"], "```"]
    out += ["", "**Alternatives considered**", "", "| option | mean | P50 | P90 | P(meet deadline) |",
            "|---|---:|---:|---:|---:|",
            _cost_row("recommended", cost, report["probability_meet_deadline"])]
    out += [_cost_row(alt["name"], alt["cost"], alt["probability_meet_deadline"]) for alt in report["alternatives"]]
    data = report["data"]
    out += ["", f"Data: {len(data['markets'])} markets, history {data['from']} to {data['as_of']}.", "",
            "**Assumptions**", "", *[f"- {a}" for a in report["assumptions"]], ""]
    return "\n".join(out)
