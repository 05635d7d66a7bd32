"""Where the time goes: cProfile of the preview and of a task set's Check + Create.

The set is profiled in this process, doing what the provider host does for a Check and a Create
(decode the request's properties, call the provider, encode its answer), with one request in
flight at a time; the threads the provider starts are profiled too.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import pstats
import re
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from google.protobuf import struct_pb2
from pulumi.runtime import rpc

from bench.baseline import client_environment
from bench.double import DoubleProcess
from providerhost import PROVIDER_KEY, Registration, strip_secrets

TOP = 20
# concurrent.futures names its threads so; the providers run their bulk requests there.
WORKER_THREAD_PREFIX = "ThreadPoolExecutor"
# (label, end of the source path, function names): stages whose cumulative time the note
# reports. Where several names match, the largest counts (one may call another).
PREVIEW_STAGES = (
    ("reading and validating the stack file", "config/parse.py", ("load_stack_file",)),
    ("running the program under mocks", "preview/offline.py", ("run_offline",)),
    ("checking that every task's REST body can be built", "batch/template.py", ("check",)),
    ("rendering the JSON", "preview/render.py", ("render_json",)),
)
SET_STAGES = (
    ("decoding request properties (pulumi rpc)", "runtime/rpc.py", ("deserialize_properties",)),
    ("encoding answers (pulumi rpc)", "bench/profiles.py", ("encode_properties",)),
    ("the provider's check", "batch/tasks.py", ("check",)),
    (
        "building task bodies with the seed's builders",
        "batch/spec.py",
        ("build_task_body", "build"),
    ),
    ("adding them in collections (which consumes the body building)", "batch/client.py", ("add",)),
    (
        "of which the SDK's create_task_collection (serialise, HTTPS, parse)",
        "azure/batch/_operations/_operations.py",
        ("create_task_collection",),
    ),
)
Stages = tuple[tuple[str, str, tuple[str, ...]], ...]


def top_functions(stats: pstats.Stats, limit: int = TOP) -> list[dict[str, Any]]:
    """Return the functions with the largest cumulative time.

    Parameters
    ----------
    stats
        A finished profile's statistics.
    limit
        How many to return.

    Returns
    -------
    list[dict]
        function ("file:line(name)", the path shortened to its package), calls, own seconds,
        cumulative seconds; largest cumulative first.
    """
    rows = []
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({name})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
            }
        )
    rows.sort(key=lambda row: row["cumulative_s"], reverse=True)
    return rows[:limit]


def _short(filename: str) -> str:
    """Shorten a source path to what follows site-packages or the project root."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    stdlib = re.search(r"/lib/python3\.\d+/(.*)$", filename)
    if stdlib:
        return stdlib.group(1)
    parts = Path(filename).parts
    for anchor in ("components", "bench", "tests"):
        if anchor in parts:
            return "/".join(parts[parts.index(anchor) :])
    return filename


def stage_seconds(stats: pstats.Stats, stages: Stages) -> dict[str, float]:
    """Return the cumulative seconds of named stages (label -> seconds; 0 when not called).

    Parameters
    ----------
    stats
        A finished profile's statistics.
    stages
        (label, end of the source path, function names) triples.

    Returns
    -------
    dict[str, float]
        Label -> cumulative seconds of the largest matching function.
    """
    seconds = dict.fromkeys((label for label, _, _ in stages), 0.0)
    for (filename, _, name), (_, _, _, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        for label, suffix, functions in stages:
            if name in functions and filename.endswith(suffix):
                seconds[label] = max(seconds[label], cumulative)
    return {label: round(value, 3) for label, value in seconds.items()}


def profiled(
    function: Callable[[], Any], stages: Stages
) -> tuple[float, list[dict[str, Any]], dict[str, float]]:
    """Run a function under cProfile; return its wall seconds, top functions and stages.

    Worker threads (thread pools) are profiled too; the seconds of threads add up, so a stage
    that ran beside another can count more than the wall time."""
    thread_profiles: list[cProfile.Profile] = []

    def profile_thread(*_: Any) -> None:
        # Called on a new thread's first event: from then on a worker thread has its own
        # profile. Other threads (the Batch API double's) are not the measured code.
        if not threading.current_thread().name.startswith(WORKER_THREAD_PREFIX):
            sys.setprofile(None)
            return
        profile = cProfile.Profile()
        thread_profiles.append(profile)
        profile.enable()

    main = cProfile.Profile()
    start = time.perf_counter()
    threading.setprofile(profile_thread)
    main.enable()
    try:
        function()
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    wall = time.perf_counter() - start
    stats = pstats.Stats(main)
    for profile in thread_profiles:
        stats.add(profile)
    return wall, top_functions(stats), stage_seconds(stats, stages)


def profile_preview(stack_file: Path) -> dict[str, Any]:
    """Profile `batchtasks preview --config-file <stack_file> --format json` in this process.

    Returns
    -------
    dict
        wall_s, seconds per stage, and the top functions by cumulative time.
    """
    from batchtasks.cli import main

    def run() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["preview", "--config-file", str(stack_file), "--format", "json"])
        if code != 0:
            raise RuntimeError(f"batchtasks preview exited with {code}")

    wall, top, stages = profiled(run, PREVIEW_STAGES)
    return {"wall_s": round(wall, 3), "stages": stages, "top": top}


def encode_properties(props: dict[str, Any]) -> struct_pb2.Struct:
    """Encode properties as the provider host encodes its answers (a protobuf Struct)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def profile_set_create(
    api: DoubleProcess, reg: Registration, job_id: str, pool_id: str
) -> dict[str, Any]:
    """Profile a task set's Check and Create as the provider host runs them, in this process.

    Parameters
    ----------
    api
        A started Batch API double; it is emptied and given the job first.
    reg
        The program's BatchTaskSet registration.
    job_id, pool_id
        The job the set's tasks go to, and its pool.

    Returns
    -------
    dict
        wall_s, requests, seconds per stage, and the top functions by cumulative time.
    """
    from batchtasks.batch.tasks import BatchTaskSetProvider

    api.reset()
    api.add_job(job_id, pool_id)
    provider = BatchTaskSetProvider()
    # One request in flight at a time, so the profile reads as one sequence of work.
    request = encode_properties({**strip_secrets(reg.inputs), "retryPolicy": {"concurrency": 1}})

    def check_and_create() -> None:
        # What pulumi.dynamic's Check and Create handlers do around the provider's methods.
        news = rpc.deserialize_properties(request, True)
        result = provider.check({}, news)
        if result.failures:
            raise RuntimeError(f"check failed: {result.failures[:5]}")
        checked = encode_properties({**result.inputs, PROVIDER_KEY: news[PROVIDER_KEY]})
        props = rpc.deserialize_properties(checked)
        created = provider.create(props)
        encode_properties({**(created.outs or {}), PROVIDER_KEY: props[PROVIDER_KEY]})

    with client_environment(api.client_env()):
        wall, top, stages = profiled(check_and_create, SET_STAGES)
    return {
        "wall_s": round(wall, 3),
        "requests": api.total_requests(),
        "concurrency": 1,
        "stages": stages,
        "top": top,
    }
