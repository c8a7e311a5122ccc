"""Data validation with Great Expectations (GX 1.x) suites kept as JSON in the repository.

The suites live in the file-based GX project ``great_expectations/`` (:mod:`.suites`); at run time they
are read into one in-memory GX context per process (:mod:`.context`) and run on a dataframe, a Parquet
file or a warehouse table (:mod:`.run`). The outcome is a :class:`ValidationReport` (:mod:`.report`)
with each failed expectation as plain data (:mod:`.failures`) and the result as one HTML page
(:mod:`.html`). ``great_expectations`` is imported lazily, only when a validation actually runs.
"""

from tagifai.validation.failures import SAMPLE_SIZE, describe_failure
from tagifai.validation.report import DataValidationError, ValidationReport
from tagifai.validation.run import (
    default_expectation_parameters,
    validate_dataframe,
    validate_parquet,
    validate_table,
)
from tagifai.validation.suites import SuiteNotFoundError, available_suites, suite_path

__all__ = [
    "SAMPLE_SIZE",
    "DataValidationError",
    "SuiteNotFoundError",
    "ValidationReport",
    "available_suites",
    "default_expectation_parameters",
    "describe_failure",
    "suite_path",
    "validate_dataframe",
    "validate_parquet",
    "validate_table",
]
