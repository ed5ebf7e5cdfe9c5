// Real-browser test of the development certificate (`pier serve --tls dev`): headless system
// Chromium, trusting pier's development CA through an NSS database in a temporary HOME (what
// `pier cert dev` tells users to do), opens every development host over HTTPS. Chromium refuses
// a wildcard right under `localhost`, so each name must be in the certificate.
//
// Usage: node tests/pages/tls.mjs   (tests/pages/run.sh installs the packages first)
//
// Environment: PIER_BIN, CHROMIUM_BIN and KEEP_DATA=1 as for setup.mjs; CERTUTIL_BIN (default:
// certutil from PATH, Debian's `libnss3-tools`).
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import puppeteer from 'puppeteer-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../..');
const PIER = process.env.PIER_BIN || join(process.env.CARGO_TARGET_DIR || join(REPO, 'target'), 'debug/pier');
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CERTUTIL = process.env.CERTUTIL_BIN || 'certutil';
const KEEP = process.env.KEEP_DATA === '1';
const STEP_TIMEOUT = 10_000; // ms, for any one wait
const TOTAL_TIMEOUT = 60_000; // ms, for the whole run

// `shop.localhost` comes from a user route in pier.toml.
const HOSTS = ['localhost', 'api.localhost', 'admin.localhost', 'docs.localhost', 'dev.localhost', 'app.localhost', 'shop.localhost'];

const work = mkdtempSync(join(tmpdir(), 'pier-pages-tls-'));
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

/** Starts `pier serve --tls dev` on port 0; resolves with the port from its `listening on` line. */
function startPier(dataDir, configFile) {
  const env = { ...process.env, APP_ENV: 'development', NO_COLOR: '1' };
  delete env.DATABASE_URL;
  const args = ['serve', '--tls', 'dev', '--http', '127.0.0.1:0', '--dir', dataDir, '--config', configFile];
  server = spawn(PIER, args, { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
  return new Promise((resolveStart, rejectStart) => {
    const timer = setTimeout(() => rejectStart(new Error(`no \`listening on\` line within ${STEP_TIMEOUT} ms`)), STEP_TIMEOUT);
    const onLine = (line) => {
      logLines.push(line);
      const listening = line.match(/listening on https:\/\/127\.0\.0\.1:(\d+)/);
      if (listening) {
        clearTimeout(timer);
        resolveStart(Number(listening[1]));
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

async function run() {
  const dataDir = join(work, 'pier_data');
  const configFile = join(work, 'pier.toml');
  writeFileSync(configFile, '[[gateway.routes]]\nhost = "shop.localhost"\nto = "frontend"\n');
  const port = await startPier(dataDir, configFile);

  // Trust the CA the way `pier cert dev` prints: an NSS database under $HOME/.pki/nssdb.
  const home = join(work, 'home');
  const nssdb = join(home, '.pki', 'nssdb');
  mkdirSync(nssdb, { recursive: true });
  execFileSync(CERTUTIL, ['-d', `sql:${nssdb}`, '-N', '--empty-password']);
  execFileSync(CERTUTIL, ['-d', `sql:${nssdb}`, '-A', '-t', 'C,,', '-n', 'pier-dev', '-i', join(dataDir, 'certs', 'dev-ca.pem')]);

  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    userDataDir: join(work, 'chromium-profile'),
    env: { ...process.env, HOME: home },
    args: [
      '--no-sandbox',
      '--disable-dev-shm-usage',
      '--disable-gpu',
      '--no-first-run',
      '--no-default-browser-check',
      // Chromium resolves *.localhost to loopback itself; this only makes it explicit.
      '--host-resolver-rules=MAP *.localhost 127.0.0.1, MAP localhost 127.0.0.1',
    ],
  });
  say(`# ${await browser.version()}`);
  const page = await browser.newPage();

  // Any answer means the handshake was trusted; what each host routes to is not the point
  // (dev. and app. answer 404 until a staging URL or the app subdomain is configured).
  for (const host of HOSTS) {
    await check(`https://${host}/ is trusted`, async () => {
      const res = await page.goto(`https://${host}:${port}/`, { waitUntil: 'load', timeout: STEP_TIMEOUT });
      assert(res && res.status() > 0, 'no answer');
      const security = res.securityDetails();
      assert(security && /TLS/.test(security.protocol()), `protocol ${security && security.protocol()}`);
    });
  }

  await check('https://api.localhost/api/health answers 200', async () => {
    const res = await page.goto(`https://api.localhost:${port}/api/health`, { waitUntil: 'load', timeout: STEP_TIMEOUT });
    assert(res && res.status() === 200, `status ${res && res.status()}`);
    const body = await res.json();
    assert(body.code === 200, JSON.stringify(body));
  });

  await check('https://127.0.0.1/ is trusted', async () => {
    const res = await page.goto(`https://127.0.0.1:${port}/api/health`, { waitUntil: 'load', timeout: STEP_TIMEOUT });
    assert(res && res.status() === 200, `status ${res && res.status()}`);
  });

  // The wildcard alone does not satisfy Chromium: a name not listed is refused.
  await check('a .localhost name the certificate does not list is refused', async () => {
    let error = null;
    try {
      await page.goto(`https://other.localhost:${port}/api/health`, { waitUntil: 'load', timeout: STEP_TIMEOUT });
    } catch (err) {
      error = err;
    }
    assert(error && /ERR_CERT_COMMON_NAME_INVALID/.test(error.message), `expected a name error, got ${error && error.message}`);
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
