import signal
import sys

from bench.run import main


def _terminate(signum, frame):
    raise SystemExit(128 + signum)  # unwind, so every process the bench started is stopped


signal.signal(signal.SIGTERM, _terminate)
sys.exit(main())
