"""Run the benchmarks and write bench/results.md and bench/results.json.

    python -m bench.run [--sizes 100,1000,10000] [--latencies 0.05,0] [--quick]
    python -m bench.run --render-only      # rewrite results.md from results.json

Run from the project root (`python3 dev.py bench` does). For each N it previews the N-task
stack in a fresh process, drives the providers through Pulumi's provider host against the Batch
API double at each latency, runs the per-task loop users run today against the same double, and
profiles the largest preview and set create. A full run takes about twenty minutes, most of it
the loop of 10,000 single requests at 50 ms; `--quick` measures the loop on its first 1,000
tasks and extrapolates.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

from batchtasks.batch.client import body_matches
from bench.baseline import measure_baseline
from bench.double import DoubleProcess
from bench.preview import measure_grouping, measure_preview
from bench.profiles import encode_properties, profile_preview, profile_set_create
from bench.provider import measure_provider, registrations, stored_bytes
from bench.report import evaluate_targets, growth, render_markdown
from bench.stacks import JOB_ID, POOL_ID, write_stack_file
from providerhost import strip_secrets

PROJECT_DIR = Path(__file__).resolve().parent.parent
BENCH_DIR = Path(__file__).resolve().parent
QUICK_BASELINE_LIMIT = 1_000
# The per-task loop at 50 ms takes about a minute per 1,000 tasks: it runs up to this size.
BASELINE_LIMIT = 10_000
# Grouping a change is measured up to this size (it previews two stacks in this process).
GROUPING_LIMIT = 100_000
# Profiles run the profiler over the whole step; past this size they only take long.
PROFILE_LIMIT = 10_000
DEFAULT_SIZES = [100, 1_000, 10_000, 100_000]
# Fields the service adds to a task, and the set's marker: not part of what was declared.
SERVICE_FIELDS = frozenset(
    {
        "url",
        "creationTime",
        "state",
        "stateTransitionTime",
        "executionInfo",
        "eTag",
        "lastModified",
        "displayName",
        "requiredSlots",
    }
)


def _numbers(text: str, kind: type) -> list[Any]:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list") from None
    if not values or any(value < 0 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r} must list non-negative numbers")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        type=lambda text: _numbers(text, int),
        default=DEFAULT_SIZES,
        help="task counts (default 100,1000,10000,100000; add 1000000 for the "
        "sharded sweep, which takes several minutes more)",
    )
    parser.add_argument(
        "--latencies",
        type=lambda text: _numbers(text, float),
        default=[0.05, 0.0],
        help="seconds per request (default 0.05,0)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"measure the per-task loop on at most {QUICK_BASELINE_LIMIT:,} tasks and extrapolate",
    )
    parser.add_argument(
        "--provider-limit",
        type=int,
        default=None,
        metavar="N",
        help="sizes above N get the preview only (default: every size gets every step)",
    )
    parser.add_argument("--no-profile", action="store_true", help="skip the profiles")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=BENCH_DIR,
        help="where results.md and results.json go (default bench/)",
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="measure nothing: rewrite results.md from results.json",
    )
    args = parser.parse_args(argv)
    if any(n < 1 for n in args.sizes):
        parser.error("--sizes must be at least 1")
    return args


def log(message: str) -> None:
    """Print a progress line to stderr at once."""
    print(message, file=sys.stderr, flush=True)


def source_state() -> tuple[str, str]:
    """Return the checked-out revision (noting local changes) and a fingerprint of the tree's
    tracked files, so a run can tell whether the code changed while it ran."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD"], cwd=PROJECT_DIR, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", ""
    fingerprint = hashlib.sha256(revision.encode() + diff).hexdigest()
    return revision + (" with local changes" if diff else ""), fingerprint


def load_average() -> list[float]:
    """Return the machine's 1, 5 and 15 minute load averages (what `uptime` shows)."""
    return [round(value, 2) for value in os.getloadavg()]


def machine_facts() -> dict[str, Any]:
    """Return what the figures depend on: CPUs, load, Python, packages, date and revision."""
    revision, fingerprint = source_state()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_at_start": load_average(),
        "platform": platform.platform(terse=True),
        "python": platform.python_version(),
        "pulumi": metadata.version("pulumi"),
        "azure_batch": metadata.version("azure-batch"),
        "revision": revision,
        "source_fingerprint": fingerprint,
    }


def declared_part(body: dict[str, Any]) -> dict[str, Any]:
    """Return a task body as the service holds it, without the service's own fields."""
    return {key: value for key, value in body.items() if key not in SERVICE_FIELDS}


def engine_codec_seconds(inputs: dict[str, Any]) -> float:
    """Seconds Python takes to encode a resource's properties for gRPC and decode them back."""
    from pulumi.runtime import rpc

    start = time.perf_counter()
    rpc.deserialize_properties(encode_properties(strip_secrets(inputs)), True)
    return time.perf_counter() - start


