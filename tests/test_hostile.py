"""Hostile and careless stack files, tried through the `batchtasks` command as a user would.

Each case starts from the example stack, changes its text, runs `batchtasks preview` and checks
the exit code, the key path of the problem, and that no traceback escapes. Values a reviewer
reads must be what runs, and nothing in a value may change the review comment itself.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from batchtasks.cli import main
from batchtasks.exits import Exit
from tests.scratch_git import commit_all, require_git

PROJECT = Path(__file__).resolve().parents[1]
DEV_STACK = PROJECT / "stacks" / "Pulumi.dev.yaml"
DEV_TEXT = DEV_STACK.read_text(encoding="utf-8")
JOB = "batchtasks:jobs[0]"
SWEEP = f"{JOB}.sweeps[0]"
SUMMARY = f"{JOB}.tasks[0]"
DEFAULTS = f"{JOB}.defaults"


def edited(*replacements: tuple[str, str]) -> str:
    """The example stack's text with each (old, new) replaced once; old must be there."""
    text = DEV_TEXT
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str | bytes, *extra: str
) -> tuple[int, str, str]:
    """Write a stack file and run `batchtasks preview` on it; return code, stdout, stderr."""
    path = tmp_path / "Pulumi.hostile.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    code = main(["preview", "--config-file", str(path), *extra])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str | bytes, path: str, *words: str
) -> str:
    """Assert the stack is refused (Exit.INVALID) with a problem at `path` (or under it) saying each
    of `words`."""
    code, out, err = run(capsys, tmp_path, text)
    assert (code, out) == (Exit.INVALID, ""), err
    lines = [line.strip() for line in err.splitlines()]
    matching = [
        line
        for line in lines
        if line.startswith(path) and line[len(path) : len(path) + 1] in (":", ".", "[")
    ]
    assert matching, err
    assert any(all(word in line for word in words) for line in matching), err
    return err


def accepted(capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str) -> dict:
    """Assert the stack previews (exit 0) and return the JSON preview."""
    code, out, err = run(capsys, tmp_path, text, "--format", "json", "--bodies")
    assert (code, err) == (0, ""), err
    return json.loads(out)


def task_ids(document: dict) -> list[str]:
    return [task["id"] for task in document["tasks"]["weekly-forecast"]]


def env_of(document: dict, task_id: str) -> dict[str, str]:
    task = next(t for t in document["tasks"]["weekly-forecast"] if t["id"] == task_id)
    return {item["name"]: item.get("value") for item in task["environmentSettings"]}


def command_of(document: dict, task_id: str) -> str:
    task = next(t for t in document["tasks"]["weekly-forecast"] if t["id"] == task_id)
    return task["commandLine"]


STATES = "state: [ca, ny, tx, fl, il, pa, oh, ga, nc, mi, wa, az]"
SEED = "MODEL_SEED: 20250601"


# --- YAML read as the Pulumi CLI reads it (YAML 1.2) -------------------------------------------


