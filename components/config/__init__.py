"""The stack file's schema and validator.

`load_stack_file` reads ``stacks/Pulumi.<stack>.yaml``; `parse_stack_config` validates the
``batchtasks:`` settings however they were read; both raise one `ConfigError` listing every
problem, each with its key path. `json_schema` publishes the same rules for editors.
"""

from batchtasks.config.model import (
    BatchConfig,
    ConfigError,
    ConfigProblem,
    ContainerConfig,
    IdentityConfig,
    JobConfig,
    PoolConfig,
    RegistryConfig,
    StackConfig,
    StorageConfig,
    SweepConfig,
)
from batchtasks.config.parse import load_stack_file, load_stack_text, parse_stack_config
from batchtasks.config.schema import json_schema
from batchtasks.rules import parse_duration

__all__ = [
    "BatchConfig",
    "ConfigError",
    "ConfigProblem",
    "ContainerConfig",
    "IdentityConfig",
    "JobConfig",
    "PoolConfig",
    "RegistryConfig",
    "StackConfig",
    "StorageConfig",
    "SweepConfig",
    "json_schema",
    "load_stack_file",
    "load_stack_text",
    "parse_duration",
    "parse_stack_config",
]
