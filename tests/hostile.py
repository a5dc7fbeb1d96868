"""Hostile request bodies: shapes, depths, sizes, numbers, encodings, keys and media types no client should send.

`cases(targets, max_body)` yields (name, method, path, headers, body) for every target endpoint;
the tests send them to test clients, to a slot over HTTP and through nginx, and require an answer
below 500 that, when it refuses the body, names `(body)` or a field and the rule it broke.
"""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass

RECORD = {"longitude": -122.23, "latitude": 37.88, "housing_median_age": 41, "total_rooms": 880,
          "total_bedrooms": 129, "population": 322, "households": 126, "median_income": 8.3252,
          "ocean_proximity": "NEAR BAY"}
FEEDBACK = {"prediction_id": "0" * 48, "actual": 250000.0}


@dataclass(frozen=True)
class Target:
    """An endpoint and a body it accepts, for generators that break that body."""

    path: str
    valid: object
    form: bool = False  # the web form's endpoints read forms, not JSON


SLOT = (Target("/predict", RECORD), Target("/predict/batch", {"records": [RECORD, RECORD]}),
        Target("/feedback", FEEDBACK))
FRONTEND = (Target("/predict", RECORD, form=True), Target("/feedback", FEEDBACK, form=True))
SINK = (Target("/hooks/local", {"text": "hello"}),)


def _nest(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + "1" + close * depth).encode()


def _nest_objects(depth: int) -> bytes:
    return ('{"a":' * depth + "1" + "}" * depth).encode()


