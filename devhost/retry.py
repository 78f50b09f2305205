"""RetryOptions as the extension reads them from an action's `retryOptions`.

The Python SDK writes only the first interval and the attempt count; the extension also
reads `backoffCoefficient`, `maxRetryIntervalInMilliseconds` and
`retryTimeoutInMilliseconds`, which an app sends by extending `RetryOptions.to_json`.
The delay rule is the Durable Task Framework's: first interval times the coefficient to
the power of the retry number, capped by the max interval, and no retry once the retry
timeout (counted from the first attempt) has passed.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field

#: The extension's cap when none is given (SerializableRetryOptions).
DEFAULT_MAX_INTERVAL_MS = 6 * 24 * 3600 * 1000


class RetryPolicy(BaseModel):
    first_interval_ms: int = Field(alias="firstRetryIntervalInMilliseconds", gt=0)
    max_attempts: int = Field(alias="maxNumberOfAttempts")
    backoff: float = Field(1.0, alias="backoffCoefficient", gt=0)
    max_interval_ms: int = Field(DEFAULT_MAX_INTERVAL_MS, alias="maxRetryIntervalInMilliseconds", gt=0)
    timeout_ms: int | None = Field(None, alias="retryTimeoutInMilliseconds", gt=0)

    model_config = {"populate_by_name": True}

    @classmethod
    def from_action(cls, options: dict[str, Any]) -> RetryPolicy:
        return cls.model_validate(options)

    def delay(self, failed_attempt: int, first_attempt_at: datetime, now: datetime) -> timedelta | None:
        """The wait before the next attempt after attempt `failed_attempt` (1-based) failed;
        None when the retry timeout has passed and no attempt may follow."""
        if self.timeout_ms is not None and now >= first_attempt_at + timedelta(milliseconds=self.timeout_ms):
            return None
        wait = self.first_interval_ms * self.backoff ** (failed_attempt - 1)
        return timedelta(milliseconds=min(wait, self.max_interval_ms))