class TestYaml12:
    def test_yes_no_on_off_stay_text(self, capsys, tmp_path) -> None:
        text = edited((STATES, "state: [ca, ny, az, NO, yes, on, OFF]"))
        document = accepted(capsys, tmp_path, text)
        assert {"covid-NO", "flu-yes", "rsv-on", "covid-OFF"} <= set(task_ids(document))
        assert not any(task_id.endswith(("-false", "-true")) for task_id in task_ids(document))

    def test_sexagesimal_looking_value_stays_text(self, capsys, tmp_path) -> None:
        document = accepted(capsys, tmp_path, edited((SEED, f"{SEED}\n          START: 12:30")))
        assert env_of(document, "covid-ca")["START"] == "12:30"

    def test_leading_zero_axis_value_must_be_quoted(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((STATES, "state: [ca, ny, az, 06]")),
            f"{SWEEP}.matrix.state[3]",
            "06",
            "quote it",
            "6",
        )

    def test_trailing_zero_version_must_be_quoted(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((SEED, f"{SEED}\n          PYTHON: 3.10")),
            f"{DEFAULTS}.env.PYTHON",
            "3.10",
            "quote it",
            "3.1",
        )

    def test_quoted_version_is_kept(self, capsys, tmp_path) -> None:
        document = accepted(capsys, tmp_path, edited((SEED, f"{SEED}\n          PYTHON: '3.10'")))
        assert env_of(document, "covid-ca")["PYTHON"] == "3.10"

    def test_capitalised_boolean_must_be_written_as_json_spells_it(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((STATES, "state: [ca, ny, az, True]")),
            f"{SWEEP}.matrix.state[3]",
            "boolean",
            "quote it",
        )

    def test_underscored_number_must_be_quoted(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((SEED, "MODEL_SEED: 20_250_601")),
            f"{DEFAULTS}.env.MODEL_SEED",
            "20250601",
            "quote it",
        )

    def test_hex_retry_count_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys, tmp_path, edited(("retries: 2", "retries: 0x10")), f"{DEFAULTS}.retries", "16"
        )

    def test_infinity_cannot_reach_the_program(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((SEED, "MODEL_SEED: .inf")),
            f"{DEFAULTS}.env.MODEL_SEED",
            "JSON",
            "quote it",
        )

    def test_number_where_text_is_meant_says_quote_it(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited(("subdir: weekly-forecast", "subdir: 2025")),
            f"{JOB}.logs.subdir",
            "quote it",
        )

    def test_duplicate_command_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited(
                (
                    "          command: python -m forecast.summarise",
                    "          command: rm -rf /data\n"
                    "          command: python -m forecast.summarise",
                )
            ),
            f"{SUMMARY}.command",
            "given twice",
            "duplicate",
        )

    def test_duplicate_jobs_setting_is_refused(self, capsys, tmp_path) -> None:
        text = edited(
            ("  batchtasks:dashboardToken:", "  batchtasks:jobs: []\n  batchtasks:dashboardToken:")
        )
        refused(capsys, tmp_path, text, "batchtasks:jobs", "given twice")

    def test_duplicate_matrix_axis_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((STATES, f"{STATES}\n            state: [ca]")),
            f"{SWEEP}.matrix.state",
            "given twice",
        )

    def test_alias_bomb_is_refused_at_once(self, capsys, tmp_path) -> None:
        layers = ["x0: &x0 [a, a, a, a, a, a, a, a, a]"]
        layers += [f"x{n}: &x{n} [" + ", ".join([f"*x{n - 1}"] * 9) + "]" for n in range(1, 9)]
        bomb = "\n".join(f"  batchtasks:{layer}" for layer in layers)
        text = edited(("  batchtasks:dashboardToken:", f"{bomb}\n  batchtasks:dashboardToken:"))
        assert len(text) - len(DEV_TEXT) < 1000
        code, out, err = run(capsys, tmp_path, text)
        assert (code, out) == (Exit.INVALID, "")
        assert re.search(r"^  batchtasks:x[0-9]\S*: makes aliases expand", err, re.M), err

    def test_deep_block_nesting_is_refused(self, capsys, tmp_path) -> None:
        nesting = "".join(f"\n{'  ' * (depth + 2)}-" for depth in range(500))
        refused(
            capsys,
            tmp_path,
            edited(
                ("  batchtasks:jobs:\n", f"  batchtasks:jobs:{nesting}\n  batchtasks:unused:\n")
            ),
            "batchtasks:jobs",
            "nested more than",
        )

    def test_deep_flow_nesting_is_refused(self, capsys, tmp_path) -> None:
        flow = "[" * 500 + "]" * 500
        refused(
            capsys,
            tmp_path,
            edited(("  batchtasks:jobs:\n", f"  batchtasks:other: {flow}\n  batchtasks:jobs:\n")),
            "config",
            "more than",
        )

    def test_second_document_is_refused(self, capsys, tmp_path) -> None:
        refused(capsys, tmp_path, DEV_TEXT + "---\nconfig: {}\n", "config", "second YAML document")

    def test_key_that_is_not_text_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((SEED, f"{SEED}\n          1: one")),
            f"{DEFAULTS}.env",
            "not text",
            "quote it",
        )

    def test_unknown_tag_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((SEED, "MODEL_SEED: !!binary aGVsbG8=")),
            f"{DEFAULTS}.env.MODEL_SEED",
            "tag",
        )

    def test_merge_key_works_as_in_the_cli(self, capsys, tmp_path) -> None:
        text = edited(
            ("      defaults:\n", "      defaults: &defaults\n"),
            ("        - id: summary\n", "        - <<: *defaults\n          id: summary\n"),
        )
        document = accepted(capsys, tmp_path, text)
        assert "summary" in task_ids(document)

    def test_undecodable_bytes_are_refused(self, capsys, tmp_path) -> None:
        text = edited(("python -m forecast.summarise", "python -m forecast.\xff"))
        refused(
            capsys, tmp_path, text.encode("utf-8").replace(b"\xc3\xbf", b"\xff"), "config", "UTF-8"
        )

    def test_raw_escape_character_in_the_file_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited(("python -m forecast.summarise", "python -m \x1b[2Jforecast.summarise")),
            "config",
            "not valid YAML",
        )


