"""BackendBridgeAgent: forwards the VEN's bus traffic to AWS IoT Core and commands back.

Everything except ``agent.py`` and ``gevent_link.py`` is importable without VOLTTRON/gevent.
"""
