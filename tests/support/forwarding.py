"""Test helpers for the forwarder: a threadless one per test, flushed by the test itself."""

import pytest

from events_app.delivery import forwarder as forwarder_module


@pytest.fixture(name="forwarder")
def forwarder_fixture(settings, monkeypatch, django_capture_on_commit_callbacks):
    """Turn forwarding on with a threadless forwarder; yield a function that posts and then flushes.

    The test's transaction never commits, so the on-commit hand-off is run by
    capturing it; the forwarder then sends in the test's thread and connection.
    """
    settings.EVENTS_INLINE_DELIVERY = True
    instance = forwarder_module.Forwarder(threaded=False)
    monkeypatch.setattr(forwarder_module, "_process_forwarder", instance)

    class Handle:
        queue = instance

        def post(self, api, path, body, *, flush: bool = True):
            """POST `body` as JSON, run the commit hooks, and flush the forwarder unless told not to."""
            with django_capture_on_commit_callbacks(execute=True):
                response = api.post(path, body, format="json")
            if flush:
                instance.flush()
            return response

    return Handle()
