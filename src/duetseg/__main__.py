"""``python -m duetseg`` (also used by torchrun)."""

from duetseg.cli import main

main()
