"""The Pulumi program under mocks: the dev stack through the real entry point, and edge cases."""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pulumi.runtime.rpc import is_rpc_secret, unwrap_rpc_secret

from batchtasks.batch.tasks import set_specs, stored_tasks
from batchtasks.config import StackConfig, parse_stack_config
from batchtasks.preview.mocks import AzureMocks, RecordingMonitor
from batchtasks.preview.offline import OfflineRun, run_offline
from batchtasks.program import declare_stack, run

DEV_STACK = Path(__file__).resolve().parents[1] / "stacks" / "Pulumi.dev.yaml"
JOB = "pulumi-python:dynamic/batch:Job"
TASK = "pulumi-python:dynamic/batch:Task"
TASK_SET = "pulumi-python:dynamic/batch:TaskSet"
COMPLETION = "pulumi-python:dynamic/batch:JobCompletion"
TOKEN = "dashboard-token-plaintext"


class WiringMonitor(RecordingMonitor):
    """Records, per resource name, the dependencies and deletedWith the engine would receive."""

    def RegisterResource(self, request: Any) -> Any:
        self.mocks.wiring[request.name] = {
            "dependencies": set(request.dependencies),
            "deletedWith": request.deletedWith,
        }
        return super().RegisterResource(request)


class WiringMocks(AzureMocks):
    """AzureMocks that also keep what each registration request said about its wiring."""

    def __init__(self) -> None:
        super().__init__()
        self.wiring: dict[str, dict[str, Any]] = {}

    def install(
        self, project: str = "batchtasks", stack: str = "dev", preview: bool = False
    ) -> WiringMocks:
        pulumi.runtime.set_mocks(
            self, project=project, stack=stack, preview=preview, monitor=WiringMonitor(self)
        )
        return self


def dev_settings() -> tuple[dict[str, Any], str]:
    """The dev stack's batchtasks settings (prefix removed) and its location."""
    config = yaml.safe_load(DEV_STACK.read_text())["config"]
    raw = {
        key.removeprefix("batchtasks:"): value
        for key, value in config.items()
        if key.startswith("batchtasks:")
    }
    return raw, config["azure-native:location"]


def config_with(**changes: Any) -> StackConfig:
    """The dev settings with top-level keys replaced, validated."""
    raw, location = dev_settings()
    raw.update(copy.deepcopy(changes))
    if "secretEnv" not in json.dumps(raw["jobs"]):
        raw.pop("dashboardToken")  # a secret no task reads is an unknown key
    return parse_stack_config(raw, location=location)


def plain_job(job_id: str, **fields: Any) -> dict[str, Any]:
    """A job of two plain tasks (no sweeps) on the dev stack's image and containers."""
    return {
        "id": job_id,
        "defaults": {"image": "cfaprdbatchcr.azurecr.io/tool:1"},
        "tasks": [
            {"id": "prepare", "command": "python -m prepare"},
            {"id": "report", "command": "python -m report"},
        ],
        **fields,
    }


def declare(config: StackConfig) -> tuple[OfflineRun, WiringMocks]:
    mocks = WiringMocks()

    def program() -> None:
        declare_stack(config, lambda _key: pulumi.Output.secret("[secret]"))

    return run_offline(program, mocks=mocks), mocks


@pytest.fixture
def dev_runtime_config() -> Iterator[None]:
    """Set the runtime config as `pulumi up` would for the dev stack: objects as JSON strings,
    the secure value decrypted (to a stand-in) and marked secret."""
    config = yaml.safe_load(DEV_STACK.read_text())["config"]
    values = {}
    for key, value in config.items():
        if isinstance(value, dict) and list(value) == ["secure"]:
            values[key] = TOKEN
        else:
            values[key] = value if isinstance(value, str) else json.dumps(value)
    pulumi.runtime.set_all_config(values, ["batchtasks:dashboardToken"])
    yield
    pulumi.runtime.set_all_config({}, [])


