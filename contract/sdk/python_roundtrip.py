"""A round trip through the Python client generated from openapi.yaml by
openapi-python-client: create, get, list with paging, replace, patch,
delete, the typed errors for a 409 and a 404, an import of a user with a
passlib hash who then verifies, a disabled user's 403, a lockout's 429 and
its clearing, and finding users by prefix, newest first, with metadata and
external ids.

Usage: python python_roundtrip.py SDK_DIR BASE_URL API_KEY LEGACY_HASH
LEGACY_HASH is passlib's pbkdf2_sha256 hash of "Legacy@123".
"""

import sys
import uuid

sdk_dir, base_url, api_key, legacy_hash = sys.argv[1:5]
sys.path.insert(0, sdk_dir)

from user_api_client import AuthenticatedClient  # noqa: E402
from user_api_client.api.users import (  # noqa: E402
    clear_lockout,
    create_user,
    delete_user,
    get_user,
    import_users,
    list_users,
    patch_user,
    replace_user,
    verify_user,
)
from user_api_client.models import (  # noqa: E402
    CreateUserRequest,
    ErrorCode,
    ErrorEnvelope,
    ImportEnvelope,
    ImportRequest,
    ImportStatus,
    ImportUser,
    ListUsersSort,
    PatchUserRequest,
    ReplaceUserRequest,
    UserEnvelope,
    UserListEnvelope,
    VerifyRequest,
)


def check(condition, what):
    if not condition:
        raise SystemExit(f"python SDK round trip failed: {what}")


run = uuid.uuid4().hex[:8]
client = AuthenticatedClient(base_url=base_url, token=api_key)

# Create three users.
created = []
for i in range(3):
    response = create_user.sync_detailed(
        client=client,
        body=CreateUserRequest(
            name=f"SDK {run} {i}", email=f"py-{run}-{i}@example.com", password="Password@123"
        ),
    )
    check(response.status_code == 201, f"create answered {response.status_code}")
    check(isinstance(response.parsed, UserEnvelope), "create parses as UserEnvelope")
    created.append(response.parsed.data)

# Get one.
first = created[0]
fetched = get_user.sync(id=first.id, client=client)
check(isinstance(fetched, UserEnvelope) and fetched.data.email == first.email, "get")

# List, two at a time, following page.next until it ends.
seen = []
after = None
while True:
    page = list_users.sync(client=client, limit=2, after=after) if after else list_users.sync(client=client, limit=2)
    check(isinstance(page, UserListEnvelope), "list parses as UserListEnvelope")
    seen.extend(user.id for user in page.data)
    if not isinstance(page.page.next_, str):
        break
    after = page.page.next_
check(all(user.id in seen for user in created), "paging visits every created user")
check(len(seen) == len(set(seen)), "paging visits each user once")

# Replace, then patch with If-Match from the replace's version.
replaced = replace_user.sync(
    id=first.id,
    client=client,
    body=ReplaceUserRequest(name=f"Replaced {run}", email=first.email),
)
check(isinstance(replaced, UserEnvelope) and replaced.data.name == f"Replaced {run}", "replace")
patched = patch_user.sync(
    id=first.id,
    client=client,
    body=PatchUserRequest(name=f"Patched {run}"),
    if_match=f'"{replaced.data.version}"',
)
check(isinstance(patched, UserEnvelope) and patched.data.name == f"Patched {run}", "patch")
check(patched.data.version == replaced.data.version + 1, "patch moves the version")

# A taken email is a typed 409.
duplicate = create_user.sync(
    client=client,
    body=CreateUserRequest(name="Twin", email=first.email.upper(), password="Password@123"),
)
check(isinstance(duplicate, ErrorEnvelope), "409 parses as ErrorEnvelope")
check(duplicate.error == ErrorCode.EMAIL_TAKEN and duplicate.status_code == 409, "409 is email_taken")

# Delete, after which the user is a typed 404.
deleted = delete_user.sync_detailed(id=first.id, client=client)
check(deleted.status_code == 204, f"delete answered {deleted.status_code}")
missing = get_user.sync(id=first.id, client=client)
check(isinstance(missing, ErrorEnvelope), "404 parses as ErrorEnvelope")
check(missing.error == ErrorCode.NOT_FOUND and missing.status_code == 404, "404 is not_found")

