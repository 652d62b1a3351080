"""Fixtures shared with other suites."""

from tests.refunds.conftest import job_ctx, make_case  # noqa: F401 - refund cases made through the real job
