"""The VEN agent: a VOLTTRON shell (``agent.py``) around a pure-Python core (``core``)."""
