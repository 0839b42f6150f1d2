"""The in-process tier: both agent shells on volttrontesting's mock core and memory pubsub.

Importing ``volttron.client`` monkey-patches socket/ssl/os with gevent for the whole process, and
the integration tier runs paho clients on threads in the pytest process: so these tests never run
inside the main suite's process. There, only ``test_tier.py`` is collected, and it runs this
directory in a child pytest (``VEN_INPROCESS_CHILD=1``), where only the ``test_shell_*`` files are.
"""

from __future__ import annotations

import os

CHILD = os.environ.get("VEN_INPROCESS_CHILD") == "1"
collect_ignore_glob = ["test_tier.py"] if CHILD else ["test_shell_*.py"]

if CHILD:
    from harness import *  # noqa: F403 - the fixtures of the child run
