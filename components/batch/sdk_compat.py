"""Every use of azure-batch internals, in one place.

The SDK's public API has no way to send a body as exact bytes (its `create_task_collection`
builds a model object per task and serialises it again) and no way to delete a job without
starting a poller (`begin_delete_job` keeps a thread reading the job for as long as the service
keeps it deleting). What this package needs beyond that API is reached only through this module,
so a new SDK release (pyproject bounds it to 15.x) is checked here and in
`tests/test_sdk_compat.py`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence

from azure.batch import BatchClient
from azure.batch._operations._operations import (
    build_batch_create_task_collection_request as _build_task_collection_request,
)
from azure.batch._operations._operations import (
    build_batch_list_tasks_request as _build_list_tasks_request,
)
from azure.core.rest import HttpRequest


def api_version(client: BatchClient) -> str:
    """Return the REST api-version the client sends (its own default unless it was given one).

    Parameters
    ----------
    client
        A Batch client.

    Returns
    -------
    str
        The version, as in `?api-version=2025-06-01`.
    """
    version: str = client._config.api_version
    return version


def task_collection_request(
    client: BatchClient, job_id: str, content_type: str, payload: bytes
) -> HttpRequest:
    """Build the add-collection request the SDK's `create_task_collection` sends, with `payload`
    as its body, byte for byte; send it with `client.send_request`.

    Parameters
    ----------
    client
        The Batch client whose api-version the request carries.
    job_id
        The job to add the tasks to (quoted into the path by the SDK).
    content_type
        The body's content type.
    payload
        The exact bytes of the body.

    Returns
    -------
    HttpRequest
        POST `/jobs/{job_id}/addtaskcollection?api-version=...`, relative to the endpoint.
    """
    return _build_task_collection_request(
        job_id=job_id,
        content_type=content_type,
        api_version=api_version(client),
        content=payload,
    )


def list_tasks_request(
    client: BatchClient,
    job_id: str,
    *,
    filter: str | None = None,
    select: Sequence[str] | None = None,
) -> HttpRequest:
    """Build the first request of the SDK's `list_tasks`; send it with `client.send_request`
    and read the answer as JSON (see `next_page_request` for the pages after it).

    Parameters
    ----------
    client
        The Batch client whose api-version the request carries.
    job_id
        The job whose tasks are listed.
    filter, select
        The `$filter` and `$select` values, as `list_tasks` takes them.

    Returns
    -------
    HttpRequest
        GET `/jobs/{job_id}/tasks?api-version=...`, relative to the endpoint.
    """
    return _build_list_tasks_request(
        job_id=job_id,
        filter=filter,
        select=list(select) if select else None,
        api_version=api_version(client),
    )


def next_page_request(client: BatchClient, next_link: str) -> HttpRequest:
    """Build the request for a list's next page from the `odata.nextLink` of the one before,
    as the SDK's pager does (the link's own query, with the client's api-version).

    Parameters
    ----------
    client
        The Batch client.
    next_link
        The absolute URL the service answered with.

    Returns
    -------
    HttpRequest
        GET of the next page.
    """
    parsed = urllib.parse.urlparse(next_link)
    params = {
        key: [urllib.parse.quote(value) for value in values]
        for key, values in urllib.parse.parse_qs(parsed.query).items()
    }
    params["api-version"] = [api_version(client)]
    return HttpRequest("GET", urllib.parse.urljoin(next_link, parsed.path), params=params)


def delete_job(client: BatchClient, job_id: str) -> None:
    """Send the job's DELETE once and return when the service accepts it (202), without the
    poller `begin_delete_job` starts.

    Parameters
    ----------
    client
        The Batch client.
    job_id
        The job to delete.

    Raises
    ------
    HttpResponseError
        As the SDK raises it (ResourceNotFoundError for 404, ResourceExistsError for 409).
    """
    client._delete_job_internal(job_id)
