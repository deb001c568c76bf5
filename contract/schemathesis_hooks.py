"""Schemathesis hooks for `scripts/contract fuzz`.

bcrypt reads at most 72 bytes, so the server refuses a password of more than
72 bytes of UTF-8 (it never truncates one silently). The spec says so in the
password's description and bounds it with `maxLength: 72`, but JSON Schema
counts characters, not bytes: 72 non-ASCII characters are schema-valid and
still too long. This hook drops exactly those generated bodies, whose
password is within `maxLength` yet over 72 bytes, so that a "schema-valid"
case really is valid. Nothing else is filtered.
"""

import schemathesis
from schemathesis.core.parameters import ParameterLocation

MAX_PASSWORD_BYTES = 72


@schemathesis.hook
def filter_body(context, body):
    if not isinstance(body, dict):
        return True
    password = body.get("password")
    if not isinstance(password, str):
        return True
    within_max_length = len(password) <= MAX_PASSWORD_BYTES
    over_byte_limit = len(password.encode("utf-8", "surrogatepass")) > MAX_PASSWORD_BYTES
    return not (within_max_length and over_byte_limit)


@schemathesis.hook
def filter_failure(context, failure, case, response):
    """Drops one false alarm of Schemathesis's own, and nothing else.

    Its coverage phase cannot make a valid value for a header whose pattern
    needs characters other than letters and digits (it narrows header strings
    to those), and an entity tag in If-Match or If-None-Match needs quotes.
    It then builds its "default positive test" around a negative value for
    that header while still calling the case positive, and reports the
    server's correct 400 as "schema-valid request rejected" (ST202). Such a
    case is recognisable: its own metadata marks the header component as
    generated in negative mode. Every other failure stands.
    """
    negative_header = case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER)
    return not (failure.code == "ST202" and negative_header)
