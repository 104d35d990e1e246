"""Production's web security defaults: https enforced except for the probes, HSTS for a year, a CSP, short sessions."""

import json
import re

from django.contrib.auth.models import User
from django.urls import reverse

from tests.ops.test_commands import run_in_production

# What a production process (DJANGO_DEBUG off, nothing else set) answers over plain HTTP and over https.
PROBE = """
import json
import django
django.setup()
from django.test import Client
client = Client()
answers = {path: client.get(path).status_code for path in ("/admin/", "/v1/events", "/healthz", "/readyz", "/metrics")}
answers["location"] = client.get("/admin/").get("Location", "")
secure = client.get("/healthz", secure=True)
answers["hsts"] = secure.get("Strict-Transport-Security", "")
answers["plain_hsts"] = client.get("/healthz").get("Strict-Transport-Security", "")
print(json.dumps(answers))
"""


def production_answers(tmp_path, **variables: str) -> dict:
    result = run_in_production(["-c", PROBE], DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", **variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_production_redirects_plain_http_to_https_but_not_the_probes_or_the_scrape(tmp_path):
    answers = production_answers(tmp_path)

    assert answers["/admin/"] == answers["/v1/events"] == 301
    assert answers["location"] == "https://testserver/admin/"
    assert answers["/healthz"] == 200
    assert answers["/readyz"] in (200, 503)  # the database's answer, not a redirect
    assert answers["/metrics"] == 403  # closed without a token, and not redirected
    assert answers["hsts"] == "max-age=31536000; includeSubDomains"
    assert answers["plain_hsts"] == ""  # HSTS rides on https answers only


def test_a_plain_http_deployment_turns_the_redirect_and_hsts_off(tmp_path):
    answers = production_answers(tmp_path, DJANGO_SECURE_SSL_REDIRECT="0")

    assert answers["/admin/"] == 302 and answers["location"].startswith("/admin/login/")  # plain HTTP, served
    assert answers["hsts"] == ""


def test_every_answer_carries_a_content_security_policy_without_inline_scripts(client, db):
    policy = client.get(reverse("admin:login"))["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))

    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    docs = client.get("/api/docs/")
    scripts = re.findall(r"<script([^>]*)>", docs.content.decode())
    assert "Content-Security-Policy" in docs
    assert scripts and all("src=" in attributes for attributes in scripts)  # none inline: the policy would block it
    assert client.get("/api/docs/?script=").status_code == 200  # the start-up script, as a file


def test_an_admin_session_lasts_eight_hours(client, db):
    User.objects.create_user("operator", password="operator-password-1", is_staff=True)

    response = client.post(reverse("admin:login"), {"username": "operator", "password": "operator-password-1"})

    assert response.status_code == 302
    assert response.cookies["sessionid"]["max-age"] == 8 * 3600
