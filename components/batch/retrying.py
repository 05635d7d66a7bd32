"""The base of the Batch dynamic providers: one retry policy, one clock.

Each provider builds its `RetryPolicy` here, from the resource's `retryPolicy` input and the
provider's clock, so every retry, poll and deadline of a provider reads the same clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi.dynamic import ResourceProvider

from batchtasks.batch.client import RetryPolicy
from batchtasks.clock import SYSTEM_CLOCK, Clock


class RetryingProvider(ResourceProvider):
    """A dynamic provider whose requests retry under the resource's `retryPolicy` input.

    Attributes
    ----------
    clock
        What the provider's waits read. A class attribute, so it is never part of the pickled
        provider in a stack's state; tests set a fake one on an instance.
    """

    clock: Clock = SYSTEM_CLOCK

    def policy(self, props: Mapping[str, Any]) -> RetryPolicy:
        """Return the retry policy for a resource's inputs, on this provider's clock.

        Parameters
        ----------
        props
            The resource's inputs (or outputs); `retryPolicy` is optional.

        Returns
        -------
        RetryPolicy
            The policy its requests retry under.
        """
        return RetryPolicy.from_inputs(props.get("retryPolicy"), self.clock)
