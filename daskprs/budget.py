"""Error budgets and retry decisions: pure code, no Dask, no I/O.

Azure's rules (reference §2, §5): ``mini_batch_error_threshold`` counts mini-batches that failed
for good (exception, timeout, bad return, crash, after their last try); ``error_threshold``
counts failed items (all items of a failed mini-batch, plus the items a run() did not return);
``allowed_failed_percent`` is checked only once every mini-batch has been scheduled. -1 ignores
a threshold; a threshold of N allows N failures and the (N+1)th fails the job.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRYABLE = frozenset({"failed", "timeout", "crashed", "lost"})
UNCHARGED = frozenset({"not_run", "init_failed", "aborted"})


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    mini_batch_error_threshold: int = -1
    error_threshold: int = -1
    allowed_failed_percent: float = 100.0
    max_tries: int = 3


@dataclass
class Budget:
    """Running counts against the thresholds; ``exceeded()`` names the one that broke."""

    thresholds: Thresholds
    total: int
    failed_minibatches: int = 0
    failed_items: int = 0

    def should_retry(self, status: str, attempt: int) -> bool:
        """A charged failure is retried while tries remain (tries = max_retries + 1)."""
        return status in RETRYABLE and attempt < self.thresholds.max_tries

    def record_final_failure(self, items: int) -> None:
        self.failed_minibatches += 1
        self.failed_items += items

    def record_short_return(self, items: int, succeeded: int) -> None:
        self.failed_items += max(0, items - succeeded)

    def exceeded(self, all_scheduled: bool) -> str | None:
        t = self.thresholds
        if 0 <= t.mini_batch_error_threshold < self.failed_minibatches:
            return (f"mini_batch_error_threshold exceeded: {self.failed_minibatches} mini-batches "
                    f"failed, {t.mini_batch_error_threshold} allowed")
        if 0 <= t.error_threshold < self.failed_items:
            return (f"error_threshold exceeded: {self.failed_items} items failed, "
                    f"{t.error_threshold} allowed")
        if all_scheduled and self.total and t.allowed_failed_percent < 100:
            percent = 100.0 * self.failed_minibatches / self.total
            if percent > t.allowed_failed_percent:
                return (f"allowed_failed_percent exceeded: {percent:.1f}% of mini-batches failed "
                        f"({self.failed_minibatches} of {self.total}), "
                        f"{t.allowed_failed_percent:g}% allowed")
        return None
