"""The admin's login throttle: wrong passwords lock a user name at an address out for the cool-off, then it opens."""

from datetime import timedelta

import time_machine
from django.conf import settings
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

LOGIN_URL = reverse("admin:login")
PASSWORD = "operator-password-1"


def log_in(client, password: str, *, address: str = "203.0.113.7"):
    return client.post(f"{LOGIN_URL}?next=/admin/", {"username": "operator", "password": password}, REMOTE_ADDR=address)


def test_wrong_passwords_lock_the_login_out_even_for_the_right_password_until_the_cool_off(client, db):
    User.objects.create_user("operator", password=PASSWORD, is_staff=True)

    wrong = [log_in(client, f"guess-{attempt}").status_code for attempt in range(settings.AXES_FAILURE_LIMIT)]
    refused = log_in(client, PASSWORD)
    after_refusal = client.get("/admin/")
    with time_machine.travel(timezone.now() + settings.AXES_COOLOFF_TIME + timedelta(seconds=1)):
        cooled_off = log_in(client, PASSWORD)

    assert wrong[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with its error
    assert wrong[-1] == 429
    assert refused.status_code == 429 and "too many login attempts" in refused.content.decode()
    assert after_refusal.status_code == 302 and after_refusal["Location"].startswith(LOGIN_URL)  # not logged in
    assert cooled_off.status_code == 302 and cooled_off["Location"] == "/admin/"


def test_a_lockout_is_for_one_user_name_at_one_address(client, db):
    """Behind a proxy every login comes from its address: one attacker must not lock everyone out."""
    User.objects.create_user("operator", password=PASSWORD, is_staff=True)
    User.objects.create_user("colleague", password=PASSWORD, is_staff=True)
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"guess-{attempt}")

    colleague = client.post(LOGIN_URL, {"username": "colleague", "password": PASSWORD}, REMOTE_ADDR="203.0.113.7")
    elsewhere = log_in(client, PASSWORD, address="198.51.100.2")

    assert colleague.status_code == 302
    assert elsewhere.status_code == 302
