"""Schemathesis hooks for `scripts/contract fuzz`.

Each hook teaches Schemathesis one thing the spec cannot say, and claims no
more than that one thing; every other failure stands.
"""

import json
import re
import unicodedata

import schemathesis
from schemathesis.core.parameters import ParameterLocation

MAX_PASSWORD_BYTES = 72

# `metadata`'s rules, as the field's description states them; OpenAPI 3.0
# cannot (it has no propertyNames).
METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
METADATA_MAX_BYTES = 4096
METADATA_MAX_DEPTH = 5
INT64 = range(-(2**63), 2**63)

# The operations whose body carries a new password under the policy.
PASSWORD_BODIES = {("POST", "/user"), ("PUT", "/user/{id}"), ("PATCH", "/user/{id}")}


def operation_key(context):
    operation = context.operation
    return (operation.method.upper(), operation.path) if operation else None


def password_fits(body):
    """bcrypt reads at most 72 bytes, so the server refuses a new password of
    more than 72 bytes of UTF-8 (it never truncates one silently). JSON Schema
    counts characters, not bytes: 72 non-ASCII characters are schema-valid
    and still too long."""
    password = body.get("password")
    if not isinstance(password, str):
        return True
    within_max_length = len(password) <= MAX_PASSWORD_BYTES
    over_byte_limit = len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES
    return not (within_max_length and over_byte_limit)


def metadata_value_fits(value, depth):
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return True
    if isinstance(value, int):
        return value in INT64
    if depth > METADATA_MAX_DEPTH:
        return False
    if isinstance(value, list):
        return all(metadata_value_fits(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and METADATA_KEY.fullmatch(key) and metadata_value_fits(item, depth + 1)
            for key, item in value.items()
        )
    return True


def metadata_fits(body):
    """`metadata` keys, depth, size and numbers, as described. A PATCH's
    `null` values remove keys; its merged result is the server's to judge,
    and the merge of a fitting patch into `{}`-sized data fits."""
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return True
    try:
        size = len(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    except (TypeError, ValueError, UnicodeEncodeError):
        return False
    return size <= METADATA_MAX_BYTES and metadata_value_fits(metadata, 1)


def invisible_beyond_bmp(name):
    """`name` refuses format characters (Unicode Cf) everywhere; the pattern
    lists those of the Basic Multilingual Plane, and the description names
    the few beyond it, which OpenAPI 3.0's regex dialect cannot."""
    return any(ord(c) > 0xFFFF and unicodedata.category(c) == "Cf" for c in name)


def name_fits(body):
    name = body.get("name")
    return not (isinstance(name, str) and invisible_beyond_bmp(name))


@schemathesis.hook
def filter_body(context, body):
    """Drops generated bodies that break a rule the spec states only in words,
    and only for the operations that set a password, a name and metadata
    (create, replace, patch); verify compares any attempt, and imports answer
    each item on its own."""
    if operation_key(context) not in PASSWORD_BODIES or not isinstance(body, dict):
        return True
    return password_fits(body) and metadata_fits(body) and name_fits(body)


# A schema-valid request that the server refuses because of what happened
# before it, not because of what it says: (status, error code, the header
# whose history refuses it).
STATEFUL_REFUSALS = [
    # The Idempotency-Key was used before with a different request.
    (422, "idempotency_key_reused", "Idempotency-Key"),
    # If-Match names a version the user is no longer at.
    (412, "precondition_failed", "If-Match"),
]


def error_body(response):
    try:
        body = response.json()
    except Exception:
        return {}
    return body if isinstance(body, dict) else {}


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops two kinds of "schema-valid request rejected" (ST202), exactly:

    1. A refusal in STATEFUL_REFUSALS, when the request carries the header
       whose history refuses it and the answer names that very error code.
    2. A false alarm of Schemathesis's coverage phase: it cannot make a valid
       value for a header whose pattern needs characters other than letters
       and digits, and an entity tag in If-Match or If-None-Match needs
       quotes. It builds its "default positive test" around a negative value
       for that header while calling the case positive. Dropped only when the
       case's own metadata marks its headers as negative and the answer is a
       400 whose `details` name If-Match or If-None-Match.
    """
    if failure.code != "ST202":
        return True
    body = error_body(response)
    headers = {name.lower() for name in (case.headers or {})}
    for status, code, header in STATEFUL_REFUSALS:
        if (
            response.status_code == status
            and body.get("error") == code
            and header.lower() in headers
        ):
            return False
    negative_header = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    named = {detail.get("field") for detail in body.get("details") or [] if isinstance(detail, dict)}
    if negative_header and response.status_code == 400 and named & {"If-Match", "If-None-Match"}:
        return False
    return True
