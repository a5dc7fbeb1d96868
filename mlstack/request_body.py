"""Read request bodies under one set of rules, for every service behind nginx.

A body that cannot be read is refused with a 400, 413 or 415 that names `(body)` and the rule it
breaks, before anything parses it deeply:

- size: at most the app's MAX_CONTENT_LENGTH (nginx enforces its own limit in front);
- compression: none (no Content-Encoding other than identity);
- media type: JSON endpoints read application/json, any `+json` type, text/plain, a form type
  (curl's default for `-d`) or no Content-Type; anything else, multipart included, is a 415;
- encoding: UTF-8 (a leading byte-order mark is skipped); other charsets are a 415, bytes that
  are not UTF-8 a 400, and so are escapes of lone surrogates (`"\\ud800"`), which no UTF-8 text holds;
- nesting: at most MAX_DEPTH levels of arrays and objects; the fast parser stops by itself at
  1,024 levels and the standard library's parser (the fallback) only runs on bodies counted on
  the bytes first, so nothing recurses deeply;
- numbers: integers of at most 4,300 digits (Python's own limit); NaN, Infinity and numbers too
  large for a double parse, and the endpoint's validation then names the field that holds them.

A key that appears twice in one object counts once, with its last value, as in every mainstream
JSON parser. Form endpoints (the web form) accept only the two form types.
"""

from __future__ import annotations

import json
import re
import uuid
from itertools import accumulate
from typing import Any

import orjson
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request

MAX_DEPTH = 32  # a record is 1 level deep, a batch 3: 32 leaves room and bounds every recursion
JSON_TYPES = frozenset({"", "application/json", "text/plain", "application/x-www-form-urlencoded"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
UTF8 = frozenset({"utf-8", "utf8"})
BOM = b"\xef\xbb\xbf"

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)  # a JSON string: brackets inside it do not nest
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class BodyRefused(Exception):
    """The body cannot be read; `fields` is {"(body)": the rule}, as every API error names its field."""

    def __init__(self, status: int, error: str, message: str, rule: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.fields = {"(body)": rule}


def nesting_depth(data: bytes, limit: int = MAX_DEPTH) -> int:
    """Return how deep arrays and objects nest in JSON text: exact above `limit`, a bound at or below it."""
    if (opened := data.count(b"[") + data.count(b"{")) <= limit:  # the common case: too few to nest deeper
        return opened
    brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKET)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Return True if arrays and objects nest more than `limit` levels deep in a parsed value (no recursion)."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        for child in node.values() if isinstance(node, dict) else node:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _too_deep_error(limit: int) -> BodyRefused:
    return BodyRefused(400, "invalid_json", f"the body nests arrays and objects more than {limit} levels deep",
                       f"must nest arrays and objects at most {limit} levels deep")


def _too_large(limit: int | None) -> BodyRefused:
    return BodyRefused(413, "payload_too_large", f"the request body is larger than {limit} bytes",
                       f"must be at most {limit} bytes")


def _raw(request: Request) -> bytes:
    limit = request.max_content_length
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge as exc:
        raise _too_large(limit) from exc
    if limit is not None and len(data) > limit:  # a chunked body has no Content-Length to check first
        raise _too_large(limit)
    return data


def check_encoding_headers(request: Request) -> None:
    coding = (request.headers.get("Content-Encoding") or "identity").strip().lower()
    if coding != "identity":
        raise BodyRefused(415, "unsupported_media_type", f"the body is sent with Content-Encoding {coding[:40]}",
                          "must not be compressed (send it without a Content-Encoding)")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() not in UTF8:
        raise BodyRefused(415, "unsupported_media_type", f"the body is declared as charset={charset[:40]}",
                          "must be UTF-8 (charset=utf-8 or no charset)")


def read_json(request: Request, *, max_depth: int = MAX_DEPTH) -> Any:
    """Return the body parsed as JSON, or raise BodyRefused naming the rule it breaks."""
    check_encoding_headers(request)
    mimetype = request.mimetype
    if mimetype not in JSON_TYPES and not mimetype.endswith("+json"):
        raise BodyRefused(415, "unsupported_media_type", f"this endpoint reads JSON; the body is sent as {mimetype[:60]}",
                          "must be JSON (Content-Type: application/json)")
    data = _raw(request)
    if data.startswith(BOM):
        data = data[len(BOM):]
    if not data.strip():
        raise BodyRefused(400, "invalid_body", "the request body is empty; send a JSON object",
                          "must be a JSON object")
    try:
        value = orjson.loads(data)  # bounded by itself: it refuses nesting beyond 1,024 levels, recursing no deeper
    except orjson.JSONDecodeError:
        pass  # refused by the fast parser: too deep, NaN, Infinity, a huge number, or something really wrong
    else:
        if too_deep(value, max_depth):
            raise _too_deep_error(max_depth)
        return value
    if nesting_depth(data, max_depth) > max_depth:  # before the standard library's recursive parser sees it
        raise _too_deep_error(max_depth)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyRefused(400, "invalid_encoding", f"the body is not UTF-8 text (byte {exc.start} is not valid)",
                          "must be UTF-8 text") from exc
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BodyRefused(400, "invalid_json",
                          f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                          "must be valid JSON") from exc
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise BodyRefused(400, "invalid_json", f"the request body cannot be read as JSON: {str(exc)[:120]}",
                          "must hold integers of at most 4300 digits") from exc
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BodyRefused(400, "invalid_encoding", "a string in the body escapes a lone surrogate (\\ud800-\\udfff)",
                          "must be UTF-8 text (no lone surrogate escapes)") from exc
    return value


def require_form(request: Request) -> None:
    """Refuse a body that is not a form (the web form's endpoints), before Werkzeug parses it."""
    check_encoding_headers(request)
    if request.mimetype not in FORM_TYPES:
        shown = request.mimetype[:60] or "no Content-Type"
        raise BodyRefused(415, "unsupported_media_type", f"this page reads a submitted form; the body is sent as {shown}",
                          "must be a form (application/x-www-form-urlencoded or multipart/form-data)")
    if request.mimetype == "multipart/form-data" and not request.mimetype_params.get("boundary"):
        raise BodyRefused(400, "invalid_body", "the multipart body declares no boundary",
                          "must be a form (multipart/form-data needs a boundary parameter)")
    limit = request.max_content_length
    if limit is not None and request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)


def request_id(header: str | None) -> str:
    """Return the caller's X-Request-Id if it is a short token (nginx sends one), else a new one."""
    if header and _REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex
