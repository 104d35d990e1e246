"""OpenAPI (drf-spectacular) descriptions of the API key scheme and the custom fields."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type, build_bearer_security_scheme_object
from drf_spectacular.types import OpenApiTypes


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "events_app.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")


class RFC3339DateTimeFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "events_app.ingest.serializers.RFC3339DateTimeField"

    def map_serializer_field(self, auto_schema, direction):
        return build_basic_type(OpenApiTypes.DATETIME)


class JSONObjectFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "events_app.ingest.serializers.JSONObjectField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "object", "additionalProperties": {}}


class StrictCharFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "events_app.ingest.serializers.StrictCharField"

    def map_serializer_field(self, auto_schema, direction):
        schema = {"type": "string", "maxLength": self.target.max_length}
        if not self.target.allow_blank:
            schema["minLength"] = 1
        return schema
