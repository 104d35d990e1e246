"""Admin users for tests: a staff user with exactly the given permissions of the app."""

from django.contrib.auth.models import Permission, User


def make_user(username: str, permissions: list[str]) -> User:
    user = User.objects.create_user(username, password="secret-password-1", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="events_app", codename__in=permissions))
    return user
