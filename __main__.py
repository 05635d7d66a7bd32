"""Pulumi entry point: the stack config declares storage, identity, pool, jobs and tasks."""

from batchtasks.program import run

run()
