"""``python -m nfm_numpy``: the command line (``nfm_numpy.cli``)."""
import os
import signal
import sys


def _stop(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


signal.signal(signal.SIGTERM, _stop)            # until cli.main takes over: a SIGTERM while starting is an interrupt
try:
    from .cli import main
except KeyboardInterrupt as e:
    print(f"interrupted ({e or 'SIGINT'}) while starting; nothing was done", file=sys.stderr)
    sys.exit(130)

code = main()
if code == 130:
    # An interrupt that cut an import short (NumPy's, at start-up) leaves CPython's flag for an
    # unhandled Ctrl-C set, and under -m it then ends the process by SIGINT (status -2), though
    # main handled the interrupt. Leave at once, with the status main chose.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
