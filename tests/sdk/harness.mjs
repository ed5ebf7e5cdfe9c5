// The harness shared by the SDK suites (conformance.mjs, files.mjs, realtime.mjs): the environment they run
// against, one line per check, PocketBase's error shapes, and small helpers.

import assert from 'node:assert/strict';
import PocketBase, { ClientResponseError } from 'pocketbase';

export { assert, PocketBase, ClientResponseError };

export const BASE = (process.env.PB_URL || '').replace(/\/+$/, '');
export const SU_EMAIL = process.env.PB_SUPERUSER_EMAIL;
export const SU_PASSWORD = process.env.PB_SUPERUSER_PASSWORD;
if (!BASE || !SU_EMAIL || !SU_PASSWORD) {
  console.error('PB_URL, PB_SUPERUSER_EMAIL and PB_SUPERUSER_PASSWORD must be set');
  process.exit(2);
}
const ONLY = process.env.CONFORMANCE_FILTER ? new RegExp(process.env.CONFORMANCE_FILTER) : null;

// ---------------------------------------------------------------------------------------------
// tiny harness

let passed = 0;
let failed = 0;

/// Prints the last line, `N passed, M failed`, and exits 0 only when nothing failed.
export function finish() {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

// A stray rejected promise must not kill the run before the summary line.
process.on('unhandledRejection', (e) => {
  console.log(`# unhandled rejection (ignored): ${String((e && e.message) || e).slice(0, 200)}`);
});

function describeError(e) {
  if (e instanceof ClientResponseError) {
    return `HTTP ${e.status} ${e.url || ''} ${JSON.stringify(e.response)}`.slice(0, 600);
  }
  if (e && e.name === 'AssertionError') {
    const extra = 'actual' in e && 'expected' in e
      ? ` (actual ${JSON.stringify(e.actual)}, expected ${JSON.stringify(e.expected)})` : '';
    return `${String(e.message).split('\n')[0]}${extra}`.slice(0, 600);
  }
  return String((e && e.stack) || e).split('\n').slice(0, 2).join(' | ').slice(0, 600);
}

export async function check(name, fn) {
  if (ONLY && !ONLY.test(name)) return;
  try {
    await fn();
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}: ${describeError(e).replace(/\s+/g, ' ')}`);
  }
}

// Awaits a promise that must fail with a ClientResponseError of the given HTTP status; returns
// the error's JSON body.
export async function expectError(promise, status, what = 'request') {
  let res;
  try {
    res = await promise;
  } catch (e) {
    if (!(e instanceof ClientResponseError)) throw e;
    assert.equal(e.status, status, `${what}: expected HTTP ${status}, got ${e.status} ${JSON.stringify(e.response)}`);
    return e.response;
  }
  throw new assert.AssertionError({
    message: `${what}: expected HTTP ${status}, but it succeeded: ${JSON.stringify(res).slice(0, 300)}`,
  });
}

// PocketBase's error envelope: {status, message, data}
export function assertErrorShape(body, status, message) {
  assert.equal(typeof body, 'object');
  assert.equal(body.status, status, 'body.status');
  assert.equal(typeof body.message, 'string', 'body.message');
  assert.equal(typeof body.data, 'object', 'body.data');
  if (message !== undefined) assert.equal(body.message, message, 'body.message');
}

export function fieldCode(body, field) {
  return body && body.data && body.data[field] && body.data[field].code;
}

export function client(token) {
  const pb = new PocketBase(BASE);
  pb.autoCancellation(false);
  if (token) pb.authStore.save(token, null);
  return pb;
}

export async function raw(method, path, { token, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token !== undefined) h.Authorization = token;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const res = await fetch(BASE + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = text; }
  return { status: res.status, json, headers: res.headers };
}

export function jwtPayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const DATE_RE = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z$/;
export const ID_RE = /^[a-z0-9]{15}$/;
export const names = (items) => items.map((i) => i.name);
export const sortedKeys = (o) => Object.keys(o).sort();

