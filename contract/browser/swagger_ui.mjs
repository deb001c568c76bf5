// Swagger UI at /docs in headless Chromium, driven by Playwright: every
// operation of the spec is listed, "Authorize" takes the API key, and "Try it
// out" on POST /user creates a user and shows the 201. Saves a screenshot.
//
// Usage: node swagger_ui.mjs BASE_URL API_KEY SCREENSHOT_PATH
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { chromium } from "playwright-core";

const [baseUrl, apiKey, screenshot] = process.argv.slice(2);
if (!baseUrl || !apiKey || !screenshot) {
  throw new Error("usage: node swagger_ui.mjs BASE_URL API_KEY SCREENSHOT_PATH");
}

function check(condition, what) {
  if (!condition) {
    throw new Error(`Swagger UI check failed: ${what}`);
  }
}

const profile = mkdtempSync(join(tmpdir(), "user-api-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
  ],
  viewport: { width: 1400, height: 1000 },
});

try {
  const page = await context.newPage();
  await page.goto(`${baseUrl}/docs`);
  await page.waitForSelector(".opblock");

  // Every operation in the spec is listed.
  const spec = await (await fetch(`${baseUrl}/openapi.json`)).json();
  const expected = Object.entries(spec.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`),
  );
  const listed = await page.$$eval(".opblock", (blocks) =>
    blocks.map((block) => {
      const method = block.querySelector(".opblock-summary-method")?.textContent?.trim();
      const path = block.querySelector(".opblock-summary-path")?.getAttribute("data-path");
      return `${method} ${path}`;
    }),
  );
  for (const operation of expected) {
    check(listed.includes(operation), `${operation} is not listed (listed: ${listed.join(", ")})`);
  }

  // Authorize with the API key.
  await page.click(".auth-wrapper button.authorize");
  const dialog = page.locator(".modal-ux");
  await dialog.locator("input").first().fill(apiKey);
  await dialog.locator("button.authorize").click();
  await dialog.locator("button.btn-done").click();

  // Try it out: create a user.
  const email = `swagger-${Date.now()}@example.com`;
  const create = page.locator("#operations-Users-createUser");
  await create.locator(".opblock-summary").click();
  await create.locator("button.try-out__btn").click();
  await create
    .locator("textarea.body-param__text")
    .fill(JSON.stringify({ name: "Swagger UI", email, password: "Password@123" }, null, 2));
  await create.locator("button.execute").click();
  const live = create.locator(".live-responses-table tbody tr.response").first();
  const status = live.locator(".response-col_status");
  await status.waitFor();
  const code = (await status.textContent())?.trim() ?? "";
  check(code.startsWith("201"), `Try it out answered ${code}, not 201`);
  const shown = (await live.locator(".response-col_description").textContent()) ?? "";
  check(shown.includes(email), "the 201 body shown does not carry the new user");
  check(!shown.includes("Password@123"), "the page shows the password");

  await create.scrollIntoViewIfNeeded();
  await create.screenshot({ path: screenshot });
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-full.png"), fullPage: true });
  console.log(`Swagger UI ok: ${expected.length} operations listed, authorized, created ${email} (201); screenshot ${screenshot}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
