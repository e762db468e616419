"""`python -m inventiv_common.cli` is the `inventiv` command."""

from inventiv_common.cli import main

main()
