"""Day two: `batchtasks status`, `logs` and `rerun`, read from the same stack file as `pulumi up`.

Pure pieces (`declared`, `report`, `render`, `edit`) hold no I/O; `reads` is the only module that
calls Batch, `blobs` the only one that calls blob storage; `status`, `logs` and `rerun` are the
commands, `commands` wires them into the command line.
"""
