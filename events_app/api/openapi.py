"""OpenAPI (drf-spectacular) extensions: the API key scheme, the custom fields; importing it registers them all."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import build_basic_type, build_bearer_security_scheme_object
from drf_spectacular.types import OpenApiTypes

from events_app.api import openapi_segment  # noqa: F401  (registers the descriptions of the Segment views)


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


class CodeFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "events_app.event_types.fields.CodeField"

    def map_serializer_field(self, auto_schema, direction):
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.target.max_length,
            "description": f"An {self.target.standard} code, in any case.",
        }


class PositiveDecimalFieldSchema(OpenApiSerializerFieldExtension):
    """A decimal given as a string (exact) or a JSON number."""

    target_class = "events_app.event_types.fields.PositiveDecimalField"

    def map_serializer_field(self, auto_schema, direction):
        bound = "at least 0" if self.target.inclusive else "above 0"
        return {
            "anyOf": [{"type": "string", "format": "decimal"}, {"type": "number"}],
            "description": f"A decimal {bound}, at most {self.target.max_digits} digits and "
            f"{self.target.decimal_places} after the point; a string keeps it exact.",
            "example": "4.99",
        }


class SchemaVersionFieldSchema(OpenApiSerializerFieldExtension):
    target_class = "events_app.ingest.serializers.SchemaVersionField"

    def map_serializer_field(self, auto_schema, direction):
        return {"type": "integer", "minimum": 1, "nullable": self.target.allow_null}
