// Real-browser test of the first-superuser setup page (`/_/`, crates/api/src/assets/setup.html):
// headless system Chromium driven by puppeteer-core, against a fresh `pier serve`.
//
// Usage: node tests/pages/setup.mjs   (tests/pages/run.sh installs the packages first)
//
// Environment:
//   PIER_BIN      pier binary (default: target/debug/pier in the repo; never built here)
//   CHROMIUM_BIN  browser (default: /usr/bin/chromium, Debian's `chromium`; nothing is downloaded)
//   KEEP_DATA=1   keep the temporary folder (pier's data, its log, the screenshot)
//
// pier runs on SQLite in a temporary --dir with APP_ENV=development and no DATABASE_URL, so it
// starts with no superuser and prints the setup link. Prints `N passed, N failed` last and exits
// non-zero when a check fails.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';
import PocketBase from 'pocketbase';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');
const PIER = process.env.PIER_BIN || join(process.env.CARGO_TARGET_DIR || join(REPO, 'target'), 'debug/pier');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const KEEP = process.env.KEEP_DATA === '1';
const STEP_TIMEOUT = 10_000; // ms, for any one wait
const TOTAL_TIMEOUT = 60_000; // ms, for the whole run

const EMAIL = 'first-admin@example.com';
const PASSWORD = 'Setup-Pass-123';
const SECOND_EMAIL = 'second-admin@example.com';

const work = mkdtempSync(join(tmpdir(), 'pier-pages-'));
const logLines = [];
let server = null;
let browser = null;
let passed = 0;
let failed = 0;

const say = (msg) => console.log(msg);

