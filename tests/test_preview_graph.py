"""The task graph in the Markdown preview: a Mermaid flowchart of jobs, sweeps and tasks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from batchtasks.preview.graph import label
from tests.test_preview import DEV_STACK, cli, job, write_stack


def graph_of(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """The lines inside the ```mermaid block of a Markdown preview."""
    code, out, err = cli(capsys, "preview", *argv)
    assert (code, err) == (0, ""), err
    block = out.split("## Task graph", 1)[1].split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    return block.splitlines()


def node_labels(lines: list[str]) -> dict[str, str]:
    """Node id -> label text, entity codes left as written."""
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s+(\w+)\[\[?\"(.*?)\"\]\]?(?::::\w+)?", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


class TestGraph:
    def test_dev_stack_sweep_is_one_node_and_the_partial_edge_counts(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        lines = graph_of(capsys, "--config-file", str(DEV_STACK))
        assert lines[0] == "flowchart LR"
        assert '  subgraph j0["job weekly-forecast"]' in lines
        labels = node_labels(lines)
        assert labels == {"j0s0": "forecast: 37 tasks", "j0t0": "summary"}
        # summary needs 6 of the sweep's 37 tasks.
        assert "  j0s0 -->|6 of 37| j0t0" in lines
        assert not any("classDef" in line for line in lines)

    def test_a_sweep_that_waits_for_one_task_and_a_big_sweep_stays_one_node(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def prepared(config: dict[str, Any]) -> None:
            the_job = job(config)
            sweep = the_job["sweeps"][0]
            sweep.update(taskId="r{run}", matrix={"run": list(range(2000))}, dependsOn=["prepare"])
            sweep.pop("include")
            sweep.pop("exclude")
            sweep["command"] = "python -m forecast.run --run {run}"
            sweep["env"] = {"RUN": "{run}"}
            sweep["outputs"][0]["path"] = "{run}"
            summary = the_job["tasks"][0]
            summary["dependsOn"] = [f"r{run}" for run in range(2000)]
            the_job["tasks"].insert(0, {"id": "prepare", "command": "python -m prepare"})

        lines = graph_of(capsys, "--config-file", str(write_stack(tmp_path, "big", prepared)))
        assert len(lines) < 12
        labels = node_labels(lines)
        assert labels == {"j0s0": "forecast: 2,000 tasks", "j0t0": "prepare", "j0t1": "summary"}
        # Every task of the sweep takes part on both sides: no count.
        assert "  j0t0 --> j0s0" in lines
        assert "  j0s0 --> j0t1" in lines

    def test_against_marks_nodes_added_changed_and_removed(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def changed(config: dict[str, Any]) -> None:
            the_job = job(config)
            the_job["defaults"]["retries"] = 3
            the_job["sweeps"][0]["matrix"]["state"].remove("tx")
            the_job["tasks"].append(
                {"id": "publish", "command": "python -m publish", "dependsOn": ["summary"]}
            )

        new = write_stack(tmp_path, "dev", changed)
        lines = graph_of(capsys, "--config-file", str(new), "--against", str(DEV_STACK))
        labels = node_labels(lines)
        assert labels["j0s0"] == "forecast: 34 tasks (34 updated)"
        assert labels["j0t0"] == "summary (updated)"
        assert labels["j0t1"] == "publish (added)"
        assert labels["j0gone"] == "3 tasks removed"
        marks = {
            match.group(1): match.group(2)
            for line in lines
            if (match := re.search(r"(\w+)\[.*:::(\w+)$", line))
        }
        assert marks == {"j0s0": "changed", "j0t0": "changed", "j0t1": "added", "j0gone": "removed"}
        assert "  j0t0 --> j0t1" in lines
        assert {line.split()[1] for line in lines if "classDef" in line} == {
            "added",
            "changed",
            "removed",
        }

    def test_a_removed_job_is_a_removed_subgraph(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def second_job(config: dict[str, Any]) -> None:
            other = {
                "id": "backfill",
                "tasks": [
                    {"id": "one", "command": "python -m one", "image": "example.azurecr.io/m:1"}
                ],
            }
            config["batchtasks:jobs"].append(other)

        old = write_stack(tmp_path, "old", second_job)
        lines = graph_of(capsys, "--config-file", str(DEV_STACK), "--against", str(old))
        assert '  subgraph r0["job backfill (removed)"]' in lines
        assert "  class r0 removed" in lines
        assert node_labels(lines)["r0gone"] == "1 task removed"


class TestLabels:
    @pytest.mark.parametrize(
        "hostile",
        [
            'x"] --> evil["owned',
            "a\nflowchart TB",
            "%%{init: {'theme': 'dark'}}%%",
            "click j0 call alert()",
            "```\n# heading",
            "<img src=x onerror=alert(1)>",
            "a|b|c",
            "tab\there",
            "\u202eevil",
            "x;y",
            "[[nested]]",
        ],
    )
    def test_nothing_in_a_label_can_leave_it(self, hostile: str) -> None:
        text = label(hostile)
        # Only the safe set and entity codes (#<digits>;) remain.
        assert re.fullmatch(r"(?:[A-Za-z0-9 _.,:+()-]|#\d+;)*", text), text
        decoded = re.sub(r"#(\d+);", lambda match: chr(int(match.group(1))), text)
        assert decoded == hostile

    def test_long_labels_are_cut(self) -> None:
        assert len(re.sub(r"#\d+;", "?", label("a" * 500))) == 80
