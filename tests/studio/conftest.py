"""Studio fixtures (defined in studio_support.py, which the tests also import helpers from)."""

from studio_support import browser, db_url, postgres_server, server_factory  # noqa: F401
