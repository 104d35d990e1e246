"""OpenAPI (drf-spectacular) descriptions of the write-key schemes of the Segment endpoints."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object


class WriteKeyScheme(OpenApiAuthenticationExtension):
    target_class = "events_app.segment.auth.WriteKeyAuthentication"
    name = ["WriteKeyBasic", "WriteKeyBearer"]

    def get_security_definition(self, auto_schema):
        # OpenAPI cannot describe a key inside the JSON body (`writeKey`); docs/segment.md does.
        return [
            {"type": "http", "scheme": "basic", "description": "The API key as user name, an empty password."},
            build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer"),
        ]

    def get_security_requirement(self, auto_schema):
        return [{"WriteKeyBasic": []}, {"WriteKeyBearer": []}]


class PathWriteKeyScheme(OpenApiAuthenticationExtension):
    """The settings request names its key in the path ({write_key}): no header to describe."""

    target_class = "events_app.segment.auth.PathWriteKeyAuthentication"
    name = []

    def get_security_definition(self, auto_schema):
        return []

    def get_security_requirement(self, auto_schema):
        return None
