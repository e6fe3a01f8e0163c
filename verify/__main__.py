"""``python -m verify`` is ``archverify``."""

from .cli.main import main

main()
