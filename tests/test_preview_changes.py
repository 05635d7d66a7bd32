"""`batchtasks preview --against` as a reviewer reads it: grouped changes with values, warnings
first, `--output` and `--fail-on destructive`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from batchtasks.batch.diff import plan_tasks
from batchtasks.preview.groups import edit_span, group_tasks
from tests.test_preview import CIPHERTEXT, DEV_STACK, JOB_ID, cli, job, write_stack
from tests.test_preview_graph import graph_of, node_labels

OLD_IMAGE = "cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1"
NEW_IMAGE = "cfaprdbatchcr.azurecr.io/forecast-model:2025.07.0"


def changes_of(
    capsys: pytest.CaptureFixture[str], new: Path, old: Path = DEV_STACK
) -> dict[str, Any]:
    code, out, err = cli(
        capsys, "preview", "--format", "json", "--config-file", str(new), "--against", str(old)
    )
    assert (code, err) == (0, ""), err
    return json.loads(out)["changes"]


def markdown_of(capsys: pytest.CaptureFixture[str], new: Path, old: Path = DEV_STACK) -> str:
    code, out, err = cli(capsys, "preview", "--config-file", str(new), "--against", str(old))
    assert (code, err) == (0, ""), err
    return out.split("## Changes against", 1)[1].split("\n## Resources", 1)[0]


def new_image(config: dict[str, Any]) -> None:
    job(config)["defaults"]["image"] = NEW_IMAGE


class TestGroups:
    def test_an_image_moving_on_38_tasks_is_one_group_with_both_values(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        new = write_stack(tmp_path, "dev", new_image)
        (the_job,) = changes_of(capsys, new)["jobs"]
        (group,) = the_job["groups"]
        assert (group["change"], group["count"], len(group["tasks"])) == ("replaced", 38, 38)
        assert group["fields"] == [
            {"field": "image", "old": OLD_IMAGE, "new": NEW_IMAGE, "sameValues": True}
        ]
        assert the_job["summary"] == {
            "added": 0,
            "removed": 0,
            "replaced": 38,
            "updated": 0,
            "unchanged": 0,
        }
        markdown = markdown_of(capsys, new)
        assert (
            f"- **38 tasks replaced**\n  - `image`: `{OLD_IMAGE}` → `{NEW_IMAGE}`\n\n"
            "  <details><summary>38 tasks</summary>\n"
        ) in markdown
        ids = markdown.split("<details>", 1)[1].split("</details>", 1)[0]
        assert ids.count("`, `") == 37 and "`covid-ca`" in ids and "`summary`" in ids
        # One group, not one row per task.
        assert markdown.count("tasks replaced**") == 1

    def test_the_same_edit_to_each_tasks_own_command_is_one_group(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def more_draws(config: dict[str, Any]) -> None:
            sweep = job(config)["sweeps"][0]
            sweep["command"] = sweep["command"].replace("--draws 4000", "--draws 5000")

        new = write_stack(tmp_path, "dev", more_draws)
        (group,) = changes_of(capsys, new)["jobs"][0]["groups"]
        assert group["count"] == 37 and "summary" not in group["tasks"]
        (field,) = group["fields"]
        assert (field["field"], field["sameValues"]) == ("command", False)
        # The values shown are the first task's (ids sorted).
        assert group["tasks"][0] == "covid-az"
        assert field["old"].startswith("python -m forecast.run --disease covid --state az")
        line = next(
            line
            for line in markdown_of(capsys, new).splitlines()
            if line.startswith("  - `command`")
        )
        assert "(each task its own value; `covid-az`'s)" in line
        old_shown, new_shown = line.split(": ", 1)[1].split(" → ")
        assert "--draws 4000" in old_shown and "--draws 5000" in new_shown
        assert old_shown.startswith("`…") and len(old_shown) < len(field["old"])

    def test_long_values_are_cut_around_the_difference(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        head, tail = "python -m summarise " + "--flag " * 30, " --out summary " + "x" * 200

        def long_command(which: str) -> Any:
            def change(config: dict[str, Any]) -> None:
                job(config)["tasks"][0]["command"] = f"{head}--level {which}{tail}"

            return change

        old = write_stack(tmp_path, "old", long_command("low"))
        new = write_stack(tmp_path, "new", long_command("high"))
        line = next(
            line
            for line in markdown_of(capsys, new, old).splitlines()
            if line.startswith("  - `command`")
        )
        before, after = line.split(": ", 1)[1].split(" → ")
        assert "--level low" in before and "--level high" in after
        assert before.startswith("`…") and before.endswith("…`")
        assert len(line) < 300

    def test_secret_values_stay_placeholders(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def other_secret(config: dict[str, Any]) -> None:
            config["batchtasks:otherToken"] = {"secure": "v1:b3RoZXI=:b3RoZXItY2lwaGVydGV4dA=="}
            del config["batchtasks:dashboardToken"]
            job(config)["tasks"][0]["secretEnv"] = {"DASHBOARD_TOKEN": "otherToken"}

        new = write_stack(tmp_path, "dev", other_secret)
        (group,) = changes_of(capsys, new)["jobs"][0]["groups"]
        fields = {field["field"]: (field["old"], field["new"]) for field in group["fields"]}
        assert fields["secretEnv.DASHBOARD_TOKEN"] == ("dashboardToken", "otherToken")
        assert fields["secrets.dashboardToken"] == ("[secret]", None)
        assert fields["secrets.otherToken"] == (None, "[secret]")
        code, out, _ = cli(
            capsys, "preview", "--config-file", str(new), "--against", str(DEV_STACK)
        )
        assert code == 0
        assert "`secrets.otherToken`: *(none)* → `[secret]`" in out
        for ciphertext in (CIPHERTEXT, "b3RoZXItY2lwaGVydGV4dA=="):
            assert ciphertext not in out

    def test_ids_are_listed_up_to_a_bound_and_json_has_all(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def big(retries: int) -> Any:
            def change(config: dict[str, Any]) -> None:
                the_job = job(config)
                sweep = the_job["sweeps"][0]
                sweep.update(taskId="r{run}", matrix={"run": list(range(300))})
                sweep.pop("include")
                sweep.pop("exclude")
                sweep["command"] = "python -m forecast.run --run {run}"
                sweep["env"] = {"RUN": "{run}"}
                sweep["outputs"][0]["path"] = "{run}"
                the_job["tasks"][0]["dependsOn"] = ["r0"]
                the_job["defaults"]["retries"] = retries

            return change

        old = write_stack(tmp_path, "old", big(2))
        new = write_stack(tmp_path, "new", big(3))
        markdown = markdown_of(capsys, new, old)
        assert "- **301 tasks updated in place**\n  - `retries`: `2` → `3`" in markdown
        assert "and 101 more (`--format json` lists them all)" in markdown
        (group,) = changes_of(capsys, new, old)["jobs"][0]["groups"]
        assert group["count"] == len(group["tasks"]) == 301


def three_jobs(config: dict[str, Any]) -> None:
    first = job(config)
    for job_id in ("extra", "third"):
        other = copy.deepcopy(first)
        other["id"] = job_id
        other["logs"]["subdir"] = job_id
        config["batchtasks:jobs"].append(other)


class TestWarnings:
    def test_most_urgent_first_and_summary_lines_on_top(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def changed(config: dict[str, Any]) -> None:
            three_jobs(config)
            jobs = config["batchtasks:jobs"]
            # No dependsOn left: usesTaskDependencies flips, so a new job.
            jobs[0]["tasks"][0].pop("dependsOn")
            jobs[2]["sweeps"][0]["matrix"]["state"].remove("ca")
            jobs[2]["sweeps"][0]["matrix"]["state"].append("nv")
            jobs[2]["tasks"][0]["dependsOn"].remove("covid-ca")
            jobs[2]["tasks"][0]["dependsOn"].remove("flu-ca")
            del jobs[1]

        old = write_stack(tmp_path, "old", three_jobs)
        new = write_stack(tmp_path, "new", changed)
        changes = changes_of(capsys, new, old)
        kinds = [warning["kind"] for warning in changes["warnings"]]
        assert kinds == ["running", "job-replaced", "removed", "completed-job"]
        running, replaced, removed, completed = (w["text"] for w in changes["warnings"])
        # summary is replaced: its dependsOn changed.
        assert running.startswith(
            "job `third`: 1 task replaced and 3 tasks removed (summary, "
            "covid-ca, flu-ca, rsv-ca) may be running; the preview cannot "
            "tell offline"
        )
        assert "every task in it, running or not" in replaced
        assert removed.startswith("job `extra` is removed: it is deleted with its 38 tasks")
        assert "if it has already completed, it takes no new task" in completed
        markdown = markdown_of(capsys, new, old)
        summary, warnings = markdown.split("> **Warning:**", 1)
        assert (
            "- `weekly-forecast` (job replaced): 0 added, 0 removed, 38 replaced, "
            "0 updated in place, 0 unchanged."
        ) in summary
        assert "- `extra` (job removed): 0 added, 38 removed" in summary
        assert "- `third` (job unchanged): 3 added, 3 removed, 1 replaced" in summary
        assert (
            warnings.index("may be running")
            < warnings.index("is replaced")
            < (warnings.index("is removed"))
            < warnings.index("ends itself")
        )
        assert "- **37 tasks replaced**\n  - the job is replaced: the task runs again" in markdown


class TestPullRequestOptions:
    def test_fail_on_destructive_exits_4_and_still_writes_the_preview(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        new = write_stack(tmp_path, "dev", new_image)
        output = tmp_path / "preview.md"
        code, out, err = cli(
            capsys,
            "preview",
            "--config-file",
            str(new),
            "--against",
            str(DEV_STACK),
            "--fail-on",
            "destructive",
            "--output",
            str(output),
        )
        assert (code, out) == (4, "")
        assert "destructive" in err
        assert "- **38 tasks replaced**" in output.read_text()

    def test_in_place_updates_are_not_destructive(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def more_retries(config: dict[str, Any]) -> None:
            job(config)["defaults"]["retries"] = 3

        new = write_stack(tmp_path, "dev", more_retries)
        code, out, err = cli(
            capsys,
            "preview",
            "--config-file",
            str(new),
            "--against",
            str(DEV_STACK),
            "--fail-on",
            "destructive",
            "--format",
            "json",
        )
        assert (code, err) == (0, "")
        assert json.loads(out)["changes"]["destructive"] is False

    def test_fail_on_needs_against(self, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = cli(
            capsys, "preview", "--config-file", str(DEV_STACK), "--fail-on", "destructive"
        )
        assert (code, out) == (2, "")
        assert "--fail-on destructive needs --against" in err

    def test_output_file_replaces_the_old_one(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        output = tmp_path / "preview.json"
        output.write_text("stale")
        code, out, _ = cli(
            capsys,
            "preview",
            "--config-file",
            str(DEV_STACK),
            "--format",
            "json",
            "--bodies",
            "--output",
            str(output),
        )
        assert (code, out) == (0, "")
        assert len(json.loads(output.read_text())["tasks"][JOB_ID]) == 38
        assert sorted(path.name for path in tmp_path.iterdir()) == ["preview.json"]

    def test_unwritable_output_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        code, _, err = cli(
            capsys,
            "preview",
            "--config-file",
            str(DEV_STACK),
            "--output",
            str(tmp_path / "missing" / "preview.md"),
        )
        assert code == 2
        assert "cannot write" in err


class TestEdits:
    @pytest.mark.parametrize(
        ("old", "new", "parts"),
        [
            ("repo/model:2025.06.1", "repo/model:2025.07.0", ("2025.06.1", "2025.07.0")),
            ("run --draws 4000 --chains 4", "run --draws 5000 --chains 4", ("4000", "5000")),
            ("a b", "a b c", ("b", "b c")),
        ],
    )
    def test_edit_span_covers_whole_words(self, old: str, new: str, parts: tuple[str, str]) -> None:
        start, old_end, new_end = edit_span(old, new)
        assert (old[start:old_end], new[start:new_end]) == parts
        assert old[:start] == new[:start] and old[old_end:] == new[new_end:]

    def test_different_edits_make_different_groups(self) -> None:
        olds = {
            "tasks": {f"t{i}": {"command": f"run {i} --draws 4000", "retries": 2} for i in range(6)}
        }
        news = copy.deepcopy(olds)
        for i in range(6):
            news["tasks"][f"t{i}"]["command"] = f"run {i} --draws {5000 if i < 4 else 6000}"
        groups = group_tasks(plan_tasks(olds, news), olds, news)
        assert [(g.change, g.task_ids) for g in groups] == [
            ("replaced", ("t0", "t1", "t2", "t3")),
            ("replaced", ("t4", "t5")),
        ]
        assert all(not g.fields[0].same_values for g in groups)

    def test_groups_by_values_and_edits_whatever_the_column_holds(self) -> None:
        """One group per distinct edit, whether a column holds one value for every task, the
        same edit to each task's own text, an edit that only matches elsewhere in the text,
        numbers, lists, or a field some tasks leave out."""
        olds = {
            "tasks": {
                f"t{i}": {
                    "command": f"run {i} --draws 4000 --seed 4000",
                    "image": "repo/model:1",
                    "retries": 2,
                    "mounts": [{"source": "in", "target": "/in"}],
                    **({"slots": 1} if i % 2 else {}),
                }
                for i in range(8)
            }
        }
        news = copy.deepcopy(olds)
        for i, task in enumerate(news["tasks"].values()):
            task["image"] = "repo/model:2"
            task["retries"] = 3 if i < 6 else 4
            task["mounts"] = [{"source": "in", "target": "/data"}]
            # t7 changes the second 4000, which a first-occurrence replace does not make.
            task["command"] = (
                f"run {i} --draws 4000 --seed 5000"
                if i == 7
                else f"run {i} --draws 5000 --seed 4000"
            )
            if i % 2:
                task["slots"] = 2
        groups = group_tasks(plan_tasks(olds, news), olds, news)
        shape = [
            (g.task_ids, [(f.name, f.old, f.new, f.same_values) for f in g.fields]) for g in groups
        ]
        assert [ids for ids, _ in shape] == [
            ("t0", "t2", "t4"),
            ("t1", "t3", "t5"),
            ("t6",),
            ("t7",),
        ]
        fields = dict(shape)
        assert fields[("t0", "t2", "t4")] == [
            ("command", "run 0 --draws 4000 --seed 4000", "run 0 --draws 5000 --seed 4000", False),
            ("image", "repo/model:1", "repo/model:2", True),
            (
                "mounts",
                '[{"source": "in", "target": "/in"}]',
                '[{"source": "in", "target": "/data"}]',
                True,
            ),
            ("retries", "2", "3", True),
        ]
        assert [f.name for f in groups[1].fields] == [
            "command",
            "image",
            "mounts",
            "retries",
            "slots",
        ]
        assert groups[3].fields[0].new == "run 7 --draws 4000 --seed 5000"

    def test_groups_the_same_whatever_order_the_tasks_are_declared_in(self) -> None:
        """A sweep-wide change (image) with a per-task edit (command) and a mixed one (retries:
        only a task between the first and the last moves elsewhere) groups alike whether the
        tasks are declared in sorted order or not."""

        def spec(i: int, image: str, draws: int, retries: int) -> dict[str, Any]:
            command = f"run {i} --draws {draws}"
            return {"command": command, "image": image, "retries": retries}

        ids = [f"t{i}" for i in range(10)]
        olds = {
            "tasks": {task_id: spec(i, "repo/model:1", 4000, 2) for i, task_id in enumerate(ids)}
        }
        news = {
            "tasks": {
                task_id: spec(i, "repo/model:2", 5000, 4 if i == 5 else 3)
                for i, task_id in enumerate(ids)
            }
        }

        def shape(olds: dict[str, Any], news: dict[str, Any]) -> list[Any]:
            groups = group_tasks(plan_tasks(olds, news), olds, news)
            return [
                (g.task_ids, [(f.name, f.old, f.new, f.same_values) for f in g.fields])
                for g in groups
            ]

        declared = shape(olds, news)
        shuffled = [ids[i] for i in (3, 0, 9, 5, 1, 8, 2, 7, 4, 6)]
        assert declared == shape(
            {"tasks": {task_id: olds["tasks"][task_id] for task_id in shuffled}},
            {"tasks": {task_id: news["tasks"][task_id] for task_id in reversed(shuffled)}},
        )
        others = tuple(task_id for task_id in ids if task_id != "t5")
        assert declared == [
            (
                others,
                [
                    ("command", "run 0 --draws 4000", "run 0 --draws 5000", False),
                    ("image", "repo/model:1", "repo/model:2", True),
                    ("retries", "2", "3", True),
                ],
            ),
            (
                ("t5",),
                [
                    ("command", "run 5 --draws 4000", "run 5 --draws 5000", True),
                    ("image", "repo/model:1", "repo/model:2", True),
                    ("retries", "2", "4", True),
                ],
            ),
        ]


class TestShardedSweeps:
    """A sweep split over several task sets still reads as one sweep."""

    @staticmethod
    def sharded(count: int) -> Any:
        def change(config: dict[str, Any]) -> None:
            job(config)["sweeps"][0]["shards"] = count

        return change

    def test_a_sharded_sweep_groups_graphs_and_lists_as_one_sweep(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        old = write_stack(tmp_path, "old", self.sharded(4))

        def imaged(config: dict[str, Any]) -> None:
            self.sharded(4)(config)
            new_image(config)

        new = write_stack(tmp_path, "dev", imaged)
        (the_job,) = changes_of(capsys, new, old)["jobs"]
        (group,) = the_job["groups"]
        assert (group["change"], group["count"]) == ("replaced", 38)
        code, out, err = cli(
            capsys, "preview", "--format", "json", "--bodies", "--config-file", str(new)
        )
        assert (code, err) == (0, "")
        document = json.loads(out)
        sets = [r for r in document["resources"] if r["type"].endswith("batch:TaskSet")]
        assert len(sets) == 4 and {r["inputs"]["setName"] for r in sets} == {f"{JOB_ID}.forecast"}
        bodies = document["tasks"][JOB_ID]
        assert len(bodies) == len({body["id"] for body in bodies}) == 38
        labels = node_labels(graph_of(capsys, "--config-file", str(new), "--against", str(old)))
        assert labels == {"j0s0": "forecast: 37 tasks (37 replaced)", "j0t0": "summary (replaced)"}
        assert "task set" not in markdown_of(capsys, new, old)  # the count stays: no warning

    def test_a_changed_shard_count_warns_first_with_what_to_write(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        new = write_stack(tmp_path, "dev", self.sharded(2))
        changes = changes_of(capsys, new)
        first = changes["warnings"][0]
        assert first["kind"] == "shards"
        for part in ("`forecast`", "1 task set ", "split over 2", "`pulumi up` refuses"):
            assert part in first["text"]
        assert "`shards: 1`" in first["text"]
        assert "`batchtasks:jobs[0].sweeps[0].shards`" in first["text"]
        assert changes["jobs"][0]["summary"]["replaced"] == 0
        markdown = markdown_of(capsys, new)
        first_warning = markdown.split("> **Warning:** ", 2)[1]
        assert first_warning.startswith("sweep `forecast`") and "`shards: 1`" in first_warning
