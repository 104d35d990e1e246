"""Django project of the player event tracker: settings, URLs and WSGI entry point."""