# --- secure markers ------------------------------------------------------------------------


class TestSecureMarkers:
    TOKEN = ("    secure: v1:Zk9yZWNhc3QtZGV2:QmF0Y2hUYXNrcy1kdW1teS1jaXBoZXJ0ZXh0LW5vdC1yZWFs",)

    @pytest.mark.parametrize("value", ["42", '""', "null", "[]", "' '"])
    def test_secure_takes_only_a_non_empty_string(self, capsys, tmp_path, value) -> None:
        err = refused(
            capsys,
            tmp_path,
            edited((self.TOKEN[0], f"    secure: {value}")),
            "batchtasks:dashboardToken.secure",
            "must",
        )
        assert "v1:" not in err

    def test_secure_marker_with_other_keys_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((self.TOKEN[0], f"{self.TOKEN[0]}\n    plain: x")),
            "batchtasks:dashboardToken.secure",
            "only the key secure",
        )


# --- sweeps --------------------------------------------------------------------------------


def test_exclude_that_removes_every_combination_is_refused(capsys, tmp_path) -> None:
    text = edited(
        (
            "            - disease: rsv          # RSV data for Arizona is not reported"
            " yet\n              state: az\n",
            "            - state: ca\n",
        ),
        (STATES, "state: [ca]"),
        (
            "          include:\n            - disease: covid        # a national "
            "forecast alongside the states\n              state: us\n            - "
            "disease: flu\n              state: us\n",
            "",
        ),
    )
    refused(capsys, tmp_path, text, f"{SWEEP}.exclude", "every combination")


# --- what a reviewer reads -----------------------------------------------------------------


def _command_cells(markdown: str) -> list[str]:
    """The Command cell of every task row, split as a GitHub table splits cells."""
    cells = []
    for line in markdown.splitlines():
        if line.startswith("| `") and " | " in line:
            parts = re.split(r"(?<!\\)\|", line)
            if len(parts) == 7:
                cells.append(parts[3].strip())
    return cells


def _is_one_code_span(cell: str) -> bool:
    """Whether a cell is exactly one CommonMark code span (the fence never occurs inside)."""
    fence = re.match(r"`+", cell)
    if not fence or not cell.endswith(fence.group()):
        return False
    inner = cell[len(fence.group()) : -len(fence.group())]
    runs = re.findall(r"`+", inner)
    return all(len(run) != len(fence.group()) for run in runs)


