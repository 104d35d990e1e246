"""What one invalid custom event costs to answer, before and after the bounded error report, side by side.

Usage: .venv/bin/python bench/schema_errors.py [--items 6000] [--enum 5000] [--repeat 3]

A schema whose array items must be one of --enum item ids, and one event (about 30 KB,
just under the 32 KB event limit) whose --items items are all unknown: one error each.
- before: every error built by jsonschema-rs's iter_errors (as CompiledSchema.errors did),
- after: CompiledSchema.errors today (at most MAX_ERRORS errors, short messages).
Each is timed (best of --repeat) and its Python peak memory measured with tracemalloc;
the process's peak RSS is printed at the end. Then a look-behind `pattern` on a
30,000-character string: the default (fancy-regex) engine before, refused at registration after.
"""

import argparse
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def old_errors(validator, properties) -> dict:
    """CompiledSchema.errors as it was: every error built before the first is read."""
    import jsonschema_rs

    from events_app.event_types.fields import nest_error

    if validator.is_valid(properties):
        return None
    errors: dict = {}
    for error in validator.iter_errors(properties):
        path = [str(part) for part in error.instance_path]
        if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.Required):
            path.append(str(error.kind.property))
        nest_error(errors, path, error.message)
    return errors


def measure(function, repeat: int) -> tuple[float, int, object]:
    """Return (best seconds, Python peak bytes of one run, the result)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    tracemalloc.start()
    try:
        result = function()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return best, peak, result


def count(errors) -> int:
    if isinstance(errors, dict):
        return sum(count(child) for child in errors.values())
    return len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=6_000)
    parser.add_argument("--enum", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ.update(
        DJANGO_SETTINGS_MODULE="tracking_project.settings",
        DJANGO_DEBUG="1",
        DATABASE_URL="sqlite:///:memory:",
        EVENTS_LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    import jsonschema_rs
    import orjson

    from events_app.event_types import custom

    schema = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"enum": [f"item_{i:05d}" for i in range(args.enum)]}}},
    }
    properties = {"items": list(range(args.items))}
    compiled = custom.CompiledSchema(version=1, validator=custom.compile_schema(schema))
    size = len(orjson.dumps(properties))

    after = measure(lambda: compiled.errors(properties), args.repeat)
    before = measure(lambda: old_errors(compiled.validator, properties), args.repeat)

    print(f"one event, {args.items:,} items not in an enum of {args.enum:,} ids, properties {size / 1024:.0f} KB")
    print(f"{'':<10} {'time':>10} {'py peak':>10} {'errors':>8} {'longest msg':>12}")
    for name, (seconds, peak, errors) in (("before", before), ("after", after)):
        longest = max(len(m) for m in _messages(errors))
        print(f"{name:<10} {seconds * 1000:8.1f} ms {peak / 1e6:7.1f} MB {count(errors):8,} {longest:12,}")

    text = "a" * 30_000 + "c"
    pattern = "(?<=a+)b"
    fancy = jsonschema_rs.Draft202012Validator({"pattern": pattern})
    started = time.perf_counter()
    fancy.is_valid(text)
    fancy_seconds = time.perf_counter() - started
    try:
        custom.compile_schema({"pattern": pattern})
        refused = "accepted (!)"
    except custom.InvalidSchemaError as exc:
        refused = f"refused at registration: {str(exc)[:60]}..."
    print(f"look-behind {pattern} on {len(text):,} characters: before {fancy_seconds * 1000:.0f} ms per event")
    print(f"                          after: {refused}")
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB (the 'before' run)")


def _messages(errors):
    if isinstance(errors, dict):
        return [m for child in errors.values() for m in _messages(child)]
    return list(errors)


if __name__ == "__main__":
    main()
