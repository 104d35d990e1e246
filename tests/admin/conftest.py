"""Fixtures of the admin tests: logged-in operators (read-only, resender) and a second game's key."""

import pytest

from events_app.api.keys import issue_api_key
from tests.admin.helpers import READ_ONLY_PERMISSIONS
from tests.support.users import make_user


@pytest.fixture
def operator(client, db):
    """A logged-in read-only operator: may browse everything, resend nothing."""
    client.force_login(make_user("reader", READ_ONLY_PERMISSIONS))
    return client


@pytest.fixture
def resender(client, db):
    """A logged-in operator who may also resend events."""
    user = make_user("resender", [*READ_ONLY_PERMISSIONS, "resend_event"])
    client.force_login(user)
    client.user = user
    return client


@pytest.fixture
def other_game_key(db):
    """Return (ApiKey, plaintext) for a second game, `moon-miners`."""
    return issue_api_key(game_slug="moon-miners", name="tests")
