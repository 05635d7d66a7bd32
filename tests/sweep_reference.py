"""The sweep expansion as it was before sweeps had template specs: the reference the loader's
template rendering is held to (tests/test_sweep_template.py).

`reference_sweep` is the loader's former `_sweep`, kept verbatim but for its name and result
type; it runs inside the loader in place of the current one, so both see the same merged fields,
the same job checks and the same problems.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchtasks import fields, rules
from batchtasks.config.parse import (
    _SPEC_ORDER,
    INVALID,
    _check_fields,
    _check_merged,
    _Fields,
    _Job,
    _output,
    _Stack,
)
from batchtasks.config.shape import get, item
from batchtasks.config.sweep import Template, compile_template, describe, expand_matrix, scalar_text


@dataclass(frozen=True)
class ReferenceSweep:
    """A sweep as the former loader gave it: its id and every task's spec."""

    id: str
    tasks: tuple[dict[str, Any], ...]


def reference_spec(
    task_id: str, merged: _Fields, logs: dict[str, str] | None, rendered: Mapping[str, Any]
) -> dict[str, Any]:
    """Assemble a TaskSpec: camelCase, defaults merged, empty values left out."""
    out: dict[str, Any] = {"id": task_id}
    for key in _SPEC_ORDER:
        value = rendered[key] if key in rendered else merged.values.get(key)
        if key == "env":
            value = rendered.get("env") or {
                name: scalar_text(text) for name, (text, _) in merged.env.items()
            }
        elif key == "mounts" and value:
            value = [
                {"source": mount["source"], "target": mount["target"]}
                for mount in value
                if mount is not INVALID
            ]
        elif key == "outputs" and value and "outputs" not in rendered:
            value = [
                _output(output, output.get("path")) for output in value if output is not INVALID
            ]
        elif isinstance(value, dict | list) and key not in rendered:
            # Defaults are shared by every task; each spec gets its own copy.
            value = copy.copy(value)
        if value is None or value == "" or value == [] or value == {}:
            continue
        if fields.OMITTED.get(key) == value:
            continue
        out[key] = value
    if logs:
        out["logs"] = dict(logs)
    return out


def reference_sweep(
    sweep: dict[str, Any],
    defaults: Any,
    path: str,
    defaults_path: str,
    logs: dict[str, str] | None,
    job: _Job,
    stack: _Stack,
) -> Any:
    problems = stack.problems
    _check_fields(sweep, path, stack)
    merged = _Fields()
    if isinstance(defaults, dict):
        merged.take(defaults, defaults_path)
    merged.take(
        {
            key: value
            for key, value in sweep.items()
            if key not in ("taskId", "matrix", "include", "exclude")
        },
        path,
    )
    _check_merged(merged, path, stack)
    job.note_on_failure(merged)
    matrix = get(sweep, "matrix")
    if not isinstance(matrix, dict):
        job.incomplete = True
        return None
    axes = {axis: number for number, axis in enumerate(matrix)}
    combos = expand_matrix(
        matrix, get(sweep, "include", []), get(sweep, "exclude", []), path, problems
    )

    def compiled(text: Any, text_path: str) -> Template | None:
        if not isinstance(text, str):
            return Template((scalar_text(text),))
        return compile_template(text, axes, text_path, problems)

    id_text = get(sweep, "taskId")
    task_id = compiled(id_text, f"{path}.taskId") if id_text is not None else None
    command = (
        compiled(merged.get("command"), merged.paths["command"])
        if "command" in merged.values
        else None
    )
    env = {
        name: (compiled(text, text_path), text_path)
        for name, (text, text_path) in merged.env.items()
    }
    outputs_path = merged.paths.get("outputs", "")
    outputs = [
        (
            index,
            output,
            compiled(output["pattern"], f"{item(outputs_path, index)}.pattern")
            if get(output, "pattern") is not None
            else None,
            compiled(output["path"], f"{item(outputs_path, index)}.path")
            if get(output, "path") is not None
            else None,
        )
        for index, output in enumerate(merged.get("outputs") or [])
        if output is not INVALID
    ]
    depends_path = merged.paths.get("dependsOn", f"{path}.dependsOn")
    depends = [
        compiled(dep, item(depends_path, index))
        for index, dep in enumerate(merged.get("dependsOn") or [])
        if dep is not INVALID
    ]
    if combos is None or task_id is None:
        job.incomplete = True
        return None
    axis_names = list(matrix)
    id_path = f"{path}.taskId"
    specs = []
    for combo in combos:
        texts = tuple(scalar_text(value) for value in combo)
        described = describe(axis_names, combo)
        where = f" (made from {described})"
        produced = task_id.render(texts)
        if rules.BATCH_ID.problem(produced):
            job.incomplete = True
            problems.add(
                id_path,
                f"makes an invalid task id: {rules.BATCH_ID.problem(produced)}{where}",
                produced,
                cap_key=id_path,
            )
            continue
        rendered: dict[str, Any] = {}
        if command is not None and not command.constant:
            rendered["command"] = command.render(texts)
            if not rendered["command"].strip():
                problems.add(
                    merged.paths["command"],
                    f"makes an empty command{where}",
                    rendered["command"],
                    cap_key=merged.paths["command"],
                )
        rendered["env"] = {
            name: template.render(texts)
            for name, (template, _) in env.items()
            if template is not None
        }
        if outputs:
            rendered["outputs"] = []
            for index, output, pattern_template, template in outputs:
                out_path = template.render(texts) if template is not None else None
                pattern = (
                    pattern_template.render(texts)
                    if pattern_template is not None
                    else get(output, "pattern")
                )
                for key, rule, text in (
                    ("path", rules.BLOB_PATH, out_path),
                    ("pattern", rules.OUTPUT_PATTERN, pattern),
                ):
                    problem = rule.problem(text) if text is not None else None
                    if problem:
                        where_path = f"{item(outputs_path, index)}.{key}"
                        problems.add(
                            where_path,
                            f"makes a bad {key}: {problem}{where}",
                            text,
                            cap_key=where_path,
                        )
                rendered["outputs"].append(_output({**output, "pattern": pattern}, out_path))
        produced_depends = [template.render(texts) for template in depends if template is not None]
        if produced_depends:
            rendered["dependsOn"] = produced_depends
        job.add(
            produced,
            f"{path} ({described})",
            where,
            id_path,
            produced_depends,
            depends_path,
            cap_key=id_path,
        )
        specs.append((produced, rendered))
    sweep_id = get(sweep, "id")
    if problems or sweep_id is None:
        return None
    built = tuple(reference_spec(produced, merged, logs, rendered) for produced, rendered in specs)
    for spec in built:
        if problem := rules.task_body_problem(spec):
            problems.add(path, f"{problem} (task {spec['id']!r})", cap_key=f"{path} body")
    return None if problems else ReferenceSweep(sweep_id, built)
