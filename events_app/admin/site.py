"""The admin's login throttle: django-axes' lockout check, for logins that come through a request."""

from axes.backends import AxesStandaloneBackend


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuse a login while its user name and address are locked out (AXES_* settings).

    A login without a request (a test client's `login()`, a shell) has no address to
    throttle: axes would raise for it; it goes on to the next backend instead. Every
    login through the admin's form passes its request.
    """

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
