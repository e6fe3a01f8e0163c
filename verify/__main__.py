"""``python -m verify`` is ``archverify``."""

import signal

from .core.signals import STOP_SIGNALS, exit_now

for _sig in STOP_SIGNALS:  # until the command installs its own: nothing to stop yet
    signal.signal(_sig, exit_now)

from .cli.main import main  # noqa: E402

main()
