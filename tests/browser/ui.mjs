// Browser scenarios of the flowhost web UI, in headless Chromium (Debian's
// `chromium`) driven by playwright-core. tests/e2e/ui.rs starts a server
// and runs: node ui.mjs SCENARIO BASE_URL SHOTS_DIR [ARGS...]
// Each scenario prints `ok SCENARIO ...` and saves SHOTS_DIR/SCENARIO.png,
// or prints `FAIL ...` and exits 1.

import { chromium } from "playwright-core";

const [scenario, base, shots, ...args] = process.argv.slice(2);
const TIMEOUT = 15000;

function check(cond, what) {
  if (!cond) throw new Error(what);
}

async function api(method, path, body) {
  const r = await fetch(base + path, { method, body, headers: body ? { "content-type": "application/json" } : {} });
  const json = await r.json();
  check(r.ok, `${method} ${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

// Marks the page; a reload would lose the mark.
const mark = (page) => page.evaluate(() => { window.__unreloaded = true; });
const unreloaded = (page) => page.evaluate(() => window.__unreloaded === true);
const ready = (page) => page.waitForSelector("html[data-ready=true]", { timeout: TIMEOUT });
const status = (page, word) =>
  page.waitForSelector(`[data-testid=run-status][data-status=${word}]`, { timeout: TIMEOUT });
const text = (page, sel) => page.locator(sel).first().textContent();

const scenarios = {
  // A server with a token: the UI asks for it, the API answers 401 without
  // it, a wrong token is refused, the right one opens the runs.
  async login(page, [token]) {
    const api = await fetch(`${base}/runs`);
    check(api.status === 401, `GET /runs without the token: ${api.status}`);
    const body = await api.json();
    check(body.error && body.error.kind === "unauthorized", `401 body: ${JSON.stringify(body)}`);
    await page.goto(`${base}/ui/runs`);
    await page.waitForURL(/\/ui\/login/, { timeout: TIMEOUT });
    await page.fill("input[name=token]", "not-the-token");
    await page.click("button[type=submit]");
    await page.waitForSelector("input[name=token]", { timeout: TIMEOUT });
    check(page.url().includes("/ui/login"), `a wrong token stays on the form: ${page.url()}`);
    const shown = await page.content();
    check(!shown.includes("not-the-token"), "the form never shows what was typed");
    await page.fill("input[name=token]", token);
    await page.click("button[type=submit]");
    await page.waitForURL(/\/ui\/$/, { timeout: TIMEOUT });
    await page.goto(`${base}/ui/runs`);
    await ready(page);
    await page.waitForSelector("table[data-testid=runs]", { timeout: TIMEOUT });
    // The session cookie opens the API to the page, not to other sites.
    const inPage = await page.evaluate(async () => (await fetch("/runs")).status);
    check(inPage === 200, `GET /runs from the signed-in page: ${inPage}`);
    return "asked for the token, refused a wrong one, opened with the right one";
  },

  // Start a run from the flow page (the schema refuses a bad input first)
  // and watch it finish without a reload.
  async "start-live"(page) {
    await page.goto(`${base}/ui/flows/hello`);
    await ready(page);
    await page.fill("[data-testid=start-input]", '{"name": 5}');
    await page.click("[data-action=start]");
    await page.waitForSelector("[data-testid=input-errors] li", { timeout: TIMEOUT });
    const errors = await text(page, "[data-testid=input-errors]");
    check(errors.includes("input/name"), `the field error names input/name: ${errors}`);
    check(page.url().endsWith("/ui/flows/hello"), "a refused input stays on the flow page");
    await page.fill("[data-testid=start-input]", '{"name": "Ada"}');
    await page.click("[data-action=start]");
    await page.waitForURL(/\/ui\/runs\/[^/]+$/, { timeout: TIMEOUT });
    await ready(page);
    const before = await page.getAttribute("[data-testid=run-status]", "data-status");
    await mark(page);
    await status(page, "succeeded");
    check(await unreloaded(page), "the status changed without a reload");
    await page.waitForSelector("[data-testid=timeline] [data-step-path=pause]", { timeout: TIMEOUT });
    return `was ${before}, then succeeded live`;
  },

  // The runs list shows a new run and its status changes without a reload.
  async "runs-live"(page) {
    await page.goto(`${base}/ui/runs`);
    await ready(page);
    await page.waitForTimeout(500);
    await mark(page);
    const { run_id } = await api("POST", "/flows/hello/runs?wait=false", '{"name": "Bo"}');
    await page.waitForSelector(`table[data-testid=runs] tr[data-run-id="${run_id}"]`, { timeout: TIMEOUT });
    await page.waitForSelector(`tr[data-run-id="${run_id}"][data-status=succeeded]`, { timeout: TIMEOUT });
    check(await unreloaded(page), "the row appeared without a reload");
    return `row ${run_id} appeared and turned succeeded live`;
  },

  // A failed run shows its failing step's error and logs; a logged
  // `<script>` is text and runs nothing.
  async failed(page, [id]) {
    await page.goto(`${base}/ui/runs/${id}`);
    await ready(page);
    await status(page, "failed");
    const detail = page.locator("[data-testid=step-detail]:visible");
    check((await detail.count()) === 1, "one step detail shows");
    const error = await detail.locator("[data-testid=step-error]").textContent();
    check(error.includes("invalid-input") && error.includes("the parcel is lost"), `the step error: ${error}`);
    const logs = await detail.locator("[data-testid=step-logs]").textContent();
    check(logs.includes("<script>window.__xss = 1</script>"), `the log line as text: ${logs}`);
    check((await page.locator("[data-testid=step-logs] script").count()) === 0, "no script element in the logs");
    check((await page.evaluate(() => window.__xss)) === undefined, "the logged script did not run");
    return "error, logs and the <script> line shown as text";
  },

  // Cancel a running run from its page.
  async cancel(page) {
    const { run_id } = await api("POST", "/flows/slow/runs?wait=false", "{}");
    await page.goto(`${base}/ui/runs/${run_id}`);
    await ready(page);
    await status(page, "running").catch(() => status(page, "queued"));
    await mark(page);
    await page.click("[data-action=cancel]");
    await status(page, "cancelled");
    check(await unreloaded(page), "the status changed without a reload");
    return `run ${run_id} cancelled`;
  },

  // Rerun from a step with an edited input: invalid JSON is refused before
  // sending; the new run succeeds.
  async "rerun-from"(page, [id]) {
    await page.goto(`${base}/ui/runs/${id}`);
    await ready(page);
    await status(page, "failed");
    await page.click("[data-testid=timeline] [data-step-path=validate] [data-select]");
    const detail = page.locator("[data-testid=step-detail]:visible");
    const input = await detail.locator("[data-testid=step-input]").textContent();
    check(input.includes("customer"), `the step's recorded input: ${input}`);
    await detail.locator("[data-action=rerun-from]").click();
    const editor = page.locator("[data-testid=rerun-input]");
    check((await editor.inputValue()).includes('"customer": ""'), "the editor holds the step's input");
    await editor.fill('{"id": "A-1", "customer": ');
    await page.click("[data-action=rerun-submit]");
    const refused = await text(page, "[data-testid=rerun-error]");
    check(refused.includes("Not valid JSON"), `invalid JSON refused: ${refused}`);
    check(page.url().endsWith(id), "nothing was sent");
    await editor.fill(JSON.stringify({ id: "A-1", customer: "Ada", items: [{ sku: "pen", qty: 2, price: 1.5 }] }));
    await page.click("[data-action=rerun-submit]");
    await page.waitForURL((u) => !u.toString().endsWith(id), { timeout: TIMEOUT });
    await ready(page);
    await status(page, "succeeded");
    const from = await text(page, ".run-head .meta");
    check(from.includes("rerun of") && from.includes("validate"), `the new run names its origin: ${from}`);
    return `new run ${page.url().split("/").pop()} succeeded`;
  },

  // A 1,000-item run's page: interactive (script ready, a step selectable)
  // within a second.
  async items(page, [id]) {
    const t0 = Date.now();
    await page.goto(`${base}/ui/runs/${id}`, { waitUntil: "domcontentloaded" });
    await ready(page);
    const rows = page.locator("[data-testid=timeline] [data-step-path] [data-select]");
    await rows.nth(1).click();
    await page.waitForSelector("[data-testid=step-detail]:visible", { timeout: TIMEOUT });
    const ms = Date.now() - t0;
    const drawn = await page.locator("[data-testid=timeline] [data-step-path]").count();
    const summary = await text(page, "[data-testid=items-summary]");
    check(drawn < 100, `items aggregated: ${drawn} rows drawn`);
    check(summary.includes("1,000") || summary.includes("more items"), `the summary: ${summary}`);
    return `interactive in ${ms} ms (${drawn} rows drawn)`;
  },
};

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let code = 0;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  const run = scenarios[scenario];
  check(run, `no scenario ${scenario}`);
  const said = await run(page, args);
  await page.screenshot({ path: `${shots}/${scenario}.png`, fullPage: true });
  check(problems.length === 0, `script errors: ${problems.join("; ")}`);
  console.log(`ok ${scenario}: ${said}`);
} catch (e) {
  console.log(`FAIL ${scenario}: ${e.message}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
