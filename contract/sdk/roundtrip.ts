// A round trip through the TypeScript client generated from openapi.yaml
// (openapi-typescript types, openapi-fetch client), type-checked by tsc:
// create, get, list with paging, replace, patch, delete, the typed errors
// for a 409 and a 404, an import of a user with a passlib hash who then
// verifies, a disabled user's 403, a lockout's 429 and its clearing, and
// finding users by prefix, newest first, with metadata and external ids.
//
// Usage: node roundtrip.js BASE_URL API_KEY LEGACY_HASH
// LEGACY_HASH is passlib's pbkdf2_sha256 hash of "Legacy@123".
import createClient from "openapi-fetch";

import type { components, paths } from "./schema.js";

type User = components["schemas"]["User"];
type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];

const [baseUrl, apiKey, legacyHash] = process.argv.slice(2);
if (!baseUrl || !apiKey || !legacyHash) {
  throw new Error("usage: node roundtrip.js BASE_URL API_KEY LEGACY_HASH");
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) {
    throw new Error(`TypeScript SDK round trip failed: ${what}`);
  }
}

const client = createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });
const run = Math.random().toString(16).slice(2, 10);

const created: User[] = [];
for (let i = 0; i < 3; i++) {
  const { data, response } = await client.POST("/user", {
    body: { name: `SDK ${run} ${i}`, email: `ts-${run}-${i}@example.com`, password: "Password@123" },
  });
  check(response.status === 201 && data !== undefined, `create answered ${response.status}`);
  created.push(data.data);
}
const [first] = created;
check(first !== undefined, "a user was created");

const got = await client.GET("/user/{id}", { params: { path: { id: first.id } } });
check(got.data?.data.email === first.email, "get");

const seen: string[] = [];
let after: string | undefined;
do {
  const query: { limit: number; after?: string } = after === undefined ? { limit: 2 } : { limit: 2, after };
  const page = await client.GET("/user", { params: { query } });
  check(page.data !== undefined, "list");
  seen.push(...page.data.data.map((user) => user.id));
  after = page.data.page.next;
} while (after !== undefined);
check(created.every((user) => seen.includes(user.id)), "paging visits every created user");
check(new Set(seen).size === seen.length, "paging visits each user once");

const replaced = await client.PUT("/user/{id}", {
  params: { path: { id: first.id } },
  body: { name: `Replaced ${run}`, email: first.email },
});
check(replaced.data?.data.name === `Replaced ${run}`, "replace");
const version: number = replaced.data.data.version;

const patched = await client.PATCH("/user/{id}", {
  params: { path: { id: first.id }, header: { "If-Match": `"${version}"` } },
  body: { name: `Patched ${run}` },
});
check(patched.data?.data.version === version + 1, "patch with If-Match");

const duplicate = await client.POST("/user", {
  body: { name: "Twin", email: first.email.toUpperCase(), password: "Password@123" },
});
const conflict: ErrorEnvelope | undefined = duplicate.error;
check(duplicate.response.status === 409 && conflict?.error === "email_taken", "409 is email_taken");

const deleted = await client.DELETE("/user/{id}", { params: { path: { id: first.id } } });
check(deleted.response.status === 204, `delete answered ${deleted.response.status}`);

const missing = await client.GET("/user/{id}", { params: { path: { id: first.id } } });
const notFound: ErrorEnvelope | undefined = missing.error;
check(missing.response.status === 404 && notFound?.error === "not_found", "404 is not_found");

const imported = await client.POST("/user/import", {
  body: {
    users: [
      { name: `Legacy ${run}`, email: `ts-legacy-${run}@example.com`, password_hash: legacyHash, ref: "legacy" },
      { name: "Broken", email: "not-an-email", password: "Password@123" },
    ],
  },
});
check(imported.data !== undefined, `import answered ${imported.response.status}`);
const [legacy, broken] = imported.data.data.results;
check(legacy?.status === "created" && legacy.ref === "legacy", "the imported user");
check(broken?.error === "validation_failed" && broken.details?.[0]?.field === "email", "the failed item");
const verified = await client.POST("/user/verify", {
  body: { email: `ts-legacy-${run}@example.com`, password: "Legacy@123" },
});
check(verified.data?.data.id === legacy.id, "the imported user verifies");

const offEmail = `ts-off-${run}@example.com`;
const off = await client.POST("/user", {
  body: { name: "Off", email: offEmail, password: "Password@123", disabled: true },
});
check(off.data?.data.disabled === true && off.data.data.last_verified_at === null, "create disabled");
const refused = await client.POST("/user/verify", { body: { email: offEmail, password: "Password@123" } });
check(refused.response.status === 403 && refused.error?.error === "user_disabled", "403 user_disabled");
for (let i = 0; i < 10; i++) {
  await client.POST("/user/verify", { body: { email: offEmail, password: "Wrong@12345" } });
}
const locked = await client.POST("/user/verify", { body: { email: offEmail, password: "Password@123" } });
check(locked.response.status === 429 && locked.error?.error === "too_many_failures", "429 too_many_failures");
const cleared = await client.DELETE("/user/{id}/lockout", { params: { path: { id: off.data.data.id } } });
check(cleared.response.status === 204, `clearing answered ${cleared.response.status}`);
await client.PATCH("/user/{id}", { params: { path: { id: off.data.data.id } }, body: { disabled: false } });
const on = await client.POST("/user/verify", { body: { email: offEmail, password: "Password@123" } });
check(typeof on.data?.data.last_verified_at === "string", "verified once enabled");

const findable: string[] = [];
for (let i = 0; i < 3; i++) {
  const made = await client.POST("/user", {
    body: {
      name: `Findable ${run} ${i}`,
      email: `ts-find-${run}-${i}@example.com`,
      password: "Password@123",
      metadata: { plan: "pro", rank: i },
      external_id: `ts-ext-${run}-${i}`,
    },
  });
  check(made.data?.data.metadata["rank"] === i, "metadata on create");
  check(made.data.data.external_id === `ts-ext-${run}-${i}`, "external_id on create");
  findable.push(made.data.data.id);
}
const newest = await client.GET("/user", {
  params: { query: { q: `findable ${run}`, sort: "-created", include_total: true } },
});
check(
  JSON.stringify(newest.data?.data.map((user) => user.id)) === JSON.stringify([...findable].reverse()),
  "q finds them, newest first",
);
check(newest.data?.page.total === 3, "include_total counts");
const byExternal = await client.GET("/user", { params: { query: { external_id: `ts-ext-${run}-1` } } });
check(byExternal.data?.data[0]?.id === findable[1], "external_id finds one");
const merged = await client.PATCH("/user/{id}", {
  params: { path: { id: findable[0] ?? "" } },
  body: { metadata: { rank: null, tier: "gold" } },
});
check(
  JSON.stringify(merged.data?.data.metadata) === JSON.stringify({ plan: "pro", tier: "gold" }),
  "metadata merges",
);

console.log(
  `TypeScript SDK round trip ok: ${created.length} created, ${seen.length} listed, replaced, patched, 409, deleted, 404, imported, verified, 403, 429, cleared, searched`,
);
