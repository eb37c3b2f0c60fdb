"""The handlers' Powertools setup, one way for every function: :func:`powertools` makes the Logger and Metrics,
:func:`instrument` decorates the handler with both.

:func:`log_metrics` is Powertools' ``log_metrics`` that honours POWERTOOLS_METRICS_DISABLED fully.

With metrics disabled (``sentiment-local``, the soak, tests), Powertools 3.x still prints the cold-start
blob (``single_metric`` prints unconditionally), and its flush skips clearing the metric set, so a
long-lived container keeps every value and prints the set once one metric holds 100 values (and warns on
every invocation that added none). So, per invocation: metrics on, Powertools' ``log_metrics`` as it is
(cold-start metric included); metrics off, the handler alone, then the set is cleared.
Powertools is imported by the handlers that call this, so this module does not import it at load.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sentiment_shared.stack import METRICS_NAMESPACE

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics

Handler = TypeVar("Handler", bound=Callable[..., Any])


def powertools(default_service: str, package: str) -> tuple[Logger, Metrics]:
    """The function's Logger and Metrics, and ``package``'s standard-library loggers in the Logger's format.

    The stack sets ``POWERTOOLS_SERVICE_NAME`` and ``POWERTOOLS_METRICS_NAMESPACE``; outside it (the local
    pipeline, tests) the defaults are ``default_service`` and :data:`METRICS_NAMESPACE`, and an explicit
    namespace keeps EMF valid when a handler is imported before the environment is complete. The cores log
    through ``logging.getLogger(__name__)``; Powertools copies its JSON format and level only to top-level
    loggers that exist, hence the ``getLogger(package)``.
    """
    from aws_lambda_powertools import Logger, Metrics
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", default_service))
    metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE))
    logging.getLogger(package)
    copy_config_to_registered_loggers(source_logger=logger, include={package})
    return logger, metrics


def instrument(logger: Logger, metrics: Metrics) -> Callable[[Handler], Handler]:
    """Every handler's decorators: :func:`log_metrics` over ``inject_lambda_context`` (Lambda context keys
    on every line, a clean state per invocation, and never the event: it carries users' texts)."""

    def decorate(handle: Handler) -> Handler:
        logged: Handler = logger.inject_lambda_context(clear_state=True, log_event=False)(handle)
        return log_metrics(metrics)(logged)

    return decorate


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
