"""The certmon error family; the HTTP layer maps each to one status code in one place."""

from __future__ import annotations

from typing import Any


class CertmonError(Exception):
    status = 500
    title = "Internal error"
    retry_after: int | None = None  # seconds; sent as Retry-After when set

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class BadRequest(CertmonError):
    status = 400
    title = "Bad request"


class Unauthorized(CertmonError):
    status = 401
    title = "Unauthorized"


class Forbidden(CertmonError):
    status = 403
    title = "Forbidden"


class NotFound(CertmonError):
    status = 404
    title = "Not found"


class Conflict(CertmonError):
    status = 409
    title = "Conflict"


class PayloadTooLarge(CertmonError):
    status = 413
    title = "Payload too large"


class Invalid(CertmonError):
    """A request that parsed but breaks a rule; ``field`` names the offending member."""

    status = 422
    title = "Unprocessable entity"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}", errors=[{"field": field, "message": detail}])
        self.field = field


class BadGateway(CertmonError):
    """A server certmon relies on to do the work (a mail server, an agency's webhook) refused it or did not answer."""

    status = 502
    title = "Bad gateway"


class DatabaseUnavailable(CertmonError):
    status = 503
    title = "Service unavailable"


class RequestTimeout(CertmonError):
    """The request's body did not arrive in time."""

    status = 408
    title = "Request timeout"


class TooManyRequests(CertmonError):
    """A rate limit: ``retry_after`` seconds until the caller may try again; sent as Retry-After too."""

    status = 429
    title = "Too many requests"

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail, retry_after=retry_after)
        self.retry_after = retry_after


class Recomputing(Conflict):
    """Clocks are being recomputed under the policy in force: figures that mix two policies are not signed."""

    retry_after: int

    def __init__(self, remaining: int, retry_after: int) -> None:
        super().__init__(
            f"the clocks of {remaining} incidents are being recomputed under the policy in force; monthly exports are "
            f"signed only once every clock is: retry after {retry_after} seconds",
            recomputing={"remaining": remaining},
        )
        self.remaining = remaining
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[Recomputing], tuple[int, int]]:
        # Raised in the exports' worker process and re-raised in the service: rebuilt from its own arguments.
        return Recomputing, (self.remaining, self.retry_after)
