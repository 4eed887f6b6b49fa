"""``python -m datamove``: the command line, as the ``datamove`` script."""

from datamove.cli import main

main()
