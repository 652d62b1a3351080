"""Fixtures shared with other suites."""

from tests.accounts.conftest import client_with  # noqa: F401 - an app with other settings, same transaction
from tests.refunds.conftest import job_ctx, make_case  # noqa: F401 - refund cases made through the real job