def profile_notes(profiles: dict[str, Any]) -> list[str]:
    """Summarise the profiles' stages as Markdown bullets."""
    lines = []
    for key, what in (
        ("preview", "`batchtasks preview`"),
        ("set_create", "the set's Check + Create (one request in flight, 0 ms latency)"),
    ):
        profile = profiles.get(key)
        if not profile:
            continue
        total = profile["wall_s"]
        parts = "; ".join(
            f"{label} {seconds:.1f} s ({seconds / total:.0%})"
            for label, seconds in profile["stages"].items()
        )
        lines.append(
            f"- {what} of {profile['n']:,} tasks, {total:.1f} s under the profiler: {parts}."
        )
    lines.append(
        "- Cumulative times overlap (a stage can contain another, and threads that "
        "run side by side add up); the profiler slows everything down, so read the "
        "shares, not the seconds."
    )
    return lines


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Collect every figure.

    Parameters
    ----------
    args
        The parsed command line.

    Returns
    -------
    dict
        Everything results.json holds.
    """
    sizes = sorted(set(args.sizes))
    latencies = sorted(set(args.latencies), reverse=True)
    limit = QUICK_BASELINE_LIMIT if args.quick else None
    results: dict[str, Any] = {
        "machine": machine_facts(),
        "settings": {
            "sizes": sizes,
            "latencies_s": latencies,
            "quick": args.quick,
            "provider_limit": args.provider_limit,
            "baseline_limit": limit if limit is not None and max(sizes) > limit else None,
        },
        "preview": [],
        "grouping": [],
        "provider": [],
        "baseline": [],
        "engine_codec": [],
        "profiles": {},
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="batchtasks-bench-") as workdir:
        stack_files = {n: write_stack_file(Path(workdir), n) for n in sizes}
        for n in sizes:
            log(f"preview, {n:,} tasks")
            results["preview"].append(measure_preview(stack_files[n], n, PROJECT_DIR))
            log(f"  {results['preview'][-1]['wall_s']} s, {results['preview'][-1]['peak_mb']} MB")
        for n in (n for n in sizes if n <= GROUPING_LIMIT):
            log(f"grouping a change of {n:,} tasks against one row per task")
            results["grouping"].append(measure_grouping(Path(workdir), n))
        with DoubleProcess() as api:
            for n in (n for n in sizes if args.provider_limit is None or n <= args.provider_limit):
                log(f"registering the {n:,}-task stack under mocks")
                regs = registrations(n, api.endpoint)
                stored = stored_bytes(regs, n)
                preview = next(row for row in results["preview"] if row["n"] == n)
                # What Pulumi stores is what the program registers (the preview's JSON shows
                # the specs decoded for reading and leaves out `__provider`).
                preview.update({key: round(value, 1) for key, value in stored.items()})
                codec = sum(engine_codec_seconds(reg.inputs) for reg in regs.sets)
                results["engine_codec"].append({"n": n, "seconds": round(codec, 3)})
                identity = regs.sets[0].inputs["identityResourceId"]
                for latency in latencies:
                    log(f"provider, {n:,} tasks, {latency * 1000:g} ms")
                    row = measure_provider(api, regs, n, latency, PROJECT_DIR, log)
                    set_body = row.pop("first_task")
                    results["provider"].append(row)
                    if n > BASELINE_LIMIT:
                        continue
                    log(
                        f"loop of create_task, {n:,} tasks, {latency * 1000:g} ms"
                        + (f" (first {limit:,})" if limit is not None and n > limit else "")
                    )
                    baseline = measure_baseline(api, n, latency, identity, limit)
                    loop_body = baseline.pop("first_task")
                    baseline["same_task_body"] = body_matches(
                        declared_part(set_body), declared_part(loop_body)
                    ) and body_matches(declared_part(loop_body), declared_part(set_body))
                    results["baseline"].append(baseline)
                    log(
                        f"  {baseline['wall_s']} s"
                        + (" (extrapolated)" if baseline["extrapolated"] else "")
                    )
            if not args.no_profile:
                largest = (
                    max(n for n in sizes if n <= PROFILE_LIMIT)
                    if min(sizes) <= PROFILE_LIMIT
                    else min(sizes)
                )
                log(f"profiling the {largest:,}-task preview and set create")
                profile = profile_preview(stack_files[largest])
                results["profiles"]["preview"] = {"n": largest, **profile}
                regs = registrations(largest, api.endpoint)
                profile = profile_set_create(api, regs.sets[0], JOB_ID, POOL_ID)
                results["profiles"]["set_create"] = {"n": largest, **profile}
    # Figures from a tree that changed under the run would mix two versions; say so.
    revision, fingerprint = source_state()
    if fingerprint != results["machine"]["source_fingerprint"]:
        results["machine"]["revision"] += f", changed during the run (now {revision})"
    results["growth"] = growth(results)
    results["targets"] = evaluate_targets(results)
    results["profile_notes"] = profile_notes(results["profiles"])
    results["settings"]["duration_s"] = round(time.perf_counter() - started, 1)
    results["machine"]["load_at_end"] = load_average()
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and write the results.

    Parameters
    ----------
    argv
        Command-line arguments; None for the process's own.

    Returns
    -------
    int
        0 (the benchmarks never fail on slow figures; a broken step raises).
    """
    args = parse_args(argv)
    json_path, markdown_path = args.output_dir / "results.json", args.output_dir / "results.md"
    if args.render_only:
        results = json.loads(json_path.read_text(encoding="utf-8"))
        # The targets follow the report's current definitions.
        results["targets"] = evaluate_targets(results)
        markdown_path.write_text(render_markdown(results), encoding="utf-8")
        log(f"wrote {markdown_path} from {json_path.name}")
        return 0
    results = run(args)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    markdown_path.write_text(render_markdown(results), encoding="utf-8")
    log(f"wrote {markdown_path} and {json_path.name} in {results['settings']['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