def without_secrets(value: Any) -> Any:
    """The value with every Pulumi secret replaced by a marker, to search for leaks."""
    if is_rpc_secret(value):
        return "<secret>"
    if isinstance(value, dict):
        return {key: without_secrets(item) for key, item in value.items()}
    if isinstance(value, list):
        return [without_secrets(item) for item in value]
    return value


@pytest.fixture
def dev_run(dev_runtime_config: None) -> OfflineRun:
    """The real entry point (`run()`) for the dev stack, with its exports resolved."""

    def program() -> dict[str, Any]:
        run()
        return dict(pulumi.runtime.get_root_resource().outputs)

    return run_offline(program)


class TestDevStack:
    def test_registers_storage_then_a_job_its_task_its_sweep_and_completion(
        self, dev_run: OfflineRun
    ) -> None:
        batch = [(r["type"], r["name"]) for r in dev_run.resources if "dynamic/batch" in r["type"]]
        assert sorted(batch) == sorted(
            [
                (JOB, "job-weekly-forecast"),
                (TASK, "weekly-forecast.summary"),
                (TASK_SET, "weekly-forecast.forecast"),
                (COMPLETION, "weekly-forecast.completion"),
            ]
        )
        assert len(dev_run.of_type("batchtasks:azure:BatchStorage")) == 1
        job = dev_run.named("job-weekly-forecast")["inputs"]
        assert (job["jobId"], job["poolId"], job["priority"], job["maxParallelTasks"]) == (
            "weekly-forecast",
            "forecast-pool",
            100,
            40,
        )
        assert job["onAllTasksComplete"] == "terminateJob"
        assert job["usesTaskDependencies"] is True

    def test_sweep_set_holds_every_expanded_task_without_ids(self, dev_run: OfflineRun) -> None:
        inputs = dev_run.named("weekly-forecast.forecast")["inputs"]
        tasks = stored_tasks(inputs)
        # 3 diseases x 12 states, minus rsv-az, plus the two national forecasts.
        assert len(tasks) == 37
        assert {"covid-ca", "flu-us", "covid-us", "rsv-ca"} <= set(tasks)
        assert "rsv-az" not in tasks
        # The sweep's template spec is stored once, each task as its axis values, in buckets
        # of JSON text keyed by a hash of the id.
        assert all(key.startswith("#") for key in inputs["tasks"])
        template = json.loads(inputs["template"])
        assert "id" not in template
        assert template["command"]["$t"][:2] == ["python -m forecast.run --disease ", 0]
        assert tasks["covid-ca"] == ["covid", "ca"]
        covid_ca = set_specs(inputs)["covid-ca"]
        assert "id" not in covid_ca
        assert covid_ca["command"].startswith("python -m forecast.run --disease covid --state ca")
        assert covid_ca["outputs"][0]["path"] == "covid/ca"
        assert covid_ca["env"]["STATE"] == "ca"

    def test_secret_arrives_as_a_pulumi_secret_and_never_in_plaintext(
        self, dev_run: OfflineRun
    ) -> None:
        secrets = dev_run.named("weekly-forecast.summary")["inputs"]["secrets"]
        assert is_rpc_secret(secrets)
        assert unwrap_rpc_secret(secrets) == {"dashboardToken": TOKEN}
        recorded = json.dumps([without_secrets(r["inputs"]) for r in dev_run.resources])
        assert TOKEN not in recorded
        # Only the task that names the key receives it.
        assert dev_run.named("weekly-forecast.forecast")["inputs"]["secrets"] == {}

    def test_exports(self, dev_run: OfflineRun) -> None:
        outputs = dev_run.outputs
        assert outputs["jobIds"] == ["weekly-forecast"]
        assert outputs["taskCounts"] == {"weekly-forecast": 38}
        assert outputs["poolId"] == "forecast-pool"
        assert outputs["storageAccount"] == "stforecastingdev"
        assert outputs["containerUrls"]["forecasts"] == (
            "https://stforecastingdev.blob.core.windows.net/forecasts"
        )
        assert outputs["identityResourceId"].endswith(
            "/resourceGroups/rg-forecasting/providers/Microsoft.ManagedIdentity/"
            "userAssignedIdentities/id-forecasting-dev"
        )
        assert outputs["mountPaths"]["nssp-etl"] == "/mnt/batch/tasks/fsmounts/nssp-etl"

    def test_invalid_runtime_config_stops_before_any_resource(
        self, dev_runtime_config: None
    ) -> None:
        pulumi.runtime.set_all_config(
            {"batchtasks:resourceGroup": "rg", "azure-native:location": "eastus"}, []
        )
        mocks = AzureMocks()
        with pytest.raises(pulumi.RunError, match="batchtasks:storage: is required"):
            run_offline(run, mocks=mocks)
        assert [r["type"] for r in mocks.resources] == []


