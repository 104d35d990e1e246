"""Request body parsing: JSON via orjson, optional gzip, and the 1 MiB limit applied while reading."""

import json
import zlib

import orjson
from rest_framework.exceptions import ParseError
from rest_framework.parsers import BaseParser

from . import conf
from .exceptions import BodyTooLarge, UnsupportedContentEncoding

_READ_CHUNK = 64 * 1024


def read_limited(stream, limit: int) -> bytes:
    """Return the whole stream, or raise BodyTooLarge as soon as it passes `limit` bytes."""
    chunks = []
    total = 0
    while True:
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise BodyTooLarge()
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
        raise BodyTooLarge()
    if not decompressor.eof:
        raise ParseError("Body is not valid gzip: truncated stream.")
    return out


class EventJSONParser(BaseParser):
    """Parse `application/json`, gzip-compressed or not, refusing bodies over 1 MiB with 413."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        request = (parser_context or {}).get("request")
        meta = request.META if request is not None else {}
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > conf.MAX_BODY_BYTES:
            raise BodyTooLarge()
        body = read_limited(stream, conf.MAX_BODY_BYTES) if stream is not None else b""
        encoding = meta.get("HTTP_CONTENT_ENCODING", "").strip().lower()
        if encoding == "gzip":
            body = gunzip_limited(body, conf.MAX_BODY_BYTES)
        elif encoding not in ("", "identity"):
            raise UnsupportedContentEncoding(encoding)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from exc
        if might_repeat_keys(body, data):
            reject_duplicate_keys(body)
        return data


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ParseError(f'Malformed JSON: duplicate key "{duplicate[:100]}".')
    return result


_duplicate_checker = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def might_repeat_keys(body: bytes, data: object) -> bool:
    """Return False if no JSON object in `body` (already parsed into `data`) can repeat a key.

    Counts colons instead of parsing again: every key brings one colon outside the
    strings, and orjson writes the parsed data back with one per key it kept and
    every colon inside strings unescaped. So the body has more colons than that
    output (an escaped colon, \u003a, counted as one) only if a key was dropped as a
    repeat. A miscount can only answer True, which costs the exact check, never a
    missed duplicate.
    """
    try:
        kept = orjson.dumps(data).count(b":")
    except orjson.JSONEncodeError:
        return True
    written = body.count(b":") + body.count(b"\\u003a") + body.count(b"\\u003A")
    return written != kept


def reject_duplicate_keys(body: bytes) -> None:
    """Raise ParseError if any JSON object in `body` repeats a key.

    orjson (like most parsers) silently keeps the last value, so `{"price": "1",
    "price": "100"}` would be read differently by different consumers; refuse it.
    Called after orjson accepted the body, so the text is valid JSON and UTF-8.
    """
    try:
        _duplicate_checker.decode(body.decode())
    except RecursionError as exc:
        raise ParseError("Malformed JSON: nested too deeply.") from exc
