"""``python -m invoicesync``: the same as the ``invoicesync`` command."""

from .cli import run

run()