class TestEdgeCases:
    def test_job_without_sweeps_registers_one_task_resource_per_task(self) -> None:
        raw, _ = dev_settings()
        run_, _ = declare(config_with(jobs=[*raw["jobs"], plain_job("adhoc")]))
        names = sorted(
            r["name"]
            for r in run_.resources
            if r["type"] in (TASK, TASK_SET) and r["inputs"]["jobId"] == "adhoc"
        )
        assert names == ["adhoc.prepare", "adhoc.report"]
        assert run_.named("adhoc.report")["inputs"]["task"]["command"] == "python -m report"

    def test_no_action_job_has_no_completion(self) -> None:
        run_, _ = declare(config_with(jobs=[plain_job("adhoc", onAllTasksComplete="noAction")]))
        assert run_.of_type(COMPLETION) == []
        assert run_.named("job-adhoc")["inputs"]["onAllTasksComplete"] == "noAction"

    def test_terminate_job_completion_waits_for_the_job_and_every_task_resource(self) -> None:
        raw, _ = dev_settings()
        jobs = [*raw["jobs"], plain_job("adhoc", onAllTasksComplete="terminateJob")]
        run_, mocks = declare(config_with(jobs=jobs))
        for job_id in ("weekly-forecast", "adhoc"):
            completion = mocks.wiring[f"{job_id}.completion"]["dependencies"]
            owned = {
                r["urn"]
                for r in run_.resources
                if r["type"] in (JOB, TASK, TASK_SET) and r["inputs"]["jobId"] == job_id
            }
            assert len(owned) == 3
            assert owned <= completion
        assert run_.named("adhoc.completion")["inputs"]["onAllTasksComplete"] == "terminateJob"

    def test_task_resources_of_a_job_that_ends_itself_change_one_after_another(self) -> None:
        # Each guard against ending a terminateJob job counts the job's other tasks: chained,
        # no two task resources of such a job change at once. Other jobs stay parallel.
        raw, _ = dev_settings()
        sharded = copy.deepcopy(raw["jobs"][0])
        sharded["id"] = "sharded"
        sharded["sweeps"][0]["shards"] = 4
        jobs = [
            sharded,
            plain_job("adhoc", onAllTasksComplete="terminateJob"),
            plain_job("flat", onAllTasksComplete="noAction"),
        ]
        run_, mocks = declare(config_with(jobs=jobs))

        def task_resources(job_id: str) -> list[dict[str, Any]]:
            # In registration order, which is declaration order: tasks, then each sweep's sets.
            return [
                r
                for r in run_.resources
                if r["type"] in (TASK, TASK_SET) and r["inputs"]["jobId"] == job_id
            ]

        def task_dependencies(resource: dict[str, Any]) -> set[str]:
            # Besides the job and storage outputs: which task resources it waits for.
            tasks = {r["urn"] for r in run_.resources if r["type"] in (TASK, TASK_SET)}
            return mocks.wiring[resource["name"]]["dependencies"] & tasks

        for job_id, count in (("sharded", 5), ("adhoc", 2)):
            chain = task_resources(job_id)
            assert len(chain) == count
            job_urn = run_.named(f"job-{job_id}")["urn"]
            assert task_dependencies(chain[0]) == set()
            for before, after in itertools.pairwise(chain):
                assert task_dependencies(after) == {before["urn"]}
                assert job_urn in mocks.wiring[after["name"]]["dependencies"]
        assert [r["name"] for r in task_resources("sharded")] == [
            "sharded.summary",
            "sharded.forecast",
            *(f"sharded.forecast.shard-{index}" for index in (1, 2, 3)),
        ]
        for resource in task_resources("flat"):
            assert task_dependencies(resource) == set()

    def test_depends_on_sets_uses_task_dependencies(self) -> None:
        raw, _ = dev_settings()
        chained = plain_job("chained")
        chained["tasks"][1]["dependsOn"] = ["prepare"]
        run_, _ = declare(config_with(jobs=[*raw["jobs"], chained, plain_job("flat")]))
        assert run_.named("job-chained")["inputs"]["usesTaskDependencies"] is True
        assert run_.named("job-flat")["inputs"]["usesTaskDependencies"] is False
        assert run_.named("chained.report")["inputs"]["task"]["dependsOn"] == ["prepare"]

    def test_tasks_and_sets_are_deleted_with_their_job(self) -> None:
        run_, mocks = declare(config_with())
        job_urn = run_.named("job-weekly-forecast")["urn"]
        for name in ("weekly-forecast.summary", "weekly-forecast.forecast"):
            assert mocks.wiring[name]["deletedWith"] == job_urn
            assert job_urn in mocks.wiring[name]["dependencies"]
        assert mocks.wiring["job-weekly-forecast"]["deletedWith"] == ""

    def test_existing_pool_and_no_registry(self) -> None:
        raw, _ = dev_settings()
        batch = {**raw["batch"], "pool": {"id": "shared-pool", "create": False}}
        for key in ("registry", "dashboardToken"):
            raw.pop(key)
        config = parse_stack_config(
            {**raw, "batch": batch, "jobs": [plain_job("adhoc")]}, location="eastus"
        )
        run_, _ = declare(config)
        assert run_.of_type("azure-native:batch:Pool") == []
        assert run_.named("job-adhoc")["inputs"]["poolId"] == "shared-pool"
        assert run_.named("adhoc.prepare")["inputs"].get("registryServer") is None

    def test_minimal_pool_block_takes_the_storage_defaults(self) -> None:
        # A newcomer's first stack file: no image and no node agent.
        raw, _ = dev_settings()
        batch = {
            **raw["batch"],
            "pool": {
                "id": "first-pool",
                "create": True,
                "vmSize": "Standard_D2s_v3",
                "maxNodes": 2,
            },
        }
        raw.pop("dashboardToken")
        config = parse_stack_config(
            {**raw, "batch": batch, "jobs": [plain_job("adhoc")]}, location="eastus"
        )
        run_, _ = declare(config)
        (pool,) = run_.of_type("azure-native:batch:Pool")
        vm = pool["inputs"]["deploymentConfiguration"]["virtualMachineConfiguration"]
        assert vm["imageReference"] == {
            "publisher": "microsoft-dsvm",
            "offer": "ubuntu-hpc",
            "sku": "2204",
            "version": "latest",
        }
        assert vm["nodeAgentSkuId"] == "batch.node.ubuntu 22.04"
        assert pool["inputs"]["vmSize"] == "Standard_D2s_v3"

    def test_second_run_sees_none_of_the_first_runs_resources(self) -> None:
        first, _ = declare(config_with(jobs=[plain_job("first")]))
        second, _ = declare(config_with(jobs=[plain_job("second")]))
        assert first.of_type(JOB)[0]["name"] == "job-first"
        assert [r["name"] for r in second.of_type(JOB)] == ["job-second"]
        assert all("first" not in r["name"] for r in second.resources)


def test_a_task_set_refuses_tasks_that_are_not_plain_data_naming_them() -> None:
    from batchtasks.batch.tasks import BatchTaskSet, TaskTarget

    target = TaskTarget("job", "https://a.eastus.batch.azure.com", "/id", {}, "/mnt")
    pending = pulumi.Output.from_input({"command": "echo", "image": "python:3.12"})
    with pytest.raises(TypeError, match=r"task\(s\) late: .*plain data"):
        BatchTaskSet("sweep", target, {"fine": {"command": "echo"}, "late": pending})
