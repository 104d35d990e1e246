"""Request body parsing: JSON via orjson, optional gzip, and each endpoint's body limit applied while reading."""

import json
import re
import zlib

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from events_app import conf
from events_app.api.errors import BodyTooLarge, UnsupportedContentEncoding

_READ_CHUNK = 64 * 1024


def read_limited(stream, limit: int) -> bytes:
    """Return the whole stream, or raise BodyTooLarge as soon as it passes `limit` bytes."""
    chunks = []
    total = 0
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Return `data` decompressed, stopping as soon as the output would pass `limit` bytes.

    A gzip bomb expands a thousandfold; asking zlib for at most limit + 1 bytes means
    a bomb costs no more memory or time than one body at the limit.
    """
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ParseError(f"Body is not valid gzip: {exc}") from exc
    if len(out) > limit:
        raise BodyTooLarge(limit)
    if not decompressor.eof:
        raise ParseError("Body is not valid gzip: truncated stream.")
    return out


def body_limit(parser_context: dict | None) -> int:
    """Return the body limit of the view being parsed for: its `max_body_bytes`, else MAX_BODY_BYTES."""
    view = (parser_context or {}).get("view")
    return getattr(view, "max_body_bytes", conf.MAX_BODY_BYTES)


class EventJSONParser(BaseParser):
    """Parse `application/json`, gzip-compressed or not, refusing a body over the view's limit with 413.

    The limit (`max_body_bytes` of the view, 1 MiB by default) is checked against
    Content-Length, then while reading and while decompressing: an oversized body is
    refused before a byte of it is parsed.
    """

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        limit = body_limit(parser_context)
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            raise BodyTooLarge(limit)
        body = read_limited(stream, limit) if stream is not None else b""
        encoding = meta.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding == "gzip":
            body = gunzip_limited(body, limit)
        elif encoding not in ("", "identity"):
            raise UnsupportedContentEncoding(encoding)
        return parse_json(body)


def parse_json(body: bytes) -> object:
    """Return `body` parsed; raise ParseError if it is not JSON or an object in it repeats a key."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ParseError(f"Malformed JSON: {exc}") from exc
    if repeats_a_key(body, data):
        raise duplicate_key_error(body)
    return data


# The backslashes before "u003a" in a body: an escaped colon when their number is odd
# (an even number are escaped backslashes, and "u003a" is plain text).
_BACKSLASHES_BEFORE_U003A = re.compile(rb"(\\+)u003[aA]")


def repeats_a_key(body: bytes, data: object) -> bool:
    """Return True if an object in `body` (already parsed into `data`) repeats a key.

    Counts colons instead of parsing again: every key brings one colon outside the
    strings, and orjson writes the parsed data back with one per key it kept and
    every colon inside strings unescaped. The body's colons (escaped ones counted
    too) outnumber that output exactly when orjson dropped a key as a repeat, with
    its value. Costs a fraction of the parse's time, whatever the body holds.
    """
    try:
        kept = orjson.dumps(data).count(b":")
    except orjson.JSONEncodeError as exc:  # nested deeper than orjson writes (it reads deeper)
        raise ParseError("Malformed JSON: nested too deeply.") from exc
    written = body.count(b":")
    if b"\\u003" in body:
        if b"\\\\u003" in body:  # rare: tell escaped colons from escaped backslashes
            written += sum(len(run) & 1 for run in _BACKSLASHES_BEFORE_U003A.findall(body))
        else:
            written += body.count(b"\\u003a") + body.count(b"\\u003A")
    return written != kept


# Naming the repeated key takes the stdlib's parser, whose hook runs per object (up to
# ten times orjson's time); it reads this much of the body at most.
NAMING_PREFIX_BYTES = 64 * 1024


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ParseError(f'Malformed JSON: duplicate key "{duplicate[:100]}".')
    return result


_duplicate_checker = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def duplicate_key_error(body: bytes) -> ParseError:
    """Return the error refusing `body`, which repeats a key, naming the key if it is in the first 64 KiB.

    orjson (like most parsers) silently keeps the last value, so `{"price": "1",
    "price": "100"}` would be read differently by different consumers; refuse it.
    The stdlib's parser hooks each object as it closes, so on a body cut to its first
    NAMING_PREFIX_BYTES it finds any repeat in an object closed there before it stops
    at the cut; a repeat further on is refused without its name.
    """
    prefix = body[:NAMING_PREFIX_BYTES].decode("utf-8", "ignore")  # orjson checked the UTF-8
    try:
        _duplicate_checker.decode(prefix)
    except ParseError as named:
        return named
    except (ValueError, RecursionError):
        pass  # the cut (or nesting) stopped the parser first
    return ParseError("Malformed JSON: duplicate key (an object repeats a key).")