async function check(name, fn) {
  try {
    await fn();
    passed += 1;
    say(`ok   ${name}`);
  } catch (err) {
    failed += 1;
    say(`FAIL ${name}: ${err && err.message ? err.message : err}`);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// --- pier -------------------------------------------------------------------------------------

/** Starts pier on port 0; resolves with its base URL and the setup link read from its output. */
function startPier() {
  const env = { ...process.env, APP_ENV: 'development', NO_COLOR: '1' };
  delete env.DATABASE_URL; // a fresh SQLite database under --dir: no superuser yet
  server = spawn(PIER, ['serve', '--http', '127.0.0.1:0', '--dir', join(work, 'pier_data')], {
    cwd: work,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolveStart, rejectStart) => {
    let base = null;
    let link = null;
    const timer = setTimeout(
      () => rejectStart(new Error(`no ${base ? 'pbinstal/ link' : '`listening on` line'} within ${STEP_TIMEOUT} ms`)),
      STEP_TIMEOUT,
    );
    const onLine = (line) => {
      logLines.push(line);
      const listening = line.match(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
      if (listening && !base) base = listening[1];
      const setup = line.match(/(http:\/\/\S+\/_\/#\/pbinstal\/\S+)/);
      if (setup && !link) link = setup[1];
      if (base && link) {
        clearTimeout(timer);
        resolveStart({ base, link });
      }
    };
    for (const stream of [server.stdout, server.stderr]) {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          onLine(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    }
    server.on('error', (err) => {
      clearTimeout(timer);
      rejectStart(err);
    });
    server.on('exit', (code, signal) => {
      clearTimeout(timer);
      rejectStart(new Error(`pier exited early (code ${code}, signal ${signal})`));
    });
  });
}

async function stopPier() {
  if (!server || server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGTERM');
  const timer = setTimeout(() => server.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  await stopPier().catch(() => {});
  writeFileSync(join(work, 'server.log'), logLines.join('\n') + '\n');
  if (KEEP) say(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

// --- page helpers -----------------------------------------------------------------------------

const visible = (page, id) => page.$eval(`#${id}`, (el) => !el.hidden && el.offsetParent !== null);
const text = (page, id) => page.$eval(`#${id}`, (el) => el.textContent.trim());

/** With KEEP_DATA=1, a screenshot of each state, for looking at. */
async function snap(page, name) {
  if (KEEP) await page.screenshot({ path: join(work, `${name}.png`), type: 'png', fullPage: true });
}

/** Opens the link as a fresh document load (a hash-only change would not re-run the page). */
async function openLink(page, link) {
  await page.goto('about:blank');
  const res = await page.goto(link, { waitUntil: 'load', timeout: STEP_TIMEOUT });
  assert(res && res.status() === 200, `GET ${link}: ${res && res.status()}`);
}

async function fill(page, values) {
  for (const [id, value] of Object.entries(values)) {
    await page.$eval(`#${id}`, (el) => { el.value = ''; });
    await page.type(`#${id}`, value);
  }
}

/** Submits the form and waits until `done` holds (a predicate run in the page). */
async function submit(page, done) {
  await page.click('#submit');
  await page.waitForFunction(done, { timeout: STEP_TIMEOUT });
  // The button is re-enabled once the request finished (finally {}), whatever its outcome.
  await page.waitForFunction(() => !document.getElementById('submit').disabled, { timeout: STEP_TIMEOUT });
}

async function canSignIn(base, email, password) {
  const pb = new PocketBase(base);
  try {
    const auth = await pb.collection('_superusers').authWithPassword(email, password);
    return { ok: true, auth };
  } catch (err) {
    return { ok: false, status: err.status, err };
  }
}

function checkPng(file) {
  assert(existsSync(file), `${file} missing`);
  const size = statSync(file).size;
  assert(size > 1000, `${file} is only ${size} bytes`);
  const buf = readFileSync(file);
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert(buf.subarray(0, 8).equals(sig), 'no PNG signature');
  assert(buf.toString('latin1', 12, 16) === 'IHDR', 'no IHDR chunk first');
  const width = buf.readUInt32BE(16);
  const height = buf.readUInt32BE(20);
  assert(width > 0 && height > 0, `empty image ${width}x${height}`);
  return { size, width, height };
}

// --- the run ----------------------------------------------------------------------------------

async function run() {
  assert(existsSync(PIER), `pier binary not found: ${PIER} (cargo build -p pier, or set PIER_BIN)`);
  assert(existsSync(CHROMIUM), `browser not found: ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_BIN)`);

  const { base, link } = await startPier();
  say(`# pier at ${base}`);

  await check('pier prints a one-time setup link with a 48-character token', () => {
    const m = link.match(/^(http:\/\/127\.0\.0\.1:\d+)\/_\/#\/pbinstal\/([A-Za-z0-9_.-]+)$/);
    assert(m, `unexpected link ${link}`);
    assert(m[1] === base, `link host ${m[1]} is not the listening address ${base}`);
    assert(m[2].length === 48, `token of ${m[2].length} characters`);
  });

  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: join(work, 'chromium-profile'),
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
  });
  say(`# ${await browser.version()}`);
  const page = await browser.newPage();
  await page.setViewport({ width: 800, height: 760 });
  const pageErrors = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    // The 400 and 403 answers the checks provoke are logged as "Failed to load resource": expected.
    if (msg.type() === 'error' && !/^Failed to load resource/.test(msg.text())) pageErrors.push(msg.text());
  });
  const creations = [];
  page.on('request', (req) => {
    if (req.method() === 'POST' && new URL(req.url()).pathname === '/api/collections/_superusers/records') {
      creations.push(req.headers().authorization || '');
    }
  });

  // (1) Without the hash: the idle section.
  await check('/_/ without a hash shows #idle and hides the form', async () => {
    const res = await page.goto(`${base}/_/`, { waitUntil: 'load', timeout: STEP_TIMEOUT });
    assert(res.status() === 200, `status ${res.status()}`);
    await page.waitForFunction(() => !document.getElementById('idle').hidden, { timeout: STEP_TIMEOUT });
    assert(await visible(page, 'idle'), '#idle not visible');
    assert(!(await visible(page, 'setup')), '#setup visible');
    assert(!(await visible(page, 'done')), '#done visible');
  });

  // (2) The link: mismatching passwords are caught in the page, nothing is sent.
  await check('the link shows the form; mismatching passwords → #passwordConfirm-error, nothing created', async () => {
    await openLink(page, link);
    await page.waitForFunction(() => !document.getElementById('setup').hidden, { timeout: STEP_TIMEOUT });
    assert(!(await visible(page, 'idle')), '#idle visible');
    for (const id of ['email', 'password', 'passwordConfirm', 'submit']) {
      assert(await visible(page, id), `#${id} not visible`);
    }
    await fill(page, { email: EMAIL, password: PASSWORD, passwordConfirm: PASSWORD + 'x' });
    await submit(page, () => document.getElementById('passwordConfirm-error').textContent.trim() !== '');
    const msg = await text(page, 'passwordConfirm-error');
    assert(/match/i.test(msg), `#passwordConfirm-error: ${JSON.stringify(msg)}`);
    assert(creations.length === 0, `${creations.length} creation request(s) sent`);
    assert(!(await visible(page, 'done')), '#done visible');
    await snap(page, '2-mismatch');
    const signIn = await canSignIn(base, EMAIL, PASSWORD);
    assert(!signIn.ok, 'the superuser can sign in');
  });

  // (3) Too short: the server's validation, shown on the password field.
  await check('a too-short password → the server\'s password error under #password, nothing created', async () => {
    const short = 'Ab1-x';
    await fill(page, { email: EMAIL, password: short, passwordConfirm: short });
    await submit(page, () => document.getElementById('password-error').textContent.trim() !== '' || document.getElementById('form-error').textContent.trim() !== '');
    assert(creations.length === 1, `${creations.length} creation requests sent, expected 1`);
    assert(creations[0] === link.split('/pbinstal/')[1], 'the request did not carry the token as Authorization');
    await snap(page, '3-too-short');
    const pwErr = await text(page, 'password-error');
    say(`# server's message: ${JSON.stringify(pwErr)}`);
    assert(pwErr !== '', '#password-error empty');
    assert(/8/.test(pwErr) || /short|least|length/i.test(pwErr), `#password-error: ${JSON.stringify(pwErr)}`);
    // The field's own message says it all: no second, generic one under the button.
    const formErr = await text(page, 'form-error');
    assert(formErr === '', `#form-error beside the field's message: ${JSON.stringify(formErr)}`);
    assert(await text(page, 'email-error') === '', '#email-error not empty');
    assert(!(await visible(page, 'done')), '#done visible');
    assert(await visible(page, 'setup'), 'the form is gone');
    const signIn = await canSignIn(base, EMAIL, short);
    assert(!signIn.ok, 'a superuser with the short password can sign in');
  });

  // (4) Valid data: created, and the official SDK signs in with it.
  await check('valid data → #done with the email; the SDK signs in as that superuser', async () => {
    await fill(page, { email: EMAIL, password: PASSWORD, passwordConfirm: PASSWORD });
    await submit(page, () => !document.getElementById('done').hidden || document.getElementById('form-error').textContent.trim() !== '');
    await snap(page, '4-done');
    const formErr = await text(page, 'form-error');
    assert(await visible(page, 'done'), `#done not visible (#form-error: ${JSON.stringify(formErr)})`);
    assert(!(await visible(page, 'setup')), '#setup still visible');
    const done = await text(page, 'done-text');
    assert(done === `${EMAIL} can now sign in as a superuser.`, `#done-text: ${JSON.stringify(done)}`);
    assert(!page.url().includes('pbinstal'), `the token stays in the address bar: ${page.url()}`);
    const signIn = await canSignIn(base, EMAIL, PASSWORD);
    assert(signIn.ok, `authWithPassword failed: ${signIn.status} ${signIn.err && signIn.err.message}`);
    assert(signIn.auth.record.email === EMAIL, `signed in as ${signIn.auth.record.email}`);
    assert(typeof signIn.auth.token === 'string' && signIn.auth.token.length > 20, 'no token');
  });

  // (5) The same link again: spent.
  await check('the same link again → #form-error says it is no longer valid; the second superuser cannot sign in', async () => {
    await openLink(page, link);
    await page.reload({ waitUntil: 'load', timeout: STEP_TIMEOUT });
    await page.waitForFunction(() => !document.getElementById('setup').hidden, { timeout: STEP_TIMEOUT });
    await fill(page, { email: SECOND_EMAIL, password: PASSWORD, passwordConfirm: PASSWORD });
    const before = creations.length;
    await submit(page, () => !document.getElementById('done').hidden || document.getElementById('form-error').textContent.trim() !== '');
    await snap(page, '5-spent');
    assert(creations.length === before + 1, 'no creation request sent');
    assert(!(await visible(page, 'done')), '#done visible: a second superuser was created');
    const formErr = await text(page, 'form-error');
    assert(/no longer valid/i.test(formErr), `#form-error: ${JSON.stringify(formErr)}`);
    const signIn = await canSignIn(base, SECOND_EMAIL, PASSWORD);
    assert(!signIn.ok, 'the second superuser can sign in');
    assert((await canSignIn(base, EMAIL, PASSWORD)).ok, 'the first superuser no longer signs in');
  });

  // (6) A screenshot of the form.
  await check('a screenshot of the form is a non-empty PNG', async () => {
    await openLink(page, link);
    await page.waitForFunction(() => !document.getElementById('setup').hidden, { timeout: STEP_TIMEOUT });
    const file = join(work, 'setup-form.png');
    await page.screenshot({ path: file, type: 'png', fullPage: true });
    const { size, width, height } = checkPng(file);
    say(`# screenshot: ${width}x${height} PNG, ${size} bytes${KEEP ? ` (${file})` : ''}`);
    const box = await page.$eval('main', (el) => { const r = el.getBoundingClientRect(); return { w: r.width, h: r.height }; });
    assert(box.w > 200 && box.h > 300, `the form box is ${box.w}x${box.h}`);
  });

  await check('no script errors or CSP violations in the page', () => {
    assert(pageErrors.length === 0, pageErrors.join(' | '));
  });
}

const watchdog = setTimeout(() => {
  say(`FAIL the run took over ${TOTAL_TIMEOUT / 1000} s`);
  failed += 1;
  cleanup().finally(() => {
    say(`${passed} passed, ${failed} failed`);
    process.exit(1);
  });
}, TOTAL_TIMEOUT);

try {
  await run();
} catch (err) {
  failed += 1;
  say(`FAIL ${err && err.message ? err.message : err}`);
}
clearTimeout(watchdog);
if (failed > 0) {
  say('# last lines of pier\'s output:');
  for (const line of logLines.slice(-20)) say(`#   ${line}`);
}
await cleanup();
say(`${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
