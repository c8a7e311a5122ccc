"""The outcome of one validation: :class:`ValidationReport`, built from a GX result by :func:`build_report`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tagifai.validation.failures import describe_failure, failure


class DataValidationError(ValueError):
    """Data failed its expectation suite; the message names the data, the suite and each failure."""


@dataclass
class ValidationReport:
    """The outcome of validating one dataframe or table against one suite."""

    suite: str
    data_name: str
    success: bool
    evaluated: int
    successful: int
    unsuccessful: int
    success_percent: float
    failures: list[dict] = field(default_factory=list)
    html: str = ""

    def to_metrics(self) -> dict:
        """The numbers for a KFP Metrics artifact."""
        return {
            "evaluated": self.evaluated,
            "successful": self.successful,
            "unsuccessful": self.unsuccessful,
            "success_percent": self.success_percent,
        }

    def summary(self) -> str:
        """One line: data, suite and counts."""
        status = "passed" if self.success else "FAILED"
        return (
            f"validation of {self.data_name!r} against suite {self.suite!r} {status}: "
            f"{self.successful}/{self.evaluated} expectations met ({self.success_percent:.1f}%)"
        )

    def failure_message(self) -> str:
        """A multi-line message: the data, the suite and every failed expectation with samples."""
        lines = [
            f"Data validation failed for {self.data_name!r} against suite {self.suite!r}: "
            f"{self.unsuccessful} of {self.evaluated} expectations failed "
            f"({self.success_percent:.1f}% passed)."
        ]
        lines += [f"  - {describe_failure(f)}" for f in self.failures]
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise :class:`DataValidationError` when any expectation failed."""
        if not self.success:
            raise DataValidationError(self.failure_message())


def build_report(result: Any, suite: Any, data_name: str, data_columns: list) -> ValidationReport:
    """The report of a GX suite validation result; failures in the suite's (JSON file's) order."""
    stats = result.statistics or {}
    # GX returns results grouped by metric.
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    failed = sorted(
        (evr for evr in result.results if not evr.success),
        key=lambda evr: order.get(evr.expectation_config.id, len(order)),
    )
    failures = [failure(evr, data_columns) for evr in failed]
    return ValidationReport(
        suite=suite.name,
        data_name=data_name,
        success=bool(result.success),
        evaluated=int(stats.get("evaluated_expectations", len(result.results))),
        successful=int(stats.get("successful_expectations", 0)),
        unsuccessful=int(stats.get("unsuccessful_expectations", len(failures))),
        success_percent=float(stats.get("success_percent") or 0.0),
        failures=failures,
    )
