"""The task graph in the Markdown preview: a Mermaid flowchart of jobs, sweeps and tasks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from batchtasks.preview.graph import label
from tests.mermaid import parse_charts
from tests.test_preview import DEV_STACK, cli, job, write_stack


def graph_of(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    """The lines inside the ```mermaid block of a Markdown preview."""
    code, out, err = cli(capsys, "preview", *argv)
    assert (code, err) == (0, ""), err
    block = out.split("## Task graph", 1)[1].split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    return block.splitlines()


def node_labels(lines: list[str]) -> dict[str, str]:
    """Node id -> label text, entity codes decoded."""
    found = {}
    for line in lines:
        match = re.fullmatch(r"\s+(\w+)\[\[?\"(.*?)\"\]\]?(?::::\w+)?", line)
        if match:
            found[match.group(1)] = re.sub(r"#(\d+);", lambda code: chr(int(code[1])), match[2])
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
        assert re.fullmatch(r"(?:[A-Za-z0-9 _.,+()-]|#\d+;)*", text), text
        decoded = re.sub(r"#(\d+);", lambda match: chr(int(match.group(1))), text)
        assert decoded == hostile

    def test_long_labels_are_cut(self) -> None:
        assert len(re.sub(r"#\d+;", "?", label("a" * 500))) == 80


# Ids the stack file accepts (letters, digits, '-', '_') that are Mermaid words or arrows.
KEYWORD_IDS = ["end", "graph", "subgraph", "flowchart", "click", "style", "classDef", "class"]
ARROW_IDS = ["o--o", "x--x", "---", "--", "--o", "-x-", "_", "1", "default", "direction"]
# A sweep id that, with a change note, makes a label long enough to be cut ("…" is an entity
# code) after a colon, on a line with the word `style`.
LONG_STYLE = "style-" + "s" * 58


def hostile_stack(config: dict[str, Any]) -> None:
    """Jobs, sweeps and tasks named with every Mermaid word and arrow the id rule lets in."""
    the_job = job(config)
    the_job["id"] = "end"
    the_job["sweeps"][0]["id"] = LONG_STYLE
    summary = the_job["tasks"][0]
    for name in [*KEYWORD_IDS, *ARROW_IDS]:
        the_job["tasks"].append({"id": name, "command": "python -m step", "dependsOn": ["summary"]})
    summary["dependsOn"] = summary["dependsOn"][:2]
    config["batchtasks:jobs"].append(
        {
            "id": "graph",
            "tasks": [
                {"id": "subgraph", "command": "python -m a", "image": "example.azurecr.io/m:1"},
                {
                    "id": "end",
                    "command": "python -m b",
                    "image": "example.azurecr.io/m:1",
                    "dependsOn": ["subgraph"],
                },
            ],
        }
    )


def real_parse(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """The Markdown preview's chart as the real Mermaid parser reads it (it must parse)."""
    (result,) = parse_charts(["\n".join(graph_of(capsys, *argv))])
    assert result["ok"], result["error"]
    assert result["type"] == "flowchart-v2"
    return result


def texts(result: dict[str, Any]) -> dict[str, str]:
    return {vertex["id"]: vertex["text"] for vertex in result["vertices"]}


class TestRealParser:
    """The charts as GitHub's renderer reads them: the npm mermaid package's own parser."""

    def test_the_example_stack(self, capsys: pytest.CaptureFixture[str]) -> None:
        result = real_parse(capsys, "--config-file", str(DEV_STACK))
        assert texts(result) == {"j0s0": "forecast: 37 tasks", "j0t0": "summary"}
        assert [(s["id"], s["title"], s["nodes"]) for s in result["subgraphs"]] == [
            ("j0", "job weekly-forecast", ["j0s0", "j0t0"])
        ]
        assert result["edges"] == [{"start": "j0s0", "end": "j0t0", "text": "6 of 37"}]
        assert {v["id"]: v["type"] for v in result["vertices"]} == {
            "j0s0": "subroutine",
            "j0t0": "square",
        }

    def test_a_hostile_stack_keeps_every_name_and_edge(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        stack = write_stack(tmp_path, "hostile", hostile_stack)
        result = real_parse(capsys, "--config-file", str(stack))
        shown = texts(result)
        singles = ["summary", *KEYWORD_IDS, *ARROW_IDS]
        assert shown == {
            "j0s0": label_text(f"{LONG_STYLE}: 37 tasks"),
            **{f"j0t{number}": name for number, name in enumerate(singles)},
            "j1t0": "subgraph",
            "j1t1": "end",
        }
        assert [(s["id"], s["title"]) for s in result["subgraphs"]] == [
            ("j0", "job end"),
            ("j1", "job graph"),
        ]
        edges = {(edge["start"], edge["end"]): edge["text"] for edge in result["edges"]}
        assert edges == {
            ("j0s0", "j0t0"): "2 of 37",
            **{("j0t0", f"j0t{number}"): "" for number in range(1, len(singles))},
            ("j1t0", "j1t1"): "",
        }

    def test_an_against_change_keeps_its_marks(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def changed(config: dict[str, Any]) -> None:
            hostile_stack(config)
            the_job = job(config)
            the_job["defaults"]["retries"] = 3
            the_job["sweeps"][0]["matrix"]["state"].remove("tx")
            the_job["tasks"] = [t for t in the_job["tasks"] if t["id"] != "click"]
            config["batchtasks:jobs"].pop()

        old = write_stack(tmp_path, "old", hostile_stack)
        new = write_stack(tmp_path, "new", changed)
        result = real_parse(capsys, "--config-file", str(new), "--against", str(old))
        vertices = {v["id"]: (v["text"], v["classes"]) for v in result["vertices"]}
        assert vertices["j0s0"] == (
            label_text(f"{LONG_STYLE}: 34 tasks (34 updated)"),
            ["changed"],
        )
        assert vertices["j0s0"][0].endswith("…")
        assert vertices["j0t0"] == ("summary (updated)", ["changed"])
        assert vertices["j0gone"] == ("4 tasks removed", ["removed"])
        assert vertices["r0gone"] == ("2 tasks removed", ["removed"])
        subgraphs = {s["id"]: (s["title"], s["classes"]) for s in result["subgraphs"]}
        assert subgraphs == {
            "j0": ("job end", []),
            "r0": ("job graph (removed)", ["removed"]),
        }
        assert set(result["classes"]) == {"changed", "removed"}

    @pytest.mark.parametrize("shape", ['  n["{}"]', '  n[["{}"]]:::added', '  subgraph n["{}"]'])
    def test_hostile_labels_read_back_as_written(self, shape: str) -> None:
        hostile = [
            'x"] --> evil["owned',
            "a\nflowchart TB",
            "%%{init: {'theme': 'dark'}}%%",
            "click n call alert()",
            "<img src=x onerror=alert(1)>",
            "a & b &amp; c &#60; d",
            "#35; #60; ﬂ°°35¶ß",
            "style: x#y; classDef: z#w;",
            "style:x#y <",
            "classDef:z#w;&",
            "a|b|c -->|x| y",
            "[[nested]] (round) {curly} >flag]",
            "quotes \" ' `tick` ``md``",
            "end",
            "graph TD",
            "naïve 東京 😀 \u202eevil",
            "tab\there",
        ]
        charts = []
        for text in hostile:
            body = shape.format(label(text))
            end = "\n  end" if body.startswith("  subgraph") else ""
            charts.append(f"flowchart LR\n{body}{end}\n  classDef added fill:#dafbe1\n")
        for text, result in zip(hostile, parse_charts(charts), strict=True):
            assert result["ok"], (text, result["error"])
            if shape.startswith("  subgraph"):
                (found,) = [s["title"] for s in result["subgraphs"]]
            else:
                (found,) = [v["text"] for v in result["vertices"]]
            assert found == text


def label_text(text: str) -> str:
    """The text a label shows: cut like `label` cuts it."""
    return text if len(text) <= 80 else text[:79] + "…"


def test_a_missing_mermaid_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tests import mermaid as module

    monkeypatch.setattr(module, "TOOLS", tmp_path)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must check the charts"):
        module.require_mermaid()
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="mermaid parser is not installed"):
        module.require_mermaid()
