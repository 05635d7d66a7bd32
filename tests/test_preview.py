"""`batchtasks preview` and `batchtasks schema`: JSON, Markdown, --against, exit codes."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from azure.batch import models as batch_models

from batchtasks.batch.spec import TaskBodyBuilder
from batchtasks.batch.tasks import task_context
from batchtasks.cli import main
from batchtasks.config import load_stack_file
from batchtasks.exits import Exit
from tests.scratch_git import commit_all, require_git

PROJECT = Path(__file__).resolve().parents[1]
DEV_STACK = PROJECT / "stacks" / "Pulumi.dev.yaml"
JOB_ID = "weekly-forecast"
CIPHERTEXT = yaml.safe_load(DEV_STACK.read_text())["config"]["batchtasks:dashboardToken"]["secure"]


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the command in-process; return its exit code, stdout and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_stack(
    directory: Path, name: str, change: Callable[[dict[str, Any]], None] | None = None
) -> Path:
    """Write the dev stack file, its `config:` block changed in place by `change`."""
    document = yaml.safe_load(DEV_STACK.read_text())
    if change is not None:
        change(document["config"])
    path = directory / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def job(config: dict[str, Any]) -> dict[str, Any]:
    return config["batchtasks:jobs"][0]


def preview_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = cli(capsys, "preview", "--format", "json", *argv)
    assert (code, err) == (0, "")
    return json.loads(out)


def job_section(markdown: str) -> list[str]:
    """The task table rows of the dev job's section."""
    section = markdown.split(f"## Job `{JOB_ID}`", 1)[1]
    return [line for line in section.splitlines() if line.startswith("| `")]


def cells(row: str) -> list[str]:
    """Split a Markdown table row on its unescaped pipes."""
    parts, current, escaped = [], "", False
    for char in row:
        if char == "|" and not escaped:
            parts.append(current)
            current = ""
        else:
            current += char
        escaped = char == "\\"
    return [part.strip() for part in [*parts, current][1:-1]]


@pytest.fixture
def in_project(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT)


