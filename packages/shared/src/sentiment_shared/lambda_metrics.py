"""The handlers' metrics decorator: Powertools' ``log_metrics`` that honours POWERTOOLS_METRICS_DISABLED fully.

With metrics disabled (``sentiment-local``, the soak, tests), Powertools 3.x still prints the cold-start
blob (``single_metric`` prints unconditionally), and its flush skips clearing the metric set, so a
long-lived container keeps every value and prints the set once one metric holds 100 values (and warns on
every invocation that added none). So, per invocation: metrics on, Powertools' ``log_metrics`` as it is
(cold-start metric included); metrics off, the handler alone, then the set is cleared.
Powertools is imported by the handlers that call this, so this module does not import it at load.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

Handler = TypeVar("Handler", bound=Callable[..., Any])


def log_metrics(metrics: Any) -> Callable[[Handler], Handler]:
    """Decorate a handler as ``@metrics.log_metrics(capture_cold_start_metric=True)`` does, minus its leaks."""
    from aws_lambda_powertools.metrics.functions import is_metrics_disabled

    def decorate(handle: Handler) -> Handler:
        logged = metrics.log_metrics(handle, capture_cold_start_metric=True)

        @functools.wraps(handle)
        def handler(*args: Any, **kwargs: Any) -> Any:
            if not is_metrics_disabled():
                return logged(*args, **kwargs)
            try:
                return handle(*args, **kwargs)
            finally:
                metrics.clear_metrics()

        return handler  # type: ignore[return-value]

    return decorate