class TestReview:
    SUMMARY_COMMAND = "command: python -m forecast.summarise --in /data/forecasts --out summary"

    def markdown(self, capsys, tmp_path, command_yaml: str) -> str:
        code, out, err = run(capsys, tmp_path, edited((self.SUMMARY_COMMAND, command_yaml)))
        assert (code, err) == (0, ""), err
        return out

    def test_backticks_cannot_close_the_code_span(self, capsys, tmp_path) -> None:
        out = self.markdown(
            capsys, tmp_path, "command: 'echo `` ` **approved** ![x](https://e.example/x.png) `'"
        )
        cells = _command_cells(out)
        assert len(cells) == 38
        assert all(_is_one_code_span(cell) for cell in cells)

    def test_pipes_cannot_add_table_cells(self, capsys, tmp_path) -> None:
        out = self.markdown(capsys, tmp_path, "command: 'a | b \\| c || d'")
        rows = [line for line in out.splitlines() if line.startswith("| `summary`")]
        assert len(re.split(r"(?<!\\)\|", rows[0])) == 7

    def test_line_breaks_cannot_reach_a_command(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((self.SUMMARY_COMMAND, 'command: "echo a\\n## Approved\\n| x |"')),
            f"{SUMMARY}.command",
            "control characters",
        )

    def test_bidi_override_is_shown_as_an_escape(self, capsys, tmp_path) -> None:
        out = self.markdown(capsys, tmp_path, 'command: "echo safe \\u202e sudo"')
        assert "\u202e" not in out
        assert "\\u202e" in out


