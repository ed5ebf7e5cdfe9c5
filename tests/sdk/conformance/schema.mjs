// The conformance suite's collections: truncate, delete, import and views; API rules.
// Run by ../conformance.mjs after the parts before it (checks here may use their state).

import {
  assert, PocketBase, ClientResponseError, BASE, SU_EMAIL, SU_PASSWORD, check, expectError,
  assertErrorShape, fieldCode, client, raw, jwtPayload, sleep, DATE_RE, ID_RE, names, sortedKeys,
} from '../harness.mjs';
import { RUN, C, email, PASSWORD, su, guest, state } from './context.mjs';

export async function run() {
// =============================================================================================
// collections: truncate / delete / import / view

await check('collections: delete a collection that is still referenced -> 400', async () => {
  const body = await expectError(su.collections.delete(C.cats), 400);
  assertErrorShape(body, 400);
});

await check('collections: truncate empties the collection (guest -> 401)', async () => {
  await expectError(guest.collections.truncate(C.scratch), 401);
  for (let i = 0; i < 3; i++) await su.collection(C.scratch).create({ t: `x${i}` });
  assert.ok((await su.collection(C.scratch).getList(1, 1)).totalItems >= 3);
  assert.equal(await su.collections.truncate(C.scratch), true);
  assert.equal((await su.collection(C.scratch).getList(1, 1)).totalItems, 0);
  await su.collection(C.scratch).create({ t: 'after' }); // still usable
});

await check('collections: delete -> true, then 404 for collection and its records', async () => {
  assert.equal(await su.collections.delete(C.scratch), true);
  await expectError(su.collections.getOne(C.scratch), 404);
  await expectError(su.collection(C.scratch).getList(1, 1), 404);
});

await check('collections: import creates collections (pb.collections.import)', async () => {
  const ok = await su.collections.import([
    { name: C.imp1, type: 'base', listRule: '', viewRule: '', createRule: '', fields: [{ name: 'title', type: 'text', required: true }, { name: 'n', type: 'number' }] },
    { name: C.imp2, type: 'base', fields: [] },
  ], false);
  assert.equal(ok, true);
  const c = await su.collections.getOne(C.imp1);
  assert.deepEqual(c.fields.map((x) => x.name), ['id', 'title', 'n']);
  assert.equal(c.listRule, '');
  assert.equal(c.updateRule, null);
  assert.ok(await su.collections.getOne(C.imp2));
  const r = await guest.collection(C.imp1).create({ title: 'imported' });
  assert.equal(r.title, 'imported');
});

await check('collections: import updates an existing collection (adds a field)', async () => {
  const c = await su.collections.getOne(C.imp1);
  assert.equal(await su.collections.import([{ ...c, fields: [...c.fields, { name: 'flag', type: 'bool' }] }], false), true);
  const after = await su.collections.getOne(C.imp1);
  assert.equal(after.id, c.id);
  assert.deepEqual(after.fields.map((x) => x.name), ['id', 'title', 'n', 'flag']);
});

await check('collections: invalid import -> 400 validation_collections_import_failure; guest -> 401', async () => {
  const body = await expectError(su.collections.import([{ name: '', type: 'base' }], false), 400);
  assertErrorShape(body, 400, 'Failed to import collections.');
  assert.equal(fieldCode(body, 'collections'), 'validation_collections_import_failure');
  await expectError(guest.collections.import([{ name: `${RUN}_g`, type: 'base' }], false), 401);
});

await check('view collection: created from SQL SELECT, fields inferred', async () => {
  const v = await su.collections.create({
    name: C.view, type: 'view', listRule: '', viewRule: '',
    viewQuery: `SELECT id, name, n, (n * 2) AS dbl FROM ${C.items} WHERE n >= 2`,
  });
  assert.equal(v.type, 'view');
  assert.match(v.viewQuery, /SELECT/);
  const types = Object.fromEntries(v.fields.map((x) => [x.name, x.type]));
  // PB: a computed column becomes a json field
  assert.deepEqual(types, { id: 'text', name: 'text', n: 'number', dbl: 'json' });
  for (const r of ['createRule', 'updateRule', 'deleteRule']) assert.equal(v[r], null, r);
});

await check('view collection: list/filter/getOne rows', async () => {
  const r = await guest.collection(C.view).getList(1, 50, { sort: 'n' });
  assert.equal(r.totalItems, 4);
  assert.deepEqual(r.items.map((x) => [x.name, x.n, x.dbl]), [['beta', 2, 4], ['Gamma', 3, 6], ['delta', 4, 8], ['EPSILON', 5, 10]]);
  assert.equal(r.items[0].collectionName, C.view);
  const f = await guest.collection(C.view).getList(1, 50, { filter: 'dbl > 7' });
  assert.equal(f.totalItems, 2);
  const one = await guest.collection(C.view).getOne(state.items[1].id);
  assert.equal(one.name, 'beta');
});

await check('view collection: changing its query re-creates it with the new rows and fields', async () => {
  const before = await su.collections.getOne(C.view);
  const u = await su.collections.update(C.view, {
    viewQuery: `SELECT id, name, (n + 100) AS score FROM ${C.items} WHERE n >= 4`,
  });
  assert.deepEqual(u.fields.map((x) => x.name), ['id', 'name', 'score']);
  assert.equal(u.fields.find((x) => x.name === 'name').type, 'text');
  const r = await guest.collection(C.view).getList(1, 50, { sort: 'score' });
  assert.deepEqual(r.items.map((x) => x.score), [104, 105]);
  await expectError(su.collections.update(C.view, { viewQuery: `SELECT name FROM ${C.items}` }), 400);
  await su.collections.update(C.view, { viewQuery: before.viewQuery });
  const back = await guest.collection(C.view).getList(1, 50);
  assert.equal(back.totalItems, 4);
});

await check('view collection: read-only (create -> 400); bad SQL -> 400 validation_invalid_view_query', async () => {
  await expectError(su.collection(C.view).create({ name: 'x' }), 400);
  const b1 = await expectError(su.collections.create({ name: `${RUN}_vbad`, type: 'view', viewQuery: 'SELECT nope FROM nowhere' }), 400);
  assert.equal(fieldCode(b1, 'viewQuery'), 'validation_invalid_view_query');
  const b2 = await expectError(su.collections.create({ name: `${RUN}_vbad2`, type: 'view', viewQuery: `SELECT name FROM ${C.items}` }), 400);
  assert.equal(fieldCode(b2, 'viewQuery'), 'validation_invalid_view_query');
});

// =============================================================================================
// API rules

await check('rules null: guest gets 403 on create/list/view/update/delete', async () => {
  await su.collections.create({ name: C.locked, type: 'base', fields: [{ name: 't', type: 'text' }] });
  const r = await su.collection(C.locked).create({ t: 'x' });
  state.lockedRec = r;
  const L = guest.collection(C.locked);
  for (const [what, call] of [
    ['create', () => L.create({ t: 'y' })],
    // PB: a null listRule is a 403 (not an empty 200 list)
    ['list', () => L.getList(1, 10)],
    ['view', () => L.getOne(r.id)],
    ['update', () => L.update(r.id, { t: 'z' })],
    ['delete', () => L.delete(r.id)],
  ]) {
    const body = await expectError(call(), 403, what);
    assertErrorShape(body, 403, 'Only superusers can perform this action.');
  }
});

await check('rules null: 403 even for a missing id (rule checked before lookup)', async () => {
  await expectError(guest.collection(C.locked).getOne('doesnotexist123'), 403);
});

await check('rules null: superuser can do everything', async () => {
  const L = su.collection(C.locked);
  assert.equal((await L.getList(1, 10)).totalItems, 1);
  assert.equal((await L.update(state.lockedRec.id, { t: 'su' })).t, 'su');
  assert.equal(await L.delete(state.lockedRec.id), true);
});

await check('rules "": anyone can create/list/view/update/delete', async () => {
  await su.collections.create({
    name: C.open, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [{ name: 't', type: 'text' }],
  });
  const O = guest.collection(C.open);
  const r = await O.create({ t: 'a' });
  assert.equal((await O.getList(1, 10)).totalItems, 1);
  assert.equal((await O.getOne(r.id)).t, 'a');
  assert.equal((await O.update(r.id, { t: 'b' })).t, 'b');
  assert.equal(await O.delete(r.id), true);
});

await check('rules @request.auth.id != "": guest list is empty 200, view 404, create 400', async () => {
  await su.collections.create({
    name: C.authed, type: 'base', listRule: '@request.auth.id != ""', viewRule: '@request.auth.id != ""',
    createRule: '@request.auth.id != ""', fields: [{ name: 't', type: 'text' }],
  });
  const r = await su.collection(C.authed).create({ t: 'x' });
  state.authedRec = r;
  const A = guest.collection(C.authed);
  const list = await A.getList(1, 10);
  // PB: a list rule acts as a filter: 200 with no items, never 403
  assert.deepEqual(list.items, []);
  assert.equal(list.totalItems, 0);
  assert.equal(list.totalPages, 0);
  const b = await expectError(A.getOne(r.id), 404);
  assertErrorShape(b, 404, "The requested resource wasn't found.");
  // PB: a failing createRule is a 400 "Failed to create record." with empty data, not 403
  const c = await expectError(A.create({ t: 'y' }), 400);
  assertErrorShape(c, 400, 'Failed to create record.');
  assert.deepEqual(c.data, {});
});
}
