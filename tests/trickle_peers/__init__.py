"""Peer scripts run as subprocesses with the pytrickle venv's python ($PYTRICKLE_PY) by the interop tests."""
