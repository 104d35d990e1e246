"""Key rotation: a new key at once, the old one working through its grace, then 401; revocation ends a grace early."""

from datetime import timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from events_app.api.keys import issue_api_key, revoke_api_key
from events_app.models import ApiKey


def status_with(key: str, make_install) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client.post("/v1/events", make_install(), format="json").status_code


def rotate(*args: str) -> tuple[str, str]:
    """Run rotate_api_key; return (the new key from the last line of stdout, what it said on stderr)."""
    out, err = StringIO(), StringIO()
    call_command("rotate_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip().splitlines()[-1], err.getvalue()


@pytest.fixture
def clock():
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        yield traveller


def test_the_old_key_works_through_its_grace_then_answers_401(game_key, make_install, clock):
    old, old_plaintext = game_key

    new_plaintext, said = rotate("space-raiders", old.prefix, "--grace-hours", "48")

    assert status_with(new_plaintext, make_install) == 202
    assert status_with(old_plaintext, make_install) == 202
    assert "works until" in said and old.prefix in said
    clock.shift(timedelta(hours=47, minutes=59))
    assert status_with(old_plaintext, make_install) == 202
    clock.shift(timedelta(minutes=2))
    assert status_with(old_plaintext, make_install) == 401
    assert status_with(new_plaintext, make_install) == 202


def test_the_default_grace_is_a_week(game_key, clock):
    old, _ = game_key

    rotate("space-raiders", old.prefix)

    old.refresh_from_db()
    assert old.revoked_at == timezone.now() + timedelta(hours=168)
    assert old.is_active


def test_a_grace_of_zero_revokes_the_old_key_at_once(game_key, make_install):
    old, old_plaintext = game_key

    new_plaintext, _ = rotate("space-raiders", old.prefix, "--grace-hours", "0")

    assert status_with(old_plaintext, make_install) == 401
    assert status_with(new_plaintext, make_install) == 202


def test_revoking_a_key_in_its_grace_ends_the_grace_at_once(game_key, make_install):
    old, old_plaintext = game_key
    rotate("space-raiders", old.prefix)
    assert status_with(old_plaintext, make_install) == 202

    revoke_api_key(api_key=ApiKey.objects.get(pk=old.pk))

    assert status_with(old_plaintext, make_install) == 401


def test_an_unknown_prefix_or_game_is_refused_with_the_reason(game_key):
    with pytest.raises(CommandError, match="no working key with the prefix"):
        rotate("space-raiders", "trk_nope")
    with pytest.raises(CommandError, match="no working key"):
        rotate("no-such-game", game_key[0].prefix)


def test_a_key_already_rotated_away_cannot_be_rotated_again_after_its_grace(game_key, clock):
    old, _ = game_key
    rotate("space-raiders", old.prefix, "--grace-hours", "1")
    clock.shift(timedelta(hours=2))

    with pytest.raises(CommandError, match="no working key"):
        rotate("space-raiders", old.prefix)


def test_the_new_key_keeps_the_old_ones_game_and_name(db):
    old, _ = issue_api_key(game_slug="moon-miners", name="ios build")

    rotate("moon-miners", old.prefix)

    new = ApiKey.objects.exclude(pk=old.pk).get()
    assert (new.game.slug, new.name) == ("moon-miners", "ios build")


def test_rotating_a_key_already_in_its_grace_never_extends_it(game_key, clock):
    old, _ = game_key
    rotate("space-raiders", old.prefix, "--grace-hours", "2")

    rotate("space-raiders", old.prefix, "--grace-hours", "100")

    old.refresh_from_db()
    assert old.revoked_at == timezone.now() + timedelta(hours=2)
