"""Integration tests against the real Pacifica services (a package, so that this folder's
conftest is ``integration.conftest`` and does not shadow ``tests/conftest.py``)."""