# --- --against -------------------------------------------------------------------------------


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A git repository holding the example stack at stacks/Pulumi.dev.yaml, committed."""
    require_git()
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "Pulumi.dev.yaml").write_text(DEV_TEXT, encoding="utf-8")
    commit_all(tmp_path, "dev")
    return tmp_path


class TestAgainst:
    def against(self, capsys, stack: Path, reference: str) -> tuple[int, str, str]:
        code = main(["preview", "--config-file", str(stack), f"--against={reference}"])
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        return code, out, err

    def test_reference_cannot_be_an_option_that_writes_a_file(
        self, capsys, repository, monkeypatch
    ) -> None:
        monkeypatch.chdir(repository)
        stack = repository / "stacks" / "Pulumi.dev.yaml"
        code, out, _ = self.against(capsys, stack, f"--output={repository / 'written'}")
        assert (code, out) == (2, "")
        assert not (repository / "written").exists()
        assert not list(repository.glob("**/written*"))

    def test_reference_cannot_be_a_format_option(self, capsys, repository) -> None:
        code, out, err = self.against(
            capsys, repository / "stacks" / "Pulumi.dev.yaml", "--format=%H"
        )
        assert (code, out) == (2, "")
        assert "is not a file, nor a git revision" in err

    def test_reference_cannot_name_a_blob(self, capsys, repository) -> None:
        code, _, _ = self.against(
            capsys, repository / "stacks" / "Pulumi.dev.yaml", "HEAD:stacks/Pulumi.dev.yaml"
        )
        assert code == 2

    def test_a_real_revision_still_works(self, capsys, repository) -> None:
        code, out, err = self.against(capsys, repository / "stacks" / "Pulumi.dev.yaml", "HEAD")
        assert (code, err) == (0, "")
        assert "No changes." in out

    def test_stack_file_outside_the_repository_is_refused(
        self, capsys, repository, tmp_path_factory
    ) -> None:
        outside = tmp_path_factory.mktemp("outside") / "Pulumi.dev.yaml"
        outside.write_text(DEV_TEXT, encoding="utf-8")
        link = repository / "stacks" / "Pulumi.link.yaml"
        link.symlink_to(outside)
        code, out, err = self.against(capsys, link, "HEAD")
        assert (code, out) == (2, "")
        assert "outside the git repository" in err

    def test_stack_name_cannot_be_a_path(self, capsys, repository, monkeypatch) -> None:
        monkeypatch.chdir(repository)
        code = main(["preview", "--stack", "../stacks/Pulumi.dev"])
        out, err = capsys.readouterr()
        assert (code, out) == (2, "")
        assert "is not a stack name" in err


def test_the_installed_command_answers_an_alias_bomb_without_a_traceback(tmp_path) -> None:
    layers = ["x0: &x0 [a, a, a, a, a, a, a, a, a]"]
    layers += [f"x{n}: &x{n} [" + ", ".join([f"*x{n - 1}"] * 9) + "]" for n in range(1, 9)]
    path = tmp_path / "Pulumi.bomb.yaml"
    path.write_text("config:\n" + "\n".join(f"  batchtasks:{layer}" for layer in layers) + "\n")
    script = Path(sys.executable).with_name("batchtasks")
    completed = subprocess.run(
        [str(script), "preview", "--config-file", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == Exit.INVALID
    assert "aliases expand" in completed.stderr
    assert "Traceback" not in completed.stderr


# --- values Batch or the node would refuse, or run differently ----------------------------

RETRIES = "        retries: 2"
RUN_AT = "      defaults:\n        image: cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1\n"
IMAGE = "        image: cfaprdbatchcr.azurecr.io/forecast-model:2025.06.1"
TARGET = "            target: /data/nssp"
OUTPUT = "            - pattern: output/**/*"
SUMMARY_OUTPUT = "            - pattern: summary/*"
COMMAND = "          command: python -m forecast.summarise --in /data/forecasts --out summary"


class TestBatchLimits:
    def test_retries_beyond_int32_are_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((RETRIES, "        retries: 2147483648")),
            f"{DEFAULTS}.retries",
            "at most 2147483647",
        )

    def test_job_retry_count_beyond_int32_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited(
                (
                    "maxWallClockTime: PT12H",
                    "maxWallClockTime: PT12H\n        maxTaskRetryCount: 99999999999",
                )
            ),
            f"{JOB}.constraints.maxTaskRetryCount",
            "at most 2147483647",
        )

    def test_max_parallel_tasks_beyond_int32_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited(("maxParallelTasks: 40", "maxParallelTasks: 4294967296")),
            f"{JOB}.maxParallelTasks",
            "at most",
        )

    def test_priority_outside_batch_range_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited(("priority: 100", "priority: -1001")),
            f"{JOB}.priority",
            "between -1000 and 1000",
        )

    @pytest.mark.parametrize(
        "duration", ["P9999999999W", "P10675199DT2H48M5.4775808S", "PT" + "9" * 5000 + "S"]
    )
    def test_durations_longer_than_batch_holds_are_refused(
        self, capsys, tmp_path, duration
    ) -> None:
        refused(
            capsys,
            tmp_path,
            edited(("maxWallClockTime: PT2H", f"maxWallClockTime: {duration}")),
            f"{DEFAULTS}.maxWallClockTime",
            "longer than Batch can hold",
        )

    def test_longest_duration_batch_holds_is_accepted(self, capsys, tmp_path) -> None:
        document = accepted(
            capsys, tmp_path, edited(("retention: P7D", "retention: P10675199DT2H48M5.4775807S"))
        )
        assert task_ids(document)

    def test_a_task_body_over_the_request_limit_is_refused(self, capsys, tmp_path) -> None:
        long_value = "x" * 1_100_000
        refused(
            capsys,
            tmp_path,
            edited((SEED, f"{SEED}\n          BLOB: {long_value}")),
            JOB,
            "task body",
            "1 MB",
        )

    def test_a_single_task_over_the_request_limit_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((COMMAND, f"          command: echo {'y' * 1_000_000}")),
            SUMMARY,
            "task body",
        )


class TestControlCharacters:
    @pytest.mark.parametrize("escape", ["\\0", "\\e[2J", "\\r", "\\x7f", "\\x85"])
    def test_in_a_command(self, capsys, tmp_path, escape) -> None:
        refused(
            capsys,
            tmp_path,
            edited((COMMAND, f'          command: "echo {escape}x"')),
            f"{SUMMARY}.command",
            "control characters",
        )

    def test_in_an_env_value(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((SEED, 'MODEL_SEED: "20250601\\0"')),
            f"{DEFAULTS}.env.MODEL_SEED",
            "control characters",
        )

    def test_in_an_axis_value(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((STATES, 'state: [ca, ny, az, "t\\tx"]')),
            f"{SWEEP}.matrix.state[3]",
            "control characters",
        )

    def test_in_a_mount_target(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((TARGET, '            target: "/data/nssp\\0"')),
            f"{DEFAULTS}.mounts[0].target",
            "control characters",
        )

    def test_in_an_output_path(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited(("              path: summary", '              path: "summary\\e"')),
            f"{SUMMARY}.outputs[0].path",
            "control characters",
        )

    def test_in_an_image(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((IMAGE, '        image: "cfaprdbatchcr.azurecr.io/forecast-model:1\\0"')),
            f"{DEFAULTS}.image",
            "control characters",
        )


class TestMountsAndOutputs:
    @pytest.mark.parametrize("target", ["/", "//", "/./", "/data/.."])
    def test_mount_target_cannot_be_the_root(self, capsys, tmp_path, target) -> None:
        refused(
            capsys,
            tmp_path,
            edited((TARGET, f"            target: {target}")),
            f"{DEFAULTS}.mounts[0].target",
        )

    @pytest.mark.parametrize(
        "target",
        ["//data/population", "/data/population/", "/data/./population", "/data//population"],
    )
    def test_targets_equal_once_normalised_are_refused(self, capsys, tmp_path, target) -> None:
        refused(
            capsys,
            tmp_path,
            edited(
                (TARGET, f"            target: {target}"),
                ("            target: /data/population", "            target: /data/population"),
            ),
            f"{DEFAULTS}.mounts[1].target",
            "repeats the target of mounts[0]",
        )

    @pytest.mark.parametrize(
        "pattern",
        [
            "/etc/shadow",
            "../../var/lib/waagent/*",
            "out/../../../x",
            "~/x",
            "$AZ_BATCH_NODE_ROOT_DIR/x",
            "out\\\\x",
        ],
    )
    def test_output_patterns_stay_in_the_task_directory(self, capsys, tmp_path, pattern) -> None:
        refused(
            capsys,
            tmp_path,
            edited((SUMMARY_OUTPUT, f"            - pattern: '{pattern}'")),
            f"{SUMMARY}.outputs[0].pattern",
        )

    def test_sweep_output_pattern_takes_axis_placeholders(self, capsys, tmp_path) -> None:
        document = accepted(
            capsys, tmp_path, edited((OUTPUT, "            - pattern: 'output/{state}/*'"))
        )
        task = next(t for t in document["tasks"]["weekly-forecast"] if t["id"] == "flu-ny")
        assert task["outputFiles"][0]["filePattern"] == "output/ny/*"

    def test_sweep_output_pattern_that_climbs_out_is_refused(self, capsys, tmp_path) -> None:
        refused(
            capsys,
            tmp_path,
            edited((OUTPUT, "            - pattern: '{state}/../../../x'")),
            f"{SWEEP}.outputs[0].pattern",
            "climb out",
        )


class TestRunOptions:
    @pytest.mark.parametrize(
        "options",
        [
            "--cgroupns=host",
            "--env-file=/etc/environment",
            "--user=0",
            "--group-add=0",
            "-p 8080:80",
            "--publish=80",
            "--entrypoint=sh",
            "--network=host",
            "--net=host",
            "--privileged",
            "-itv",
            "--log-driver=syslog",
            "--sysctl=net.ipv4.ip_forward=1",
            "--runtime=runc",
            "--rm --security-opt=seccomp=unconfined",
        ],
    )
    def test_options_outside_the_allow_list_are_refused(self, capsys, tmp_path, options) -> None:
        err = refused(
            capsys,
            tmp_path,
            edited((COMMAND, f"{COMMAND}\n          runOptions: '{options}'")),
            f"{SUMMARY}.runOptions",
        )
        assert "--shm-size" in err  # the allow-list is named

    def test_allowed_options_pass_and_come_first(self, capsys, tmp_path) -> None:
        document = accepted(
            capsys,
            tmp_path,
            edited(
                (COMMAND, f"{COMMAND}\n          runOptions: --init --shm-size=2g --network none")
            ),
        )
        task = next(t for t in document["tasks"]["weekly-forecast"] if t["id"] == "summary")
        assert task["containerSettings"]["containerRunOptions"].startswith(
            "--init --shm-size=2g --network none --mount"
        )

    def test_image_cannot_be_an_option(self, capsys, tmp_path) -> None:
        refused(
            capsys, tmp_path, edited((IMAGE, "        image: --privileged")), f"{DEFAULTS}.image"
        )
