"""``python -m verify`` is ``archverify``."""

import signal

from .errors import signal_exit

for _sig in (signal.SIGINT, signal.SIGTERM):  # until the command installs its own: nothing to stop yet
    signal.signal(_sig, signal_exit)

from .cli.main import main  # noqa: E402

main()
