"""``python -m nfm_numpy``: the command line (``nfm_numpy.cli``)."""
import os
import signal
import sys


def _stop(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


# Until cli.main takes over, SIGTERM, SIGHUP and SIGQUIT while starting are interrupts, as Ctrl-C is.
# A signal ignored when we started (nohup's SIGHUP, a background job's SIGINT) stays ignored.
for _name in ("SIGTERM", "SIGHUP", "SIGQUIT"):
    if hasattr(signal, _name) and signal.getsignal(getattr(signal, _name)) is not signal.SIG_IGN:
        signal.signal(getattr(signal, _name), _stop)
try:
    from .cli import main
except BaseException as e:                      # an interrupt, maybe wrapped by the import it cut short
    stop = e
    while stop is not None and not isinstance(stop, KeyboardInterrupt):
        stop = stop.__cause__ or stop.__context__
    if stop is None or os.environ.get("NFM_NUMPY_DEBUG") == "1":
        raise
    print(f"interrupted ({str(stop) or 'SIGINT'}) while starting; nothing was done", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)                               # see below: CPython may still hold the Ctrl-C flag

code = main()
if code == 130:
    # An interrupt that cut an import short (NumPy's, at start-up) leaves CPython's flag for an
    # unhandled Ctrl-C set, and under -m it then ends the process by SIGINT (status -2), though
    # main handled the interrupt. Leave at once, with the status main chose.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
sys.exit(code)
