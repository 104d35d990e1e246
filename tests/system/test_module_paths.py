"""Modules named in strings (settings, the destinations, gunicorn's config, the docs) exist where they say."""

import importlib
import re

import pytest
from django.apps import apps
from django.conf import settings
from django.utils.module_loading import import_string

from devtools.processes import ROOT
from events_app.delivery.destinations.base import DESTINATIONS

DOTTED = re.compile(r"\b(?:events_app|tracking_project|devtools)(?:\.[A-Za-z_]\w*)+")
SOURCE_PATH = re.compile(r"\b(?:events_app|tracking_project|devtools|sdk|tests|bench)/[\w/]+\.py\b")


def dotted_strings(value) -> list[str]:
    """Return every string in a setting's value (nested lists and dicts too) that names a module of the project."""
    if isinstance(value, str):
        return [value] if DOTTED.fullmatch(value) else []
    if isinstance(value, dict):
        return [name for item in value.values() for name in dotted_strings(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in dotted_strings(item)]
    return []


def importable(dotted: str) -> bool:
    """Return True if `dotted` is a module, or an attribute of one, that imports."""
    try:
        importlib.import_module(dotted)
        return True
    except ImportError:
        pass
    try:
        import_string(dotted)
        return True
    except ImportError:
        return False


def permission_names() -> set[str]:
    """Return the app's permissions as the docs write them ("events_app.resend_event"): dotted, yet no module."""
    names = set()
    for model in apps.get_app_config("events_app").get_models():
        codenames = [f"{action}_{model._meta.model_name}" for action in model._meta.default_permissions]
        codenames += [codename for codename, _ in model._meta.permissions]
        names.update(f"events_app.{codename}" for codename in codenames)
    return names


def docs() -> list:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "warehouse").glob("*.md"))]


SETTING_NAMES = ["MIDDLEWARE", "REST_FRAMEWORK", "ROOT_URLCONF", "WSGI_APPLICATION", "LOGGING", "INSTALLED_APPS"]


@pytest.mark.parametrize("name", SETTING_NAMES)
def test_every_dotted_path_in_the_settings_imports(name):
    paths = dotted_strings(getattr(settings, name))

    assert [path for path in paths if not importable(path)] == []


def test_every_destination_names_a_class_that_imports():
    assert all(isinstance(import_string(path), type) for path in DESTINATIONS.values())


def test_the_modules_gunicorns_config_names_exist():
    text = (ROOT / "gunicorn.conf.py").read_text()
    looked_up = re.findall(r"""sys\.modules(?:\.get\(|\[)["']([\w.]+)["']""", text)
    imported = re.findall(r"^\s*(?:from|import)\s+((?:events_app|tracking_project|devtools)[\w.]*)", text, re.MULTILINE)
    names = looked_up + imported

    assert names
    assert [name for name in names if not importable(name)] == []


@pytest.mark.parametrize("document", docs(), ids=lambda path: str(path.relative_to(ROOT)))
def test_the_docs_name_only_modules_and_files_that_exist(document):
    text = document.read_text()

    missing_files = [path for path in SOURCE_PATH.findall(text) if not (ROOT / path).exists()]
    named = set(DOTTED.findall(text)) - permission_names()
    missing_modules = [name for name in named if not importable(name)]

    assert (missing_files, sorted(missing_modules)) == ([], [])
