"""``python -m engram`` is the ``engram`` command."""

from engram.cli import main

main(prog_name="engram")
