// The conformance suite's batch requests.
// Run by ../conformance.mjs after the parts before it (checks here may use their state).

import {
  assert, PocketBase, ClientResponseError, BASE, SU_EMAIL, SU_PASSWORD, check, expectError,
  assertErrorShape, fieldCode, client, raw, jwtPayload, sleep, DATE_RE, ID_RE, names, sortedKeys,
} from '../harness.mjs';
import { RUN, C, email, PASSWORD, su, guest, state } from './context.mjs';

export async function run() {
// =============================================================================================
// batch

let batchWasEnabled = null;

await check('batch: disabled -> 403 "Batch requests are not allowed."', async () => {
  const s = await su.settings.getAll();
  batchWasEnabled = s.batch.enabled;
  assert.deepEqual(sortedKeys(s.batch), ['enabled', 'maxBodySize', 'maxRequests', 'timeout']);
  const off = await su.settings.update({ batch: { enabled: false } });
  assert.equal(off.batch.enabled, false);
  await su.collections.create({
    name: C.batch, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [{ name: 'name', type: 'text', required: true }, { name: 'n', type: 'number' }],
  });
  const b = guest.createBatch();
  b.collection(C.batch).create({ name: 'z' });
  const body = await expectError(b.send(), 403);
  assertErrorShape(body, 403, 'Batch requests are not allowed.');
});

await check('batch: enable via PATCH /api/settings {batch:{enabled:true}}', async () => {
  const s = await su.settings.update({ batch: { enabled: true, maxRequests: 50 } });
  assert.equal(s.batch.enabled, true);
  assert.equal(s.batch.maxRequests, 50);
  assert.equal((await su.settings.getAll()).batch.enabled, true);
});

await check('batch: create + update + delete + upsert in one request', async () => {
  const B = su.collection(C.batch);
  const keep = await B.create({ name: 'keep', n: 1 });
  const gone = await B.create({ name: 'gone', n: 2 });
  state.batchKeep = keep;
  const upsertId = (RUN + 'uu' + '0'.repeat(15)).slice(0, 15);
  const b = guest.createBatch();
  b.collection(C.batch).create({ name: 'new1', n: 3 });
  b.collection(C.batch).update(keep.id, { name: 'kept', 'n+': 10 });
  b.collection(C.batch).delete(gone.id);
  b.collection(C.batch).upsert({ id: upsertId, name: 'ups' });
  const res = await b.send();
  assert.ok(Array.isArray(res));
  assert.deepEqual(res.map((x) => x.status), [200, 200, 204, 200]);
  assert.equal(res[0].body.name, 'new1');
  assert.match(res[0].body.id, ID_RE);
  assert.equal(res[1].body.name, 'kept');
  assert.equal(res[1].body.n, 11);
  assert.equal(res[2].body, null);
  assert.equal(res[3].body.id, upsertId);
  const all = await B.getFullList({ sort: 'name' });
  assert.deepEqual(names(all), ['kept', 'new1', 'ups']);
});

await check('batch: one failing request rolls back the whole batch', async () => {
  const B = su.collection(C.batch);
  const b = guest.createBatch();
  b.collection(C.batch).create({ name: 'willrollback' });
  b.collection(C.batch).update(state.batchKeep.id, { name: 'rolled' });
  b.collection(C.batch).create({ n: 5 }); // missing required name
  const body = await expectError(b.send(), 400);
  assertErrorShape(body, 400, 'Batch transaction failed.');
  const item = body.data.requests['2'];
  assert.equal(item.code, 'batch_request_failed');
  assert.equal(item.response.status, 400);
  assert.equal(item.response.data.name.code, 'validation_required');
  assert.ok(!('0' in body.data.requests) && !('1' in body.data.requests), 'only the failing index is reported');
  assert.deepEqual(names(await B.getFullList({ sort: 'name' })), ['kept', 'new1', 'ups']);
});

await check('batch: API rules apply per request (guest on a locked collection)', async () => {
  const b = guest.createBatch();
  b.collection(C.locked).create({ t: 'x' });
  const body = await expectError(b.send(), 400);
  assert.equal(body.data.requests['0'].response.status, 403);
  const empty = await expectError(guest.createBatch().send(), 400);
  assert.equal(fieldCode(empty, 'requests'), 'validation_required');
});

if (batchWasEnabled !== null) {
  try { await su.settings.update({ batch: { enabled: batchWasEnabled } }); } catch { /* best effort */ }
}
}