def json_bodies(valid: object, max_body: int, seed: int = 7) -> Iterator[tuple[str, dict[str, str], bytes]]:
    """Yield (name, headers, body): bodies a JSON endpoint must refuse or read without a 5xx."""
    rng = random.Random(seed)
    as_json = {"Content-Type": "application/json"}
    text = json.dumps(valid)
    for depth in (33, 200, 1_000, 5_000, 50_000):
        yield f"arrays nested {depth} deep", as_json, _nest(depth)
        yield f"objects nested {depth} deep", as_json, _nest_objects(depth)
    yield "nesting inside a valid record", as_json, text[:-1].encode() + b', "x": ' + _nest(3_000) + b"}"
    yield "brackets inside strings", as_json, json.dumps({"a": "[" * 5_000}).encode()
    yield "unterminated nesting", as_json, b"[" * 3_000
    for number in ("1e400", "-1e400", "1" * 5_000, "1" * 400, "0." + "0" * 5_000 + "1", "NaN", "Infinity",
                   "-Infinity", "1e-400", "123456789012345678901234567890"):
        body = {**valid, next(iter(valid)): "§"} if isinstance(valid, dict) else {}
        yield f"number {number[:20]}", as_json, json.dumps(body, ensure_ascii=False).replace('"§"', number).encode()
    yield "duplicate keys", as_json, (text[:-1] + ", " + text[1:]).encode()
    yield "a key repeated 10,000 times", as_json, ("{" + ",".join(['"a": 1'] * 10_000) + "}").encode()
    yield "empty", as_json, b""
    yield "whitespace only", as_json, b" \n\t "
    yield "null", as_json, b"null"
    yield "a bare string", as_json, b'"hello"'
    yield "a bare number", as_json, b"42"
    yield "an array of records", as_json, json.dumps([valid]).encode()
    yield "truncated", as_json, text[: len(text) // 2].encode()
    yield "trailing garbage", as_json, text.encode() + b"}}"
    yield "two documents", as_json, (text + text).encode()
    yield "UTF-8 byte-order mark", as_json, b"\xef\xbb\xbf" + text.encode()
    yield "UTF-16", as_json, text.encode("utf-16")
    yield "UTF-32", as_json, text.encode("utf-32")
    yield "Latin-1 bytes", as_json, text.replace("}", ', "x": "caf\xe9"}').encode("latin-1")
    yield "invalid UTF-8", as_json, text.encode()[:-1] + b"\xff\xfe}"
    yield "an overlong UTF-8 encoding", as_json, text.encode()[:-1] + b', "x": "\xc0\xaf"}'
    yield "a lone surrogate escape", as_json, text.replace("}", ', "x": "\\ud800"}').encode()
    yield "a lone surrogate in a value", as_json, json.dumps({k: "\\udfff" for k in valid} if isinstance(valid, dict)
                                                             else {}).replace("\\\\", "\\").encode()
    yield "NaN with a lone surrogate", as_json, text.replace("}", ', "x": NaN, "y": "\\udc00"}').encode()
    yield "a NUL escape", as_json, text.replace("}", ', "x": "\\u0000"}').encode()
    yield "a raw NUL byte", as_json, text.encode()[:-1] + b', "x": "\x00"}'
    yield "control characters", as_json, text.replace("}", ', "x": "\x01\x02\x1f"}').encode()
    yield "charset utf-16 declared", {"Content-Type": "application/json; charset=utf-16"}, text.encode("utf-16")
    yield "charset latin-1 declared", {"Content-Type": "application/json; charset=latin-1"}, text.encode()
    yield "gzip body", {**as_json, "Content-Encoding": "gzip"}, gzip.compress(text.encode())
    yield "unknown Content-Encoding", {**as_json, "Content-Encoding": "br"}, text.encode()
    yield "no Content-Type", {}, text.encode()
    yield "text/plain", {"Content-Type": "text/plain"}, text.encode()
    yield "form-urlencoded (curl -d)", {"Content-Type": "application/x-www-form-urlencoded"}, text.encode()
    yield "multipart", {"Content-Type": "multipart/form-data; boundary=x"}, (
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.json"\r\n\r\n' + text.encode() + b"\r\n--x--\r\n")
    yield "multipart without a boundary", {"Content-Type": "multipart/form-data"}, text.encode()
    yield "multipart without a file part", {"Content-Type": "multipart/form-data; boundary=x"}, (
        b'--x\r\nContent-Disposition: form-data; name="other"\r\n\r\nhello\r\n--x--\r\n')
    yield "XML", {"Content-Type": "application/xml"}, b"<record><longitude>1</longitude></record>"
    yield "a malformed Content-Type", {"Content-Type": ";;;=="}, text.encode()
    yield "a vendor +json type", {"Content-Type": "application/vnd.mlstack+json"}, text.encode()
    yield "CSV declared as JSON", as_json, b"longitude,latitude\n1,2\n"
    yield "JSON declared as CSV", {"Content-Type": "text/csv"}, text.encode()
    yield "CSV in Latin-1", {"Content-Type": "text/csv"}, "ocean_proximity\nCAF\xc9\n".encode("latin-1")
    yield "CSV with a NUL", {"Content-Type": "text/csv"}, b"longitude\n1\x00\n"
    yield "CSV with a huge field", {"Content-Type": "text/csv"}, b"longitude\n" + b"9" * 200_000 + b"\n"
    yield "CSV with 5,000 columns", {"Content-Type": "text/csv"}, (",".join(f"c{i}" for i in range(5_000)) + "\n").encode()
    yield "random bytes", as_json, bytes(rng.getrandbits(8) for _ in range(4_096))
    yield "long string value", as_json, json.dumps({"a": "x" * (max_body // 2)}).encode()
    yield "a body over the limit", as_json, b'{"a": "' + b"x" * (max_body + 1_024) + b'"}'
    yield "many small objects", as_json, json.dumps({"records": [{} for _ in range(50_000)]}).encode()


def form_bodies(valid: object, max_body: int) -> Iterator[tuple[str, dict[str, str], bytes]]:
    """Yield (name, headers, body) for the web form's endpoints, which read forms only."""
    from urllib.parse import urlencode

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    values = {k: str(v) for k, v in valid.items()} if isinstance(valid, dict) else {}
    yield "JSON to a form", {"Content-Type": "application/json"}, json.dumps(valid).encode()
    yield "no Content-Type", {}, urlencode(values).encode()
    yield "XML to a form", {"Content-Type": "application/xml"}, b"<a/>"
    yield "gzip form", {**form, "Content-Encoding": "gzip"}, gzip.compress(urlencode(values).encode())
    yield "charset utf-16 form", {"Content-Type": "application/x-www-form-urlencoded; charset=utf-16"}, b"a=1"
    yield "invalid percent escapes", form, b"a=%zz&b=%&c=%e9%ff&" + urlencode(values).encode()
    yield "invalid UTF-8 in a value", form, urlencode(values).encode() + b"&actual=%ff%fe"
    yield "full-width digits", form, urlencode({**values, "actual": "１２３"}).encode()
    yield "NUL in a value", form, urlencode({**values, "actual": "1\x00"}).encode()
    yield "a repeated field", form, (urlencode(values) + "&" + urlencode(values)).encode()
    yield "10,000 fields", form, "&".join(f"f{i}=1" for i in range(10_000)).encode()
    yield "a form over the limit", form, b"a=" + b"x" * (max_body + 1_024)
    yield "multipart without a boundary", {"Content-Type": "multipart/form-data"}, b"a=1"
    yield "multipart with 2,000 parts", {"Content-Type": "multipart/form-data; boundary=x"}, b"".join(
        b'--x\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n1\r\n' % i for i in range(2_000)) + b"--x--\r\n"
    yield "truncated multipart", {"Content-Type": "multipart/form-data; boundary=x"}, (
        b'--x\r\nContent-Disposition: form-data; name="a"\r\n\r\n1')


def cases(targets: tuple[Target, ...], max_body: int) -> Iterator[tuple[str, str, dict[str, str], bytes]]:
    """Yield (name, path, headers, body) for every hostile body on every target (all POSTs)."""
    for target in targets:
        bodies = form_bodies(target.valid, max_body) if target.form else json_bodies(target.valid, max_body)
        for name, headers, body in bodies:
            yield f"{target.path}: {name}", target.path, headers, body


def problem(status: int, content_type: str, body: bytes) -> str | None:
    """Return what is wrong with an answer to a hostile body, or None if it is right."""
    if status >= 500:
        return f"HTTP {status}: {body[:200]!r}"
    if 400 <= status < 500 and status not in (404, 405, 429):
        text = body.decode("utf-8", "replace")
        if "json" in content_type:
            try:
                data = json.loads(text)
            except ValueError:
                return f"HTTP {status} with a body that is not JSON: {text[:120]!r}"
            fields = data.get("fields") if isinstance(data, dict) else None
            if not (isinstance(fields, dict) and fields and all(isinstance(v, str) and v for v in fields.values())):
                return f"HTTP {status} without a field and its rule: {text[:200]!r}"
        elif not any(rule in text for rule in ("(body)", "must", "is required")):
            return f"HTTP {status} without the rule: {text[:200]!r}"
    return None
