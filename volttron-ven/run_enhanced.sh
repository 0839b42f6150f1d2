#!/bin/bash
# The seed's startup script, by the name the operations guide gives it: the VEN is now VOLTTRON
# agents (VenAgent/, BackendBridgeAgent/) brought up by ven_control.sh, so this starts them.
exec "$(dirname "${BASH_SOURCE[0]}")/../scripts/ven_control.sh" start "$@"
