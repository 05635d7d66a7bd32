"""Dynamic providers that register Batch jobs and container tasks as Pulumi resources."""