# Import a user with a hash another system made, and one that fails alone.
imported = import_users.sync(
    client=client,
    body=ImportRequest(
        users=[
            ImportUser(
                name=f"Legacy {run}",
                email=f"py-legacy-{run}@example.com",
                password_hash=legacy_hash,
                ref="legacy",
            ),
            ImportUser(name="Broken", email="not-an-email", password="Password@123"),
        ]
    ),
)
check(isinstance(imported, ImportEnvelope), "import parses as ImportEnvelope")
check(imported.data.created == 1 and imported.data.failed == 1, "import counts")
legacy, broken = imported.data.results
check(legacy.status == ImportStatus.CREATED and legacy.ref == "legacy", "the imported user")
check(broken.error == ErrorCode.VALIDATION_FAILED and broken.details[0].field == "email", "the failed item")
verified = verify_user.sync(
    client=client,
    body=VerifyRequest(email=f"py-legacy-{run}@example.com", password="Legacy@123"),
)
check(isinstance(verified, UserEnvelope) and verified.data.id == legacy.id, "the imported user verifies")

# A disabled user's right password is a typed 403.
off_email = f"py-off-{run}@example.com"
off = create_user.sync(
    client=client,
    body=CreateUserRequest(name="Off", email=off_email, password="Password@123", disabled=True),
)
check(isinstance(off, UserEnvelope) and off.data.disabled is True, "create disabled")
check(off.data.last_verified_at is None, "never verified")
refused = verify_user.sync(client=client, body=VerifyRequest(email=off_email, password="Password@123"))
check(isinstance(refused, ErrorEnvelope) and refused.error == ErrorCode.USER_DISABLED, "403 user_disabled")

# Ten failures lock the email out (429); an administrator clears it.
for _ in range(10):
    verify_user.sync(client=client, body=VerifyRequest(email=off_email, password="Wrong@12345"))
locked = verify_user.sync_detailed(client=client, body=VerifyRequest(email=off_email, password="Password@123"))
check(locked.status_code == 429, f"the eleventh attempt answered {locked.status_code}")
check(locked.parsed.error == ErrorCode.TOO_MANY_FAILURES, "429 is too_many_failures")
cleared = clear_lockout.sync_detailed(id=off.data.id, client=client)
check(cleared.status_code == 204, f"clearing answered {cleared.status_code}")
patch_user.sync(id=off.data.id, client=client, body=PatchUserRequest(disabled=False))
on = verify_user.sync(client=client, body=VerifyRequest(email=off_email, password="Password@123"))
check(isinstance(on, UserEnvelope) and on.data.last_verified_at is not None, "verified once enabled")

# Metadata and an external id on create; q, sort=-created and external_id
# on list; a metadata merge on patch.
found_run = []
for i in range(3):
    made = create_user.sync(
        client=client,
        body=CreateUserRequest.from_dict({
            "name": f"Findable {run} {i}", "email": f"py-find-{run}-{i}@example.com",
            "password": "Password@123", "metadata": {"plan": "pro", "rank": i},
            "external_id": f"py-ext-{run}-{i}",
        }),
    )
    check(isinstance(made, UserEnvelope) and made.data.metadata["rank"] == i, "metadata on create")
    check(made.data.external_id == f"py-ext-{run}-{i}", "external_id on create")
    found_run.append(made.data.id)
newest = list_users.sync(client=client, q=f"findable {run}", sort=ListUsersSort.VALUE_1, include_total=True)
check(isinstance(newest, UserListEnvelope), "search parses")
check([user.id for user in newest.data] == list(reversed(found_run)), "q finds them, newest first")
check(newest.page.total == 3, "include_total counts")
by_external = list_users.sync(client=client, external_id=f"py-ext-{run}-1")
check([user.id for user in by_external.data] == [found_run[1]], "external_id finds one")
merged = patch_user.sync(
    id=found_run[0], client=client, body=PatchUserRequest.from_dict({"metadata": {"rank": None, "tier": "gold"}})
)
check(merged.data.metadata.to_dict() == {"plan": "pro", "tier": "gold"}, "metadata merges")

print(f"python SDK round trip ok: {len(created)} created, {len(seen)} listed, replaced, patched, 409, deleted, 404, imported, verified, 403, 429, cleared, searched")
