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
        output_mb, and preview_json_bytes_per_task: the JSON size of the task set's inputs as
        the preview shows them, divided by N.

    Raises
    ------
    RuntimeError
        If the preview fails; the message carries its stderr.
    """
    command = [sys.executable, "-c", _WRAPPER, "preview", "--config-file", str(stack_file),
               "--format", "json"]
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
    if len(sets) != 1 or len(sets[0]["inputs"]["tasks"]) != n:
        raise RuntimeError(f"the preview of {n} tasks does not show one set of {n} tasks")
    # The set's inputs as the preview shows them: specs decoded for reading, no `__provider`.
    inputs = sets[0]["inputs"]
    return {"n": n, "wall_s": round(wall, 3), "in_process_s": round(facts["in_process_s"], 3),
            "peak_mb": round(facts["peak_kib"] / 1024, 1),
            "output_mb": round(len(done.stdout) / 1e6, 2),
            "preview_json_bytes_per_task": round(len(json.dumps(inputs)) / n, 1)}
