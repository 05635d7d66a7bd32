"""Day two: `batchtasks status`, `logs` and `rerun`, read from the same stack file as `pulumi up`.

`declared` summarises the stack file (endpoint, jobs, declared task ids); `reads` is the only
module that calls Batch and `sources` the only one that reads task files and blobs; `report`,
`render` and `edit` are pure; `views` draws progress; `status`, `logs` and `rerun` are the
commands and `commands` puts them on the command line.
"""
