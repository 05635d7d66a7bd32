"""The day-two commands' view of a stack file: task ids and log upload without rendering sweeps."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from batchtasks.config import load_stack_file
from batchtasks.ops.declared import read_declared

EXAMPLE = Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.dev.yaml"


def test_declared_ids_are_the_ids_pulumi_submits_in_file_order():
    config = load_stack_file(EXAMPLE)
    declared = read_declared(EXAMPLE)
    for job, summary in zip(config.jobs, declared.jobs, strict=True):
        rendered = [*job.tasks, *(task for sweep in job.sweeps for task in sweep.tasks)]
        assert summary.task_ids == tuple(task["id"] for task in rendered)
    assert declared.jobs[0].has_task("COVID-CA")
    assert declared.jobs[0].logs is not None
    assert declared.jobs[0].logs.container == "batch-logs"


def test_a_sweep_only_job_reads_its_logs_from_the_sweep(tmp_path: Path):
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    job = document["config"]["batchtasks:jobs"][0]
    del job["tasks"]  # the job-level logs now reach the declaration through the sweep alone
    del document["config"]["batchtasks:dashboardToken"]  # only the deleted task read it
    stack = tmp_path / "Pulumi.sweeps.yaml"
    stack.write_text(json.dumps(document), encoding="utf-8")
    (declared,) = read_declared(stack).jobs
    (sweep,) = load_stack_file(stack).jobs[0].sweeps
    assert declared.task_ids == tuple(task["id"] for task in sweep.tasks)
    assert declared.logs is not None
    assert (declared.logs.container, declared.logs.subdir) == ("batch-logs", "weekly-forecast")
