"""`python -m jewelsearch.cli`: the same as the `jewelsearch` command."""

from jewelsearch.cli import main

main()
