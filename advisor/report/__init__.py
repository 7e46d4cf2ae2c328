"""Reports: the JSON report (with its JSON Schema), Markdown for planning docs, SkyPilot task YAML, ml commands."""

from advisor.report.build import SCHEMA_VERSION, bid_commands, build_report, schema, write_text_atomic
from advisor.report.markdown import to_markdown
from advisor.report.skypilot import dump_task, new_task, read_task, workload_fields, write_task

__all__ = ["SCHEMA_VERSION", "bid_commands", "build_report", "dump_task", "new_task", "read_task", "schema",
           "to_markdown", "workload_fields", "write_task", "write_text_atomic"]
