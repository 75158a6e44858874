"""The one mapping of failures to Kopf's retry semantics.

* Database unreachable or busy (any SQLAlchemy/driver error, a timeout), Kubernetes API unreachable, conflicting
  or throttling: :class:`kopf.TemporaryError` — Kopf retries after ``retry_delay`` and nothing is lost
  (in particular a finalizer's revocation is retried until the database is back).
* Input the domain refuses (:class:`~vibexp.core.errors.InvalidInput`, a schema violation) or a Kubernetes 4xx:
  :class:`kopf.PermanentError` — retrying cannot help; the condition on the object says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import kopf
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from vibexp.core.errors import InvalidInput, VibeXPError
from vibexp.operator.kube import KubeApiError

__all__ = ["is_database_error", "is_temporary", "kopf_errors"]


def is_database_error(exc: BaseException | None) -> bool:
    """The VibeXP database failed (unreachable, locked, timed out), as opposed to the Kubernetes API."""
    return isinstance(exc, SQLAlchemyError | OSError | TimeoutError) and not isinstance(exc, KubeApiError)


def is_temporary(exc: BaseException) -> bool:
    if isinstance(exc, KubeApiError):
        return exc.temporary
    return isinstance(exc, SQLAlchemyError | OSError | TimeoutError)


@contextmanager
def kopf_errors(retry_delay: float) -> Iterator[None]:
    try:
        yield
    except (kopf.TemporaryError, kopf.PermanentError):
        raise
    except (InvalidInput, ValidationError) as exc:
        raise kopf.PermanentError(str(exc)) from exc
    except VibeXPError as exc:
        raise kopf.PermanentError(exc.message) from exc
    except Exception as exc:
        if is_temporary(exc):
            raise kopf.TemporaryError(f"{type(exc).__name__}: {exc}", delay=retry_delay) from exc
        if isinstance(exc, KubeApiError):
            raise kopf.PermanentError(str(exc)) from exc
        raise
