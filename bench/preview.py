"""`batchtasks preview` of the N-task stack, in a fresh process: wall time and peak memory.

A tiny wrapper runs `batchtasks.cli.main` in a new interpreter and reports the process's own
peak resident set size, VmHWM from /proc/self/status (`ru_maxrss` would carry over the peak of
the process that started it), so each figure is that of one preview alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.stacks import write_stack_file

# Runs in the child: the preview, then its own peak RSS (VmHWM, in kB) and in-process seconds
# on stderr's last line.
_WRAPPER = """\
import json, sys, time
start = time.perf_counter()
from batchtasks.cli import main
code = main(sys.argv[1:])
seconds = time.perf_counter() - start
sys.stdout.flush()
with open("/proc/self/status", encoding="ascii") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
sys.stderr.write("\\n" + json.dumps({"code": code, "in_process_s": seconds, "peak_kib": peak}))
"""

TYPE_TASK_SET = "pulumi-python:dynamic/batch:TaskSet"


def measure_preview(stack_file: Path, n: int, project_dir: Path) -> dict[str, Any]:
    """Run `batchtasks preview --config-file <stack_file> --format json` in a new process.

    Parameters
    ----------
    stack_file
        The N-task stack file.
    n
        Number of tasks it declares.
    project_dir
        The project root (the child imports `batchtasks` from there).

    Returns
    -------
    dict
        n, wall_s (the whole process, interpreter start included), in_process_s, peak_mb,
        output_mb, sets (the task set resources, one per shard), and
        preview_json_bytes_per_task: the JSON size of the sets' inputs as the preview shows
        them, divided by N.

    Raises
    ------
    RuntimeError
        If the preview fails; the message carries its stderr.
    """
    command = [
        sys.executable,
        "-c",
        _WRAPPER,
        "preview",
        "--config-file",
        str(stack_file),
        "--format",
        "json",
    ]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=project_dir, capture_output=True, check=False)
    wall = time.perf_counter() - start
    stderr = done.stderr.decode(errors="replace")
    last = stderr.rstrip().rsplit("\n", 1)[-1]
    try:
        facts = json.loads(last)
    except ValueError:
        facts = {"code": done.returncode}
    if done.returncode != 0 or facts.get("code") != 0:
        raise RuntimeError(f"batchtasks preview failed for {n} tasks:\n{stderr}")
    document = json.loads(done.stdout)
    sets = [r for r in document["resources"] if r["type"] == TYPE_TASK_SET]
    if sum(len(found["inputs"]["tasks"]) for found in sets) != n:
        raise RuntimeError(f"the preview of {n} tasks does not show sets of {n} tasks in all")
    # The sets' inputs as the preview shows them: specs decoded for reading, no `__provider`.
    shown = sum(len(json.dumps(found["inputs"])) for found in sets)
    return {
        "n": n,
        "wall_s": round(wall, 3),
        "in_process_s": round(facts["in_process_s"], 3),
        "peak_mb": round(facts["peak_kib"] / 1024, 1),
        "output_mb": round(len(done.stdout) / 1e6, 2),
        "sets": len(sets),
        "preview_json_bytes_per_task": round(shown / n, 1),
    }


def _rows_reference(changes: Any) -> list[str]:
    """The change list as it was before grouping, one table row per changed task: the cost
    that grouping must not exceed."""
    from batchtasks.preview.render import code

    lines = []
    for job in changes.jobs:
        plan = job.tasks
        fields = plan.changed_fields or {}
        rows = [
            *([code(task_id), "added", ""] for task_id in plan.added),
            *([code(task_id), "removed", ""] for task_id in plan.removed),
            *(
                [code(task_id), "replaced", ", ".join(fields.get(task_id, ()))]
                for task_id in plan.replaced
            ),
            *(
                [code(task_id), "updated in place", ", ".join(fields.get(task_id, ()))]
                for task_id in plan.updated
            ),
        ]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def measure_grouping(directory: Path, n: int, repeats: int = 5) -> dict[str, Any]:
    """Time grouping the changes of an N-task sweep against rendering them one row per task.

    The change moves the image tag, edits every task's own command (`--draws 4000` -> 5000)
    and raises the retries: every task is replaced, all in one group.

    Parameters
    ----------
    directory
        Where to write the two stack files.
    n
        Number of tasks.
    repeats
        Each figure is the least CPU time of this many runs, taken in turns.

    Returns
    -------
    dict
        n, groups, and CPU seconds: plan_s (the providers' diff, the same either way), group_s
        (grouping with values), grouped_render_s (the grouped change list), rows_render_s (one
        row per task); and markdown_chars of each.
    """
    from batchtasks.batch.diff import plan_tasks
    from batchtasks.config import load_stack_file
    from batchtasks.preview import compare, preview_stack
    from batchtasks.preview.groups import group_tasks
    from batchtasks.preview.render import _change_lines
    from bench.stacks import COMMAND_TEMPLATE, IMAGE, stack_settings

    old_path = write_stack_file(directory, n)
    settings = stack_settings(n)
    job = settings["jobs"][0]
    job["defaults"].update(image=IMAGE.replace("2025.06.1", "2025.07.0"), retries=3)
    job["sweeps"][0]["command"] = COMMAND_TEMPLATE.replace("--draws 4000", "--draws 5000")
    new_path = directory / f"Pulumi.bench{n}-new.yaml"
    config: dict[str, Any] = {"azure-native:location": "eastus"}
    config.update({f"batchtasks:{key}": value for key, value in settings.items()})
    new_path.write_text(json.dumps({"config": config}), encoding="utf-8")
    old = preview_stack(load_stack_file(old_path), "bench", with_bodies=False, check_bodies=False)
    new = preview_stack(load_stack_file(new_path), "bench", with_bodies=False, check_bodies=False)
    changes = compare(old, new, "old")
    olds, news = old.jobs[0].task_inputs, new.jobs[0].task_inputs

    def best(*functions: Any) -> list[float]:
        # CPU seconds, the functions taking turns: on a shared machine wall time mostly
        # measures the other work, and turns give each function the same conditions.
        times: list[list[float]] = [[] for _ in functions]
        for _ in range(repeats):
            for function, taken in zip(functions, times, strict=True):
                start = time.process_time()
                function()
                taken.append(time.process_time() - start)
        return [round(min(taken), 4) for taken in times]

    plan = plan_tasks(olds, news)
    (plan_s,) = best(lambda: plan_tasks(olds, news))
    group_s, grouped_render_s, rows_render_s = best(
        lambda: group_tasks(plan, olds, news),
        lambda: _change_lines(changes),
        lambda: _rows_reference(changes),
    )
    return {
        "n": n,
        "groups": len(changes.jobs[0].groups),
        "plan_s": plan_s,
        "group_s": group_s,
        "grouped_render_s": grouped_render_s,
        "rows_render_s": rows_render_s,
        "grouped_markdown_chars": len("\n".join(_change_lines(changes))),
        "rows_markdown_chars": len("\n".join(_rows_reference(changes))),
    }
