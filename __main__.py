"""Pulumi entry point: the stack config declares storage, identity, pool, jobs and tasks."""

from components.program import run

run()
