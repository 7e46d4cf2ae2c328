"""Reports: JSON validates against the shipped schema, Markdown, SkyPilot task round trip, the recommend CLI."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from advisor.cli import app
from advisor.errors import AdvisorError
from advisor.plan import Bid, Fallback, Plan, load_document
from advisor.report import read_task, schema, workload_fields, write_task
from advisor.units import format_usd

runner = CliRunner()
ARGS = ["recommend", "--gpu", "H100", "--nodes", "2", "--hours", "48", "--deadline", "4d", "--scenarios", "60"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("rep")
    result = runner.invoke(app, [*ARGS, "--json", "--out", str(out / "r.json"), "--markdown", str(out / "r.md")])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), out


def test_report_validates_and_is_replayable(report) -> None:
    doc, out = report
    jsonschema.validate(doc, schema())
    assert doc["schema_version"] == "1.0"
    assert json.loads((out / "r.json").read_text()) == doc
    assert 0 <= doc["probability_meet_deadline"] <= 1
    assert doc["cost"]["p50"] <= doc["cost"]["p90"]
    assert {a["name"] for a in doc["alternatives"]} >= {"on-demand only", "best single bid"}
    workload, plan = load_document(out / "r.json")  # the report is itself a replayable document
    assert workload.nodes == 2 and plan.fallback
    for cmd in doc["bid_commands"]:
        assert cmd.startswith("ml instance create -i ") and cmd.endswith(" -N 2")
    assert 1 <= doc["restarts"]["p50"] <= doc["restarts"]["p90"]  # at least the start, on the fresh scenarios


def test_schema_rejects_a_broken_report(report) -> None:
    bad = copy.deepcopy(report[0])
    bad["probability_meet_deadline"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())
    bad = copy.deepcopy(report[0])
    del bad["plan"]["fallback"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema())


def test_markdown_section_states_the_numbers(report) -> None:
    doc, out = report
    text = (out / "r.md").read_text()
    assert text.startswith("### GPU plan: 48 h x 2 node(s) of 8 H100")
    assert format_usd(doc["cost"]["mean"]) in text and "P(meet deadline)" in text
    assert format_usd(3.484) == "$3.48" and format_usd(1234.4) == "$1,234"  # cents only where they matter
    assert "| on-demand only |" in text and "**Assumptions**" in text
    assert f"Restarts per job (the start, preemptions, moves): median {doc['restarts']['p50']:g}" in text


def test_a_late_limit_is_stated_and_validates(report) -> None:
    from advisor.report.markdown import to_markdown

    assert report[0]["plan"]["late_limit"] is not None  # the demo's 48 h job takes one: say how it is operated
    assert all(a["plan"]["late_limit"] is None for a in report[0]["alternatives"]  # the baselines stay plain
               if not a["name"].startswith("recommended"))
    fixed = next(a for a in report[0]["alternatives"] if a["name"] == "recommended, without the late limit")
    assert fixed["plan"]["bids"] == report[0]["plan"]["bids"]  # what the raise buys, on the same fresh scenarios
    unraised = {**report[0]["plan"], "late_limit": None, "late_margin_hours": None, "late_after_hours": None}
    assert fixed["plan"] == {**unraised, "patience_hours": fixed["plan"]["patience_hours"]}  # patience decided again
    assert any(a.startswith("Raising the limits late is taken to keep a running instance")
               for a in report[0]["assumptions"])
    doc = copy.deepcopy(report[0])
    doc["plan"]["bids"] = [{"market": "mithril:us-central3-a:h100-80gb.sxm.8x:spot", "limit_price": 15.94}]
    doc["plan"].update(late_limit=29.88, late_margin_hours=13.5, late_after_hours=24.0)
    jsonschema.validate(doc, schema())
    text = to_markdown(doc)  # the first mention of the slack left says what it is
    assert ("- Raise every limit to **$29.88/instance-hour** once the slack left (hours to the deadline less the work "
            "left and a restart) is 13.5 h, or once no bid has run for 24 h in a row while every bid market was priced "
            "below the first fallback\n") in text
    doc["plan"]["late_after_hours"] = None  # reports written before the second trigger
    jsonschema.validate(doc, schema())
    assert "is 13.5 h\n" in to_markdown(doc)
    doc["plan"]["dear_excess_hours"] = 1.0
    jsonschema.validate(doc, schema())
    assert ("- Lower every limit to the first fallback's price once riding prices above it has cost, in a row of such "
            "hours, 1 h of its price more than it would have (unless the limits were raised first)\n"
            ) in to_markdown(doc)
    doc["plan"]["dear_excess_hours"] = 0.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())
    doc["plan"]["dear_excess_hours"] = 1.0
    assert f"once the slack left is {doc['plan']['guard_margin_hours']:g} h" in text  # the fallback line after it
    assert "Keep pace" not in text
    doc["plan"]["keep_pace"] = True
    jsonschema.validate(doc, schema())
    assert ("- Keep pace: while no bid can run and the work done is over an hour behind elapsed x work / deadline, "
            f"run on `{doc['plan']['fallback'][0]['market']}` until back within the hour") in to_markdown(doc)
    doc["plan"]["keep_pace"] = "yes"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())
    doc["plan"]["keep_pace"] = False
    doc["plan"]["patience_hours"] = 2.0
    jsonschema.validate(doc, schema())
    assert "wait up to" not in to_markdown(doc)  # one bid: no later zone to hold back from
    doc["plan"]["bids"].append({"market": "mithril:us-central5-a:h100-80gb.sxm.8x:spot", "limit_price": 15.94})
    assert ("- When a market drops the job, wait up to 2 h for it (or an earlier one) before taking a later one\n"
            ) in to_markdown(doc)
    doc["plan"]["switch_below"] = 0.8
    jsonschema.validate(doc, schema())
    assert ("- Switch to the first other bid in the list priced below 80% of the price paid (a checkpoint, then a "
            "restart there)\n") in to_markdown(doc)
    for bad in (0.0, 1.2):
        doc["plan"]["switch_below"] = bad
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(doc, schema())
    doc["plan"]["switch_below"] = None
    doc["plan"]["patience_hours"] = -1.0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())
    doc["plan"]["patience_hours"] = 0.0
    doc["plan"]["return_below"] = 0.8  # every bid candidate carries it
    jsonschema.validate(doc, schema())
    assert ("- After that, still run a bid priced below 80% of the first fallback's price (the one held, else the "
            "first in the list) while the slack left would absorb a preemption there") in to_markdown(doc)
    doc["plan"]["return_below"] = None
    assert "After that" not in to_markdown(doc)
    doc["plan"]["return_below"] = 1.5
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())
    doc["plan"]["return_below"] = None
    doc["plan"].update(late_limit=None, late_margin_hours=None)
    assert "- Fall back to" in to_markdown(doc) and "once the slack left (hours" in to_markdown(doc)
    doc["plan"]["late_limit"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema())


TASK = {"name": "finetune", "num_nodes": 2, "setup": "pip install -r req.txt", "run": "python train.py",
        "resources": {"accelerators": "H100:8", "use_spot": True, "disk_size": 512,
                      "any_of": [{"infra": "aws"}, {"infra": "mithril"}, {"infra": "lambda/us-east-1"}]},
        "file_mounts": {"/ckpt": {"source": "s3://bucket/ckpt"}}, "config": {"mithril": {"limit_price": 32}}}


def test_fixed_limits_keep_every_bid_at_its_first_limit() -> None:
    result = runner.invoke(app, [*ARGS, "--fixed-limits", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)  # the same request without the flag takes a late limit (the report fixture)
    assert doc["plan"]["bids"] and doc["plan"]["late_limit"] is None and doc["plan"]["late_margin_hours"] is None
    assert not any("limits rise" in a or "Raising the limits late" in a for a in doc["assumptions"])
    assert "recommended, without the late limit" not in {a["name"] for a in doc["alternatives"]}


def test_skypilot_task_read_and_written_back(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_text(yaml.safe_dump(TASK))
    assert workload_fields(read_task(path)) == {"gpu": "H100", "gpus_per_node": 8, "nodes": 2,
                                                "providers": ("aws", "mithril", "lambda/us-east-1")}
    plan = Plan(bids=(Bid("mithril:us-central5-a:h100-80gb.sxm.8x:spot", 19.5),
                      Bid("aws:us-east-1a:p5.48xlarge:spot", 30.0)),
                fallback=(Fallback("lambda:us-east-1:gpu_8x_h100_sxm5:on_demand"),))
    written = yaml.safe_load(yaml.safe_dump(write_task(read_task(path), plan, {
        "aws:us-east-1a:p5.48xlarge:spot": "us-east-1", "lambda:us-east-1:gpu_8x_h100_sxm5:on_demand": "us-east-1"})))
    assert written["config"]["mithril"]["limit_price"] == 19.5
    assert written["resources"]["ordered"] == [
        {"infra": "mithril/us-central5-a", "use_spot": True}, {"infra": "aws/us-east-1/us-east-1a", "use_spot": True},
        {"infra": "lambda/us-east-1", "use_spot": False}]
    for key in ("name", "num_nodes", "setup", "run", "file_mounts"):
        assert written[key] == TASK[key]
    assert written["resources"]["disk_size"] == 512 and written["resources"]["accelerators"] == "H100:8"
    assert "any_of" not in written["resources"]


def test_where_a_task_may_run_comes_from_its_choices_or_the_shared_default() -> None:
    from advisor.optimize.recommend import allowed_by

    def providers(res: dict) -> tuple[str, ...] | None:
        return workload_fields({"resources": {"accelerators": "H100:8", **res}}).get("providers")

    assert providers({}) is None and providers({"cloud": "GCP"}) == ("gcp",)
    assert providers({"ordered": [{"infra": "mithril/us-central5-a"}, {"infra": "aws/us-east-1"}]}) == (
        "mithril/us-central5-a", "aws/us-east-1")
    # an entry without a cloud takes the shared one; with none shared, it allows any cloud
    assert providers({"infra": "aws", "any_of": [{"use_spot": True}, {"infra": "gcp"}]}) == ("aws", "gcp")
    assert providers({"any_of": [{"use_spot": True}, {"infra": "gcp"}]}) is None
    with pytest.raises(AdvisorError, match="one GPU type at a time; give one, e.g. H100:8"):
        providers({"accelerators": ["H100:8", "A100:8"]})
    # infra as SkyPilot writes it: cloud, region, zone; a region matches the zones named after it
    allowed = ("aws/us-east-1", "mithril/us-central5", "gcp/us-central1/us-central1-a")
    assert allowed_by(allowed, "aws", "us-east-1", "us-east-1b")
    assert not allowed_by(allowed, "aws", "us-west-2", "us-west-2a")
    assert allowed_by(allowed, "mithril", "us-central5", "us-central5-a")
    assert allowed_by(allowed, "mithril", None, "us-central5-a")  # an offer: a location, no region
    assert not allowed_by(allowed, "mithril", "us-central3", "us-central3-a")
    assert allowed_by(allowed, "gcp", "us-central1", "us-central1-a")
    assert not allowed_by(allowed, "gcp", "us-central1", "us-central1-b")
    assert allowed_by(("AWS",), "aws", "eu-west-1", "eu-west-1a") and not allowed_by(("aws",), "lambda", "x", "x")


def test_recommend_keeps_to_the_regions_a_task_names(tmp_path: Path) -> None:
    task = {**TASK, "resources": {**TASK["resources"], "any_of": [{"infra": "mithril/us-central3"},
                                                                  {"infra": "lambda/us-east-1"}]}}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(task))
    result = runner.invoke(app, ["recommend", "--task", str(tmp_path / "task.yaml"), "--hours", "24", "--deadline",
                                 "3d", "--scenarios", "40", "--json"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)["plan"]
    assert plan["bids"] and {b["market"].split(":")[1] for b in plan["bids"]} == {"us-central3-a"}
    assert [f["market"].split(":")[0] for f in plan["fallback"]] == ["lambda"]


def test_recommend_from_a_task_keeps_to_the_clouds_it_allows(tmp_path: Path) -> None:
    task = {**TASK, "resources": {**TASK["resources"], "any_of": [{"infra": "aws"}]}}
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(task))
    result = runner.invoke(app, ["recommend", "--task", str(tmp_path / "task.yaml"), "--hours", "24", "--deadline",
                                 "3d", "--scenarios", "40", "--json"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)["plan"]
    assert {m["market"].split(":")[0] for m in plan["bids"] + plan["fallback"]} == {"aws"}


def test_recommend_from_a_task_writes_the_task_back(tmp_path: Path) -> None:
    (tmp_path / "task.yaml").write_text(yaml.safe_dump(TASK))
    result = runner.invoke(app, ["recommend", "--task", str(tmp_path / "task.yaml"), "--hours", "24", "--deadline",
                                 "3d", "--scenarios", "40", "--write-task", str(tmp_path / "out.yaml"), "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["workload"]["nodes"] == 2 and doc["workload"]["gpu"] == "H100"
    written = yaml.safe_load((tmp_path / "out.yaml").read_text())
    assert written["run"] == TASK["run"] and written["resources"]["ordered"]


def test_recommend_summary_and_gpu_hours() -> None:
    result = runner.invoke(app, ["recommend", "--gpu", "H100", "--nodes", "2", "--gpu-hours", "768", "--deadline",
                                 "4d", "--scenarios", "40"])
    assert result.exit_code == 0, result.stderr
    assert "Recommended plan" in result.stdout and "P(meet deadline)" in result.stdout
    assert "Savings against on-demand only" in result.stdout
    on_demand_row = next(line for line in result.stdout.splitlines() if "on-demand only" in line and "│" in line)
    assert "100.0%" in on_demand_row  # the alternatives' P(meet deadline) as a percentage, like the line above
    bids = [line for line in result.stdout.splitlines() if "Bid on" in line]
    assert bids and all(line.endswith("/instance-hour") for line in bids)  # not broken at 80 columns when piped
    assert "Assumptions" in result.stdout and "the optimizer did not see" in result.stdout


@pytest.mark.parametrize(("args", "text"), [
    (["--hours", "100", "--deadline", "50h"], "the earliest deadline you can meet is 101 h"),
    (["--hours", "48", "--deadline", "4d", "--budget", "10"], "the budget needed is $"),
    (["--deadline", "4d"], "needs --hours"),
    (["--hours", "48", "--deadline", "soon"], "not an ISO-8601 timestamp"),
])
def test_infeasible_or_bad_requests_get_one_line(args: list[str], text: str) -> None:
    result = runner.invoke(app, ["recommend", "--gpu", "H100", "--scenarios", "30", *args])
    assert result.exit_code in (1, 2)
    assert text in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def _zones_db(tmp_path: Path) -> str:
    """Ten days of a 1-GPU type in two zones (one spikes every fifth hour), its on-demand price, and a CPU type."""
    from conftest import spot_row, write_normalized

    rows = []
    for h in range(240):
        ts = (pd.Timestamp("2015-04-01") + pd.Timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(spot_row(ts, 0.3 if h % 5 else 3.0, zone="us-east-1a"))
        rows.append(spot_row(ts, 0.4, zone="us-east-1b"))
        rows.append([ts, "aws", "us-east-1", "us-east-1a", "c3.xlarge", "", 0, "spot", 0.05, ""])
    rows.append(["2015-04-01T00:00:00Z", "aws", "us-east-1", "", "g2.2xlarge", "K520", 1, "on_demand", 0.65, ""])
    rows.append(["2015-04-01T00:00:00Z", "aws", "us-east-1", "", "c3.xlarge", "", 0, "on_demand", 0.21, ""])
    db = str(tmp_path / "zones.duckdb")
    assert runner.invoke(app, ["ingest", str(write_normalized(tmp_path / "z.csv", rows)), "--db", db]).exit_code == 0
    return db


def test_recommend_for_an_instance_type_takes_its_gpus_and_its_zones(tmp_path: Path) -> None:
    db = _zones_db(tmp_path)
    args = ["recommend", "--db", db, "--deadline", "48h", "--scenarios", "30", "--json"]
    result = runner.invoke(app, [*args, "--instance-type", "g2.2xlarge", "--gpu-hours", "24"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["workload"]["hours"] == 24 and report["workload"]["gpus_per_node"] == 1  # 1 GPU per g2.2xlarge
    markets = [b["market"] for b in report["plan"]["bids"]] + [f["market"] for f in report["plan"]["fallback"]]
    assert markets and all(":g2.2xlarge:" in m for m in markets)
    assert "aws:us-east-1b:g2.2xlarge:spot" in markets  # the calm zone beats the spiky one
    cpu = runner.invoke(app, [*args, "--instance-type", "c3.xlarge", "--gpu-hours", "24"])
    assert cpu.exit_code == 2 and "c3.xlarge has no GPUs" in cpu.stderr and cpu.stdout == ""
    assert runner.invoke(app, [*args, "--instance-type", "c3.xlarge", "--hours", "24"]).exit_code == 0
    # the type in a workload file is the workload's, not a field read and dropped (it planned for any 8-GPU type)
    (tmp_path / "w.yaml").write_text("instance_type: c3.xlarge\nhours: 24\ndeadline_hours: 48\n")
    typed = runner.invoke(app, ["recommend", "--db", db, "--scenarios", "30", "--json", "--workload",
                                str(tmp_path / "w.yaml")])
    assert typed.exit_code == 0, typed.stderr
    doc = json.loads(typed.stdout)
    assert doc["workload"]["instance_type"] == "c3.xlarge"
    assert all(":c3.xlarge:" in m["market"] for m in doc["plan"]["bids"] + doc["plan"]["fallback"])


def test_json_on_stdout_is_only_json_whatever_the_solver_prints(tmp_path: Path) -> None:
    # HiGHS prints a banner from C++ straight to file descriptor 1; only a real process shows it
    import subprocess
    import sys

    db = _zones_db(tmp_path)
    out = subprocess.run([sys.executable, "-m", "advisor.cli", "recommend", "--db", db, "--instance-type",
                          "g2.2xlarge", "--hours", "24", "--deadline", "48h", "--scenarios", "30", "--solver", "highs",
                          "--json"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["solver"]["name"] == "highs"


def test_a_task_written_without_one_given_names_the_gpus_and_the_gang(tmp_path: Path) -> None:
    out = tmp_path / "planned.yaml"
    result = runner.invoke(app, ["recommend", "--gpu", "H100", "--nodes", "2", "--hours", "10", "--deadline", "48h",
                                 "--scenarios", "30", "--write-task", str(out), "--json"])
    assert result.exit_code == 0, result.stderr
    written = yaml.safe_load(out.read_text())
    assert written["num_nodes"] == 2 and written["resources"]["accelerators"] == "H100:8"
    fields = workload_fields(read_task(out))  # SkyPilot, and the advisor again, read it as the same gang
    assert (fields["gpu"], fields["gpus_per_node"], fields["nodes"]) == ("H100", 8, 2)
    from advisor.plan import Workload
    from advisor.report import new_task

    typed = new_task(Workload(hours=4, deadline_hours=8, instance_type="p5.48xlarge", nodes=2))
    assert typed["resources"] == {"instance_type": "p5.48xlarge"}
    assert workload_fields(typed) == {"instance_type": "p5.48xlarge", "nodes": 2}  # and back
    # a path in no directory is refused before the recommendation is worked out, not after
    nowhere = runner.invoke(app, ["recommend", "--gpu", "H100", "--hours", "10", "--deadline", "48h",
                                  "--out", str(tmp_path / "no" / "r.json")])
    assert nowhere.exit_code == 2
    assert nowhere.stderr.strip() == f"error: --out {tmp_path / 'no' / 'r.json'}: no directory {tmp_path / 'no'} to " \
                                     "write it in"