class TestJson:
    def test_dev_stack_resources_jobs_and_task_bodies(
        self, capsys: pytest.CaptureFixture[str], in_project: None
    ) -> None:
        document = preview_json(capsys, "--stack", "dev", "--bodies")
        assert set(document) == {"resources", "jobs", "tasks"}
        resources = {r["name"]: r for r in document["resources"]}
        assert all(set(r) == {"type", "name", "parent", "inputs"} for r in document["resources"])
        assert resources["storage-account"]["parent"] == "storage"
        assert resources["storage"]["parent"] is None
        assert resources["job-weekly-forecast"]["type"] == "pulumi-python:dynamic/batch:Job"
        assert document["jobs"] == [
            {
                "id": JOB_ID,
                "poolInfo": {"poolId": "forecast-pool"},
                "priority": 100,
                "maxParallelTasks": 40,
                "usesTaskDependencies": True,
                "constraints": {"maxWallClockTime": "PT12H"},
                "onAllTasksComplete": "terminatejob",
            }
        ]
        bodies = {body["id"]: body for body in document["tasks"][JOB_ID]}
        assert len(document["tasks"][JOB_ID]) == len(bodies) == 38
        covid_ca = bodies["covid-ca"]
        assert covid_ca["commandLine"].startswith("python -m forecast.run --disease covid")
        assert covid_ca["containerSettings"]["imageName"] == (
            "cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1"
        )
        assert (
            "source=/mnt/batch/tasks/fsmounts/nssp-etl,target=/data/nssp"
            in covid_ca["containerSettings"]["containerRunOptions"]
        )
        assert covid_ca["outputFiles"][0]["destination"]["container"]["path"] == "covid/ca"
        assert covid_ca["constraints"] == {
            "maxWallClockTime": "PT2H",
            "retentionTime": "P7D",
            "maxTaskRetryCount": 2,
        }
        for body in bodies.values():
            # Exactly what the Batch SDK takes: its own model gives the same body back.
            assert batch_models.BatchTaskCreateOptions(body).as_dict() == body

    def test_every_sweep_body_is_the_seeds_for_the_spec_the_preview_shows(
        self, capsys: pytest.CaptureFixture[str], in_project: None
    ) -> None:
        # The preview builds a sweep's bodies from its stored axis values; the seed's builder,
        # given the spec the preview shows for each task, must give the same body.
        document = preview_json(capsys, "--stack", "dev", "--bodies")
        bodies = {body["id"]: body for body in document["tasks"][JOB_ID]}
        (sweep,) = [r for r in document["resources"] if r["type"].endswith(":TaskSet")]
        seed = TaskBodyBuilder(task_context(sweep["inputs"]))
        assert len(sweep["inputs"]["tasks"]) == 37
        for task_id, spec in sweep["inputs"]["tasks"].items():
            assert bodies[task_id] == seed.build(task_id, spec), task_id

    def test_environment_is_sorted_by_name_whatever_the_wire_order(
        self, capsys: pytest.CaptureFixture[str], in_project: None
    ) -> None:
        document = preview_json(capsys, "--stack", "dev", "--bodies")
        declared = {
            spec["id"]: spec
            for spec in (
                *load_stack_file(DEV_STACK).jobs[0].tasks,
                *load_stack_file(DEV_STACK).jobs[0].sweeps[0].tasks,
            )
        }
        for body in document["tasks"][JOB_ID]:
            spec = declared[body["id"]]
            names = [setting["name"] for setting in body["environmentSettings"]]
            assert names == sorted([*spec.get("env", {}), *spec.get("secretEnv", {})])

    def test_secrets_show_as_placeholder_and_are_never_decrypted(
        self, capsys: pytest.CaptureFixture[str], in_project: None
    ) -> None:
        code, out, _ = cli(capsys, "preview", "--stack", "dev", "--format", "json", "--bodies")
        assert code == 0
        document = json.loads(out)
        summary = next(b for b in document["tasks"][JOB_ID] if b["id"] == "summary")
        assert {"name": "DASHBOARD_TOKEN", "value": "[secret]"} in summary["environmentSettings"]
        task = next(r for r in document["resources"] if r["name"] == f"{JOB_ID}.summary")
        assert task["inputs"]["secrets"] == {"dashboardToken": "[secret]"}
        assert CIPHERTEXT not in out
        assert "__provider" not in out

    def test_generated_2000_task_sweep(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def big(config: dict[str, Any]) -> None:
            sweep = job(config)["sweeps"][0]
            sweep.update(
                taskId="r{run}-s{shard}", matrix={"run": list(range(40)), "shard": list(range(50))}
            )
            sweep.pop("include")
            sweep.pop("exclude")
            sweep["command"] = "python -m forecast.run --run {run} --shard {shard}"
            sweep["env"] = {"RUN": "{run}"}
            sweep["outputs"][0]["path"] = "{run}/{shard}"
            job(config)["tasks"][0]["dependsOn"] = ["r0-s0"]

        path = write_stack(tmp_path, "big", big)
        document = preview_json(capsys, "--config-file", str(path), "--bodies")
        bodies = document["tasks"][JOB_ID]
        assert len(bodies) == 2001
        assert len({body["id"] for body in bodies}) == 2001
        sweep = next(r for r in document["resources"] if r["name"] == f"{JOB_ID}.forecast")
        assert len(sweep["inputs"]["tasks"]) == 2000
        assert sweep["inputs"]["tasks"]["r3-s7"]["command"] == (
            "python -m forecast.run --run 3 --shard 7"
        )
        # Without --bodies the document is the same but for the bodies.
        plain = preview_json(capsys, "--config-file", str(path))
        assert plain == {key: value for key, value in document.items() if key != "tasks"}
        # The Markdown shows the sweep as one row, what its tasks share and what varies.
        code, out, err = cli(capsys, "preview", "--config-file", str(path))
        assert (code, err) == (0, "")
        section = out.split(f"## Job `{JOB_ID}`", 1)[1].split("\n## ", 1)[0]
        rows = [line for line in section.splitlines() if line.startswith("| ")][1:]
        assert [row.split(" | ", 1)[0] for row in rows] == [
            "| sweep `forecast`: 2,000 tasks, `r0-s0` … `r39-s49`",
            "| `summary`",
        ]
        sweep_row = cells(rows[0])
        assert sweep_row[1] == "`cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1`"
        assert sweep_row[2] == (
            "`python -m forecast.run --run 0 --shard 0` *(each task its own; `r0-s0`'s)*"
        )


class TestMarkdown:
    def test_dev_stack_summary(self, capsys: pytest.CaptureFixture[str], in_project: None) -> None:
        code, out, err = cli(capsys, "preview", "--stack", "dev")
        assert (code, err) == (0, "")
        assert out.startswith("# Preview of stack `dev`")
        assert "| `storage-pool` | `azure-native:batch:Pool` | `storage` |" in out
        assert f"## Job `{JOB_ID}`: 38 task(s)" in out
        rows = job_section(out)
        assert len(rows) == 38
        summary = cells(next(row for row in rows if row.startswith("| `summary`")))
        assert summary == [
            "`summary`",
            "`cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1`",
            "`python -m forecast.summarise --in /data/forecasts --out summary`",
            "`forecasts → /data/forecasts`",
            "`summary/* → forecasts/summary`",
        ]
        covid_ca = cells(next(row for row in rows if row.startswith("| `covid-ca`")))
        assert covid_ca[2].endswith("…`")
        assert len(covid_ca[2]) <= 82
        assert covid_ca[3] == "`nssp-etl → /data/nssp`, `population → /data/population`"
        assert CIPHERTEXT not in out

    def test_pipes_are_escaped_in_cells(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def piped(config: dict[str, Any]) -> None:
            job(config)["tasks"][0]["command"] = "sh -c 'python -m forecast.summarise | gzip'"

        path = write_stack(tmp_path, "piped", piped)
        code, out, _ = cli(capsys, "preview", "--config-file", str(path))
        assert code == 0
        row = next(row for row in job_section(out) if row.startswith("| `summary`"))
        assert len(cells(row)) == 5
        assert cells(row)[2] == "`sh -c 'python -m forecast.summarise \\| gzip'`"


def changed_stack(tmp_path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    return write_stack(tmp_path, "dev", change)


class TestAgainst:
    @staticmethod
    def retry_more_drop_az_add_nv(config: dict[str, Any]) -> None:
        the_job = job(config)
        the_job["defaults"]["retries"] = 3
        the_job["tasks"][0]["command"] = "python -m forecast.summarise --out summary"
        states = the_job["sweeps"][0]["matrix"]["state"]
        states.remove("az")
        states.append("nv")
        the_job["sweeps"][0]["exclude"] = []

    def test_tasks_added_removed_replaced_and_updated(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        new = changed_stack(tmp_path, self.retry_more_drop_az_add_nv)
        document = preview_json(capsys, "--config-file", str(new), "--against", str(DEV_STACK))
        changes = document["changes"]
        assert changes["against"] == str(DEV_STACK)
        assert changes["resources"] == {"added": [], "removed": [], "changed": []}
        (the_job,) = changes["jobs"]
        assert (the_job["id"], the_job["change"], the_job["fields"]) == (JOB_ID, "unchanged", [])
        tasks = the_job["tasks"]
        assert tasks["added"] == ["covid-nv", "flu-nv", "rsv-nv"]
        assert tasks["removed"] == ["covid-az", "flu-az"]
        assert tasks["replaced"] == {"summary": ["command", "retries"]}
        assert len(tasks["updated"]) == 35
        assert all(fields == ["retries"] for fields in tasks["updated"].values())
        assert tasks["unchanged"] == 0
        assert any(
            w["kind"] == "running"
            and "1 task replaced and 2 tasks removed" in w["text"]
            and "files on the node are deleted" in w["text"]
            for w in changes["warnings"]
        )

    def test_markdown_lists_each_change_with_its_fields_and_warnings(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        new = changed_stack(tmp_path, self.retry_more_drop_az_add_nv)
        code, out, _ = cli(
            capsys, "preview", "--config-file", str(new), "--against", str(DEV_STACK)
        )
        assert code == 0
        changes = out.split("## Changes against", 1)[1].split("## Resources", 1)[0]
        assert "3 added, 2 removed, 1 replaced, 35 updated in place, 0 unchanged." in changes
        assert (
            "- **1 task replaced**: `summary`\n"
            "  - `command`: `python -m forecast.summarise --in /data/forecasts --out summary`"
            " → `python -m forecast.summarise --out summary`\n"
            "  - `retries`: `2` → `3`\n"
        ) in changes
        assert "- **35 tasks updated in place**\n  - `retries`: `2` → `3`\n" in changes
        assert "- **2 tasks removed**\n" in changes
        assert "- **3 tasks added**\n" in changes
        assert "`covid-nv`, `flu-nv`, `rsv-nv`" in changes
        warnings = [line for line in changes.splitlines() if line.startswith("> **Warning:**")]
        assert any(
            "stops before changing anything" in w and "replaceRunningTasks" in w for w in warnings
        )

    def test_same_config_has_no_changes(
        self, capsys: pytest.CaptureFixture[str], in_project: None
    ) -> None:
        code, out, _ = cli(capsys, "preview", "--stack", "dev", "--against", str(DEV_STACK))
        assert code == 0
        assert "No changes." in out
        assert "> **Warning:**" not in out

    def test_new_pool_replaces_the_job_and_reruns_every_task(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def new_pool(config: dict[str, Any]) -> None:
            config["batchtasks:batch"]["pool"]["id"] = "forecast-pool-2"

        new = changed_stack(tmp_path, new_pool)
        changes = preview_json(capsys, "--config-file", str(new), "--against", str(DEV_STACK))[
            "changes"
        ]
        (the_job,) = changes["jobs"]
        assert (the_job["change"], the_job["fields"]) == ("replaced", ["poolId"])
        assert len(the_job["tasks"]["replaced"]) == 38
        assert the_job["tasks"]["replaced"]["covid-ca"] == ["job"]
        assert any(
            w["kind"] == "job-replaced"
            and f"job `{JOB_ID}` is replaced (poolId changes)" in w["text"]
            and "all 38 tasks run again" in w["text"]
            for w in changes["warnings"]
        )
        changed = {(r["name"], tuple(r["fields"])) for r in changes["resources"]["changed"]}
        assert ("storage-pool", ("poolName",)) in changed

    def test_terminate_job_back_to_no_action_warns(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def no_action(config: dict[str, Any]) -> None:
            job(config)["onAllTasksComplete"] = "noAction"

        new = changed_stack(tmp_path, no_action)
        changes = preview_json(capsys, "--config-file", str(new), "--against", str(DEV_STACK))[
            "changes"
        ]
        assert changes["jobs"][0]["change"] == "updated"
        assert changes["jobs"][0]["fields"] == ["onAllTasksComplete"]
        assert any(
            "terminateJob back to noAction" in w["text"] and "refuses" in w["text"]
            for w in changes["warnings"]
        )
        assert changes["resources"]["removed"] == []

    def test_container_removed_or_access_changed_warns(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def old_containers(config: dict[str, Any]) -> None:
            config["batchtasks:storage"]["containers"] += [
                {"name": "scratch", "access": "read"},
                {"name": "archive", "access": "write"},
            ]

        def new_containers(config: dict[str, Any]) -> None:
            config["batchtasks:storage"]["containers"] += [{"name": "scratch", "access": "write"}]

        old = write_stack(tmp_path, "old", old_containers)
        new = write_stack(tmp_path, "new", new_containers)
        changes = preview_json(capsys, "--config-file", str(new), "--against", str(old))["changes"]
        removed = {r["name"] for r in changes["resources"]["removed"]}
        assert {"storage-archive", "storage-archive-contributor"} <= removed
        assert any("container `archive` is removed" in w["text"] for w in changes["warnings"])
        assert any(
            "container `scratch` changes access read -> write" in w["text"]
            for w in changes["warnings"]
        )
        assert changes["jobs"][0]["tasks"]["unchanged"] == 38

    def test_identity_change_replaces_every_task(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def new_identity(config: dict[str, Any]) -> None:
            config["batchtasks:identity"]["name"] = "id-forecasting-dev-2"

        new = changed_stack(tmp_path, new_identity)
        changes = preview_json(capsys, "--config-file", str(new), "--against", str(DEV_STACK))[
            "changes"
        ]
        replaced = changes["jobs"][0]["tasks"]["replaced"]
        assert len(replaced) == 38
        assert all("identityResourceId" in fields for fields in replaced.values())
        assert any("the identity changes" in w["text"] for w in changes["warnings"])

    def test_against_a_git_revision(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        require_git()
        stacks = tmp_path / "stacks"
        stacks.mkdir()
        path = write_stack(stacks, "dev")
        commit_all(tmp_path, "dev")
        write_stack(stacks, "dev", self.retry_more_drop_az_add_nv)
        changes = preview_json(capsys, "--config-file", str(path), "--against", "HEAD")["changes"]
        assert changes["against"] == "HEAD"
        assert changes["jobs"][0]["tasks"]["added"] == ["covid-nv", "flu-nv", "rsv-nv"]
        assert changes["jobs"][0]["tasks"]["removed"] == ["covid-az", "flu-az"]

    def test_unknown_revision_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        path = write_stack(tmp_path, "dev")
        code, out, err = cli(
            capsys, "preview", "--config-file", str(path), "--against", "no-such-revision"
        )
        assert (code, out) == (2, "")
        assert "--against 'no-such-revision' is not a file, nor a git revision" in err

    def test_invalid_old_config_says_where(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def broken(config: dict[str, Any]) -> None:
            job(config)["priority"] = 5000

        old = write_stack(tmp_path, "old", broken)
        code, _, err = cli(
            capsys,
            "preview",
            "--config-file",
            str(write_stack(tmp_path, "dev")),
            "--against",
            str(old),
        )
        assert code == Exit.INVALID
        assert f"invalid configuration in --against {old}" in err
        assert "batchtasks:jobs[0].priority" in err


class TestExitCodes:
    def test_invalid_configuration_lists_every_problem(
        self, capsys: pytest.CaptureFixture[str], tmp_path: Path
    ) -> None:
        def broken(config: dict[str, Any]) -> None:
            job(config)["priority"] = 5000
            config["batchtasks:storage"]["containers"][0]["access"] = "sometimes"

        code, out, err = cli(
            capsys, "preview", "--config-file", str(write_stack(tmp_path, "broken", broken))
        )
        assert (code, out) == (Exit.INVALID, "")
        assert "batchtasks:jobs[0].priority" in err
        assert "batchtasks:storage.containers[0].access" in err
        assert "Traceback" not in err

    def test_missing_stack_file_is_a_usage_error(
        self, capsys: pytest.CaptureFixture[str], in_project: None
    ) -> None:
        code, out, err = cli(capsys, "preview", "--stack", "nosuchstack")
        assert (code, out) == (2, "")
        assert "stacks/Pulumi.nosuchstack.yaml" in err and "not found" in err

    @pytest.mark.parametrize(
        "argv",
        [
            [],
            ["preview"],
            ["preview", "--stack", "dev", "--format", "xml"],
            ["preview", "--stack", "dev", "--config-file", "x.yaml"],
            ["deploy"],
        ],
    )
    def test_usage_errors(self, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
        code, out, err = cli(capsys, *argv)
        assert (code, out) == (2, "")
        assert "usage: batchtasks" in err

    def test_builder_rejection_is_an_invalid_configuration(
        self, capsys: pytest.CaptureFixture[str], in_project: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def reject(builder: Any, task_id: str, spec: Any) -> dict[str, Any]:
            raise ValueError("image: 'bad' is not a valid image reference")

        monkeypatch.setattr("batchtasks.batch.spec.TaskBodyBuilder.build", reject)
        code, out, err = cli(capsys, "preview", "--stack", "dev")
        assert (code, out) == (Exit.INVALID, "")
        assert "job 'weekly-forecast', task 'summary': image: 'bad'" in err
        assert "Traceback" not in err


def test_schema_validates_the_dev_stack(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    config = yaml.safe_load(DEV_STACK.read_text())["config"]
    jsonschema.validate(config, schema)
    broken = copy.deepcopy(config)
    broken["batchtasks:jobs"][0]["priority"] = "high"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_installed_command_is_offline_and_deterministic() -> None:
    command = shutil.which("batchtasks", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip("the batchtasks console script is not installed (pip install -e .)")
    outputs = []
    for seed in ("1", "2"):
        # Different hash seeds reorder every map the mocks receive; the output must not move.
        env = {**os.environ, "PYTHONHASHSEED": seed}
        env = {key: value for key, value in env.items() if not key.startswith("AZURE_")}
        done = subprocess.run(
            [command, "preview", "--stack", "dev", "--format", "json", "--bodies"],
            cwd=PROJECT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (done.returncode, done.stderr) == (0, "")
        outputs.append(done.stdout)
    assert outputs[0] == outputs[1]
    assert len(json.loads(outputs[0])["tasks"][JOB_ID]) == 38
