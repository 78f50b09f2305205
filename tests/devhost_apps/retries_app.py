"""Activities retried with the full RetryOptions the extension understands: first
interval, backoff coefficient, max interval and retry timeout."""
import threading
import time
from collections import Counter

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
calls: Counter[str] = Counter()
_lock = threading.Lock()


class FullRetryOptions(df.RetryOptions):
    """The Python SDK's RetryOptions writes only the first interval and the attempt count;
    the extension reads three more fields, which an app adds to the JSON it sends."""

    def __init__(self, first_retry_interval_in_milliseconds: int, max_number_of_attempts: int,
                 backoff_coefficient: float = 1.0, max_retry_interval_in_milliseconds: int | None = None,
                 retry_timeout_in_milliseconds: int | None = None) -> None:
        super().__init__(first_retry_interval_in_milliseconds, max_number_of_attempts)
        self.extra = {"backoffCoefficient": backoff_coefficient}
        if max_retry_interval_in_milliseconds is not None:
            self.extra["maxRetryIntervalInMilliseconds"] = max_retry_interval_in_milliseconds
        if retry_timeout_in_milliseconds is not None:
            self.extra["retryTimeoutInMilliseconds"] = retry_timeout_in_milliseconds

    def to_json(self):
        return {**super().to_json(), **self.extra}


@app.activity_trigger(input_name="key", activity="AlwaysFails")
def always_fails(key: str) -> None:
    with _lock:
        calls[key] += 1
    time.sleep(0.02)
    raise ConnectionError(f"attempt {calls[key]} for {key} failed")


@app.orchestration_trigger(context_name="context", orchestration="Retried")
def retried(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = FullRetryOptions(**spec["options"])
    try:
        yield context.call_activity_with_retry("AlwaysFails", options, context.instance_id)
    except Exception as failure:  # noqa: BLE001 - report how it ended
        return str(failure).splitlines()[0]
    return None
