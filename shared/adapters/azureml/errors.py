"""How Azure's answers become the port's errors, so callers can react without knowing Azure.

Retries: the adapter turns the SDK's own retries off and never sleeps. A 429 or 503 is
surfaced at once as `TryLater` carrying the service's Retry-After (or as `Transient`
when the service gave none), and the caller's retry wrapper (`shared.adapters.retry`)
or the queue's visibility timeout waits. That keeps a Retry-After of minutes from
holding a function, and puts every wait in one place. A busy resource (409, endpoint
`Updating`) is `TryLater` without retry_after: the caller retries on its next tick.

| answer                               | raised                                        |
|--------------------------------------|-----------------------------------------------|
| 404                                  | NotFound, naming what was looked for          |
| 409, endpoint `Updating`             | TryLater (retry_after only if Azure sent one) |
| 429, 503 with Retry-After            | TryLater(retry_after)                         |
| 429, 503 without; other 5xx; 408;    | Transient                                     |
| timeouts, connection loss            |                                               |
| 401, 403, no token                   | ConfigurationError naming identity and scope  |
| 400 "Failed to find metric           | ConfigurationError: a metric name is wrong    |
|   configuration" (Azure Monitor)     |                                               |
| anything else (400 ...)              | PlatformError with the service's message      |
| the SDK's own exceptions             | PlatformError with the SDK's message          |
| anything else the SDK raises         | PlatformError naming the operation and error  |
|   (KeyError, AttributeError ...)     |                                               |
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Iterator, Mapping

from shared.domain.ports import ConfigurationError, NotFound, PlatformError, Transient, TryLater


def headers_of(response: object) -> Mapping[str, str]:
    """An answer's headers. azure-core types an error's response by a protocol that leaves them out, though the
    response of every transport has them."""
    headers = getattr(response, "headers", None)
    return headers if headers is not None else {}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from `retry-after-ms`, `x-ms-retry-after-ms` or `Retry-After` (seconds or a date)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        if name in lowered:
            with contextlib.suppress(ValueError):
                return max(0.0, float(lowered[name]) / 1000)
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


UNKNOWN_METRIC = "Failed to find metric configuration"


def from_status(
    status: int, headers: Mapping[str, str], detail: str, *, what: str, identity: str, scope: str
) -> PlatformError:
    """The port error for an HTTP answer `status` to a request about `what`."""
    wait = retry_after(headers)
    if status == 404:
        return NotFound(f"{what} was not found (404): {detail}")
    if status in (401, 403):
        return ConfigurationError(
            f"{identity} is not allowed to use {what} ({status}); grant it a role on {scope}: {detail}"
        )
    if status == 400 and UNKNOWN_METRIC in detail:
        # Azure Monitor's answer to a metric name the resource type lacks (Azure/azure-sdk-for-net#29584):
        # the names asked for are wrong, which no retry or wait changes.
        return ConfigurationError(f"Azure Monitor has no such metric for {what} (400): {detail}")
    if status == 409:
        return TryLater(f"{what} is busy with another operation (409): {detail}", wait)
    if status in (429, 503) and wait is not None:
        return TryLater(f"Azure throttled or is unavailable for {what} ({status}): {detail}", wait)
    if status >= 500 or status in (408, 429):
        return Transient(f"Azure failed on {what} ({status}): {detail}")
    return PlatformError(f"Azure refused {what} ({status}): {detail}")


@contextlib.contextmanager
def translated(what: str, *, identity: str, scope: str) -> Iterator[None]:
    """Re-raise Azure SDK and transport exceptions met inside the block as port errors."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except PlatformError:
        raise
    except ClientAuthenticationError as error:
        if error.response is not None and error.status_code is not None:
            raise from_status(
                error.status_code, headers_of(error.response), error.message,
                what=what, identity=identity, scope=scope,
            ) from error
        raise ConfigurationError(f"{identity} could not get a token for {scope} ({what}): {error.message}") from error
    except HttpResponseError as error:
        if error.response is None or error.status_code is None:
            raise Transient(f"no answer from Azure for {what}: {error.message}") from error
        raise from_status(
            error.status_code, headers_of(error.response), _detail(error), what=what, identity=identity, scope=scope
        ) from error
    except (ServiceRequestError, ServiceResponseError) as error:
        raise Transient(f"could not reach Azure for {what}: {error.message}") from error
    except Exception as error:
        # The SDK's own refusals (validation) and its failures on answers it did not expect: a bare
        # KeyError('blobReferenceForConsumption') or KeyError('sasUri') from a registry answer, an
        # AttributeError, a ValueError. None may escape the port: each becomes a PlatformError naming
        # the operation, with the SDK's exception kept as the cause.
        if type(error).__module__.startswith("azure.ai.ml"):
            raise PlatformError(f"Azure ML refused {what}: {error}") from error
        raise PlatformError(f"azure-ai-ml failed on {what}: {type(error).__name__}: {error}") from error


def _detail(error: object) -> str:
    """The service's own error code and message, which say more than the SDK's wrapper."""
    inner = getattr(error, "error", None)
    code, message = getattr(inner, "code", None), getattr(inner, "message", None)
    if code or message:
        return f"{code}: {message}"
    return str(getattr(error, "reason", "") or getattr(error, "message", ""))
