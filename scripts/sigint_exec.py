"""Exec a command with SIGINT restored to its default action.

A background job of a non-interactive shell starts with SIGINT ignored; VOLTTRON and its agents
then ignore `vctl shutdown` / Ctrl-C and never stop cleanly. Signal dispositions survive exec,
so resetting SIGINT here and exec'ing the platform fixes it for the whole process tree.
"""

import os
import signal
import sys

if len(sys.argv) < 2:
    sys.exit("usage: sigint_exec.py PROGRAM [ARGS...]")
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])
