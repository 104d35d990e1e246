"""The OpenAPI document as a client generator reads it: ids, tags, examples, error bodies, the typed bodies."""

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from events_app.event_types import REGISTRY


@pytest.fixture(scope="module")
def document():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)  # raises on an invalid OpenAPI 3 document
    return schema


def _operations(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def _resolve(document, schema):
    return document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]


def test_every_operation_has_a_readable_id_an_area_tag_and_an_example(document):
    ids = []
    for name, operation in _operations(document):
        ids.append(operation["operationId"])
        assert not operation["operationId"].startswith("v1_"), name
        assert len(operation["tags"]) == 1 and operation["tags"][0] in {"events", "segment", "ops"}, name
        media = [*operation.get("requestBody", {}).get("content", {}).values()]
        media += [
            content for answer in operation["responses"].values() for content in answer.get("content", {}).values()
        ]
        assert any("examples" in entry or "example" in entry for entry in media), f"{name} has no example"
    assert len(ids) == len(set(ids))
    assert {"send_event", "send_event_batch", "segment_batch", "segment_track", "health"} <= set(ids)


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch"])
def test_every_error_answer_of_the_event_endpoints_has_a_body(document, path):
    responses = document["paths"][path]["post"]["responses"]

    assert {"400", "401", "413", "415", "429", "503"} <= set(responses)
    for code in ("400", "401", "413", "415", "429", "503"):
        assert "schema" in responses[code]["content"]["application/json"], code
    assert document["components"]["schemas"]["Error"]["required"] == ["detail"]


def test_the_event_is_a_union_on_event_type_with_each_built_in_types_properties(document):
    event = document["components"]["schemas"]["EventRequest"]

    mapping = event["discriminator"]["mapping"]
    assert event["discriminator"]["propertyName"] == "event_type"
    assert set(mapping) == set(REGISTRY)
    purchase = document["components"]["schemas"][mapping["purchase"].rsplit("/", 1)[1]]
    assert "properties" in purchase["required"]
    purchase_properties = _resolve(document, purchase["properties"]["properties"])
    assert {"transaction_id", "product_id", "price", "currency"} <= set(purchase_properties["required"])
    session_end = document["components"]["schemas"][mapping["session_end"].rsplit("/", 1)[1]]
    assert "session_id" in session_end["required"]
    # Any other valid name is a custom type: its properties are free-form, its version optional.
    custom = _resolve(document, event["oneOf"][-1])
    assert set(custom["properties"]["event_type"]["not"]["enum"]) == set(REGISTRY)
    assert custom["properties"]["properties"]["type"] == "object"
    assert "event_schema_version" in custom["properties"]
    assert "event_schema_version" not in event["properties"]


def test_segment_calls_and_batch_bodies_are_typed(document):
    track = document["paths"]["/v1/track"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert _resolve(document, track)["required"] == ["event"]

    batch = document["paths"]["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    message = _resolve(document, _resolve(document, batch)["properties"]["batch"]["items"])
    assert message["discriminator"]["propertyName"] == "type"
    assert set(message["discriminator"]["mapping"]) == {"track", "identify", "page", "screen", "group", "alias"}
    error = document["paths"]["/v1/batch"]["post"]["responses"]["401"]["content"]["application/json"]["schema"]
    assert _resolve(document, error)["required"] == ["success", "code", "message"]
    # The SDKs label their JSON in four ways, all read: a 415 is for none of them.
    unsupported = document["paths"]["/v1/batch"]["post"]["responses"]["415"]["description"]
    assert "application/x-www-form-urlencoded" in unsupported and "text/plain" in unsupported


def test_no_internal_docstring_is_published(document):
    texts = [operation.get("description", "") for _, operation in _operations(document)]
    texts += [schema.get("description", "") for schema in document["components"]["schemas"].values()]

    for text in texts:
        assert "validated data" not in text and "documentation of the response" not in text, text
        assert not text.startswith(("POST /", "GET /")), text
