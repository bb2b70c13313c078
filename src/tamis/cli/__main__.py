"""``python -m tamis.cli``."""

from tamis.cli import app

app()
