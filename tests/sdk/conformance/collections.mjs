// The conformance suite's health, superuser sign-in and the collections API.
// Run by ../conformance.mjs after the parts before it (checks here may use their state).

import {
  assert, PocketBase, ClientResponseError, BASE, SU_EMAIL, SU_PASSWORD, check, expectError,
  assertErrorShape, fieldCode, client, raw, jwtPayload, sleep, DATE_RE, ID_RE, names, sortedKeys,
} from '../harness.mjs';
import { RUN, C, email, PASSWORD, su, guest, state } from './context.mjs';

export async function run() {
// =============================================================================================
// health + superuser auth

await check('health: GET /api/health returns {code:200, message, data}', async () => {
  const h = await guest.health.check();
  assert.equal(h.code, 200);
  assert.equal(h.message, 'API is healthy.');
  assert.equal(typeof h.data, 'object');
  // PB: as a guest data is {}; for a superuser it also carries canBackup/realIP/possibleProxyHeader.
  assert.deepEqual(h.data, {});
});

await check('health: unknown /api route is a 404 in the error envelope', async () => {
  const r = await raw('GET', '/api/no-such-route-' + RUN);
  assert.equal(r.status, 404);
  assertErrorShape(r.json, 404);
});

await check('superuser: auth-with-password returns token + _superusers record', async () => {
  const auth = await su.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD);
  assert.equal(typeof auth.token, 'string');
  assert.equal(auth.token.split('.').length, 3, 'token is a JWT');
  assert.equal(auth.record.email, SU_EMAIL);
  assert.equal(auth.record.collectionName, '_superusers');
  assert.match(auth.record.id, ID_RE);
  assert.ok(!('password' in auth.record) && !('tokenKey' in auth.record), 'no secrets in record');
  assert.ok(su.authStore.isValid);
  assert.ok(su.authStore.isSuperuser);
});

await check('superuser: JWT claims {collectionId,exp,id,refreshable:true,type:"auth"}, ~1 day', async () => {
  const p = jwtPayload(su.authStore.token);
  assert.equal(p.type, 'auth');
  assert.equal(p.refreshable, true);
  assert.equal(p.id, su.authStore.record.id);
  assert.equal(p.collectionId, su.authStore.record.collectionId);
  const left = p.exp - Date.now() / 1000;
  assert.ok(Math.abs(left - 86400) < 300, `exp in ${left}s, expected ~86400 (superuser authToken duration)`);
});

await check('superuser: wrong password -> 400 {status,message:"Failed to authenticate.",data:{}}', async () => {
  const body = await expectError(client().collection('_superusers').authWithPassword(SU_EMAIL, 'wrong-password'), 400);
  assertErrorShape(body, 400, 'Failed to authenticate.');
  assert.deepEqual(body.data, {});
});

await check('superuser: unknown identity -> same 400 (no account enumeration)', async () => {
  const body = await expectError(client().collection('_superusers').authWithPassword(email('nobody'), 'x-password'), 400);
  assertErrorShape(body, 400, 'Failed to authenticate.');
});

// =============================================================================================
// collections API

await check('collections: create base collection with minimal fields; rules default to null', async () => {
  const orgs = await su.collections.create({ name: C.orgs, type: 'base', fields: [{ name: 'name', type: 'text' }] });
  state.orgs = orgs;
  assert.match(orgs.id, /^pbc_\d+$/);
  assert.equal(orgs.name, C.orgs);
  assert.equal(orgs.type, 'base');
  assert.equal(orgs.system, false);
  for (const r of ['listRule', 'viewRule', 'createRule', 'updateRule', 'deleteRule']) assert.equal(orgs[r], null, r);
  const id = orgs.fields.find((f) => f.name === 'id');
  assert.ok(id, 'system id field added');
  assert.equal(id.type, 'text');
  assert.equal(id.primaryKey, true);
  assert.equal(id.system, true);
  assert.equal(id.min, 15);
  assert.equal(id.max, 15);
  assert.equal(id.pattern, '^[a-z0-9]+$');
  assert.equal(id.autogeneratePattern, '[a-z0-9]{15}');
  // PB: no created/updated fields unless you add autodate fields yourself.
  assert.deepEqual(orgs.fields.map((f) => f.name), ['id', 'name']);
  assert.match(orgs.created, DATE_RE);
  assert.deepEqual(orgs.indexes, []);
});

await check('collections: self-relation added by update (cats.parent -> cats)', async () => {
  const cats = await su.collections.create({
    name: C.cats, type: 'base', listRule: '', viewRule: '', fields: [{ name: 'name', type: 'text' }],
  });
  const upd = await su.collections.update(cats.id, {
    fields: [...cats.fields, { name: 'parent', type: 'relation', collectionId: cats.id, maxSelect: 1 }],
  });
  const parent = upd.fields.find((f) => f.name === 'parent');
  assert.equal(parent.type, 'relation');
  assert.equal(parent.collectionId, cats.id);
  state.cats = upd;
});

await check('collections: create base collection with every field type; options echoed back', async () => {
  const authors = await su.collections.create({
    name: C.authors, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [{ name: 'name', type: 'text', required: true }],
  });
  const tags = await su.collections.create({
    name: C.tags, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [{ name: 'name', type: 'text', required: true }],
  });
  state.authors = authors;
  state.tags = tags;
  const posts = await su.collections.create({
    name: C.posts, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'title', type: 'text', required: true, min: 3, max: 20 },
      { name: 'views', type: 'number' },
      { name: 'published', type: 'bool' },
      { name: 'contact', type: 'email' },
      { name: 'website', type: 'url' },
      { name: 'pubdate', type: 'date' },
      { name: 'status', type: 'select', values: ['draft', 'live', 'archived'], maxSelect: 1 },
      { name: 'labels', type: 'select', values: ['a', 'b', 'c', 'd'], maxSelect: 4 },
      { name: 'meta', type: 'json' },
      { name: 'author', type: 'relation', collectionId: authors.id, maxSelect: 1, cascadeDelete: true },
      { name: 'tags', type: 'relation', collectionId: tags.id, maxSelect: 5 },
      { name: 'attachment', type: 'file', maxSelect: 1, maxSize: 1048576, mimeTypes: ['image/png'], thumbs: ['100x100'] },
      { name: 'docs', type: 'file', maxSelect: 3 },
      { name: 'body', type: 'editor' },
      { name: 'secret', type: 'text', hidden: true },
      { name: 'created', type: 'autodate', onCreate: true, onUpdate: false },
      { name: 'updated', type: 'autodate', onCreate: true, onUpdate: true },
    ],
  });
  state.posts = posts;
  const f = Object.fromEntries(posts.fields.map((x) => [x.name, x]));
  assert.deepEqual(posts.fields.map((x) => x.name), ['id', 'title', 'views', 'published', 'contact', 'website', 'pubdate',
    'status', 'labels', 'meta', 'author', 'tags', 'attachment', 'docs', 'body', 'secret', 'created', 'updated']);
  const types = Object.fromEntries(posts.fields.map((x) => [x.name, x.type]));
  assert.deepEqual(types, {
    id: 'text', title: 'text', views: 'number', published: 'bool', contact: 'email', website: 'url', pubdate: 'date',
    status: 'select', labels: 'select', meta: 'json', author: 'relation', tags: 'relation', attachment: 'file', docs: 'file',
    body: 'editor', secret: 'text', created: 'autodate', updated: 'autodate',
  });
  assert.equal(f.title.required, true);
  assert.equal(f.title.min, 3);
  assert.equal(f.title.max, 20);
  assert.deepEqual(f.status.values, ['draft', 'live', 'archived']);
  assert.equal(f.status.maxSelect, 1);
  assert.equal(f.labels.maxSelect, 4);
  assert.equal(f.author.collectionId, authors.id);
  assert.equal(f.author.cascadeDelete, true);
  assert.equal(f.tags.maxSelect, 5);
  assert.equal(f.tags.cascadeDelete, false);
  assert.equal(f.attachment.maxSize, 1048576);
  assert.deepEqual(f.attachment.mimeTypes, ['image/png']);
  assert.deepEqual(f.attachment.thumbs, ['100x100']);
  assert.equal(f.attachment.protected, false);
  assert.equal(f.secret.hidden, true);
  assert.equal(f.updated.onUpdate, true);
  assert.equal(f.created.onUpdate, false);
  for (const x of posts.fields) assert.match(x.id, /^[a-z]+\d+$/, `field id of ${x.name}`);
});

await check('collections: password field is accepted on a base collection (not auth-only)', async () => {
  // PB: surprising but true: "password" is a normal field type usable on base collections too.
  const c = await su.collections.create({
    name: C.scratch, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [{ name: 't', type: 'text' }, { name: 'pw', type: 'password' }],
  });
  const pw = c.fields.find((x) => x.name === 'pw');
  assert.equal(pw.type, 'password');
  const r = await guest.collection(C.scratch).create({ t: 'x', pw: 'password123' });
  // PB: the value is never echoed back; the key is present with "".
  assert.equal(r.pw, '');
  state.scratch = c;
});

await check('collections: relation to a missing collection is rejected', async () => {
  const body = await expectError(su.collections.create({
    name: `${RUN}_badrel`, type: 'base', fields: [{ name: 'r', type: 'relation', collectionId: 'pbc_000000', maxSelect: 1 }],
  }), 400);
  assertErrorShape(body, 400, 'Failed to create collection.');
  assert.ok(body.data.fields, JSON.stringify(body.data));
});

await check('collections: duplicate name -> 400 validation_collection_name_exists', async () => {
  const body = await expectError(su.collections.create({ name: C.posts.toUpperCase(), type: 'base' }), 400);
  assertErrorShape(body, 400, 'Failed to create collection.');
  assert.equal(fieldCode(body, 'name'), 'validation_collection_name_exists');
});

await check('collections: invalid name / type -> 400 with per-field codes', async () => {
  const b1 = await expectError(su.collections.create({ name: 'bad name!', type: 'base' }), 400);
  assert.equal(fieldCode(b1, 'name'), 'validation_match_invalid');
  const b2 = await expectError(su.collections.create({ name: `${RUN}_weird`, type: 'weird' }), 400);
  assert.equal(fieldCode(b2, 'type'), 'validation_in_invalid');
});

await check('collections: guest -> 401, user token -> 403 on the collections API', async () => {
  const b1 = await expectError(guest.collections.getList(1, 1), 401);
  assertErrorShape(b1, 401, 'The request requires valid record authorization token.');
  const b2 = await expectError(guest.collections.create({ name: `${RUN}_nope`, type: 'base' }), 401);
  assertErrorShape(b2, 401);
  // user token: checked later in the auth section once a user exists
});

await check('collections: list with filter/sort, envelope shape', async () => {
  const res = await su.collections.getList(1, 50, { filter: `name ~ "${RUN}_"`, sort: 'name' });
  assert.deepEqual(sortedKeys(res), ['items', 'page', 'perPage', 'totalItems', 'totalPages']);
  assert.equal(res.page, 1);
  assert.equal(res.perPage, 50);
  const got = res.items.map((c) => c.name);
  const want = [C.authors, C.cats, C.orgs, C.posts, C.scratch, C.tags].sort();
  assert.deepEqual(got, want);
  assert.equal(res.totalItems, want.length);
  assert.equal(res.totalPages, 1);
});

await check('collections: getFullList includes system collections (_superusers, users)', async () => {
  const all = await su.collections.getFullList();
  const byName = Object.fromEntries(all.map((c) => [c.name, c]));
  assert.equal(byName._superusers.type, 'auth');
  assert.equal(byName._superusers.system, true);
  assert.equal(byName.users.type, 'auth');
  assert.ok(byName[C.posts]);
});

await check('collections: getOne by name and by id return the same collection', async () => {
  const a = await su.collections.getOne(C.posts);
  const b = await su.collections.getOne(state.posts.id);
  assert.equal(a.id, state.posts.id);
  assert.deepEqual(a, b);
  const body = await expectError(su.collections.getOne(`${RUN}_missing`), 404);
  assertErrorShape(body, 404, "The requested resource wasn't found.");
});

await check('collections: update adds a field; old records get its zero value', async () => {
  const r = await su.collection(C.orgs).create({ name: 'acme' });
  state.acme = r;
  const upd = await su.collections.update(C.orgs, {
    fields: [...state.orgs.fields, { name: 'rank', type: 'number' }],
  });
  assert.deepEqual(upd.fields.map((x) => x.name), ['id', 'name', 'rank']);
  assert.equal(upd.id, state.orgs.id);
  const again = await su.collection(C.orgs).getOne(r.id);
  assert.equal(again.rank, 0);
  const r2 = await su.collection(C.orgs).create({ name: 'globex', rank: 7 });
  assert.equal(r2.rank, 7);
});

await check('collections: PATCH with only a rule keeps the fields', async () => {
  const upd = await su.collections.update(C.scratch, { deleteRule: null });
  assert.equal(upd.deleteRule, null);
  assert.deepEqual(upd.fields.map((x) => x.name), ['id', 't', 'pw']);
});

await check('collections: a field renamed by id keeps its values (with options, index and rule; swap; with the collection)', async () => {
  const idx = `idx_${RUN}_title`;
  const c = await su.collections.create({
    name: C.renames,
    type: 'base',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'n', type: 'number' },
      { name: 'left', type: 'text' },
      { name: 'right', type: 'text' },
    ],
    indexes: [`CREATE UNIQUE INDEX ${idx} ON ${C.renames} (title)`],
    listRule: 'title != "hidden"',
  });
  const rec = await su.collection(C.renames).create({ title: 'hello', n: 3, left: 'L', right: 'R' });
  const renamed = (fields, from, to, extra = {}) =>
    fields.map((f) => (f.name === from ? { ...f, name: to, ...extra } : f));
  // What the dashboard sends: the same field id under a new name, the index and rule updated.
  let upd = await su.collections.update(c.id, {
    fields: renamed(c.fields, 'title', 'headline', { max: 10 }),
    indexes: [`CREATE UNIQUE INDEX ${idx} ON ${C.renames} (headline)`],
    listRule: 'headline != "hidden"',
  });
  assert.deepEqual(upd.fields.map((f) => f.name), ['id', 'headline', 'n', 'left', 'right']);
  assert.equal(upd.fields[1].id, c.fields[1].id);
  let got = await su.collection(C.renames).getOne(rec.id);
  assert.equal(got.headline, 'hello');
  assert.equal(got.title, undefined);
  assert.equal(got.n, 3);
  // The new options hold, and so does the unique index on the renamed column.
  await expectError(su.collection(C.renames).create({ headline: 'far too long' }), 400, 'max 10');
  await expectError(su.collection(C.renames).create({ headline: 'hello' }), 400, 'unique');
  // Two fields swap names in one request.
  upd = await su.collections.update(c.id, {
    listRule: null,
    fields: upd.fields.map((f) => (f.name === 'left' ? { ...f, name: 'right' } : f.name === 'right' ? { ...f, name: 'left' } : f)),
  });
  got = await su.collection(C.renames).getOne(rec.id);
  assert.deepEqual([got.left, got.right], ['R', 'L']);
  // An index still naming the old column is refused on that index; nothing changes.
  let body = await expectError(su.collections.update(c.id, { fields: renamed(upd.fields, 'headline', 'heading') }), 400);
  assert.equal(body.data.indexes[0].code, 'validation_invalid_index_expression');
  // A change of type on a kept id is refused.
  body = await expectError(su.collections.update(c.id, { fields: upd.fields.map((f) => (f.name === 'n' ? { ...f, type: 'text' } : f)) }), 400);
  assert.equal(body.data.fields[2].code, 'validation_field_type_change');
  got = await su.collection(C.renames).getOne(rec.id);
  assert.deepEqual([got.headline, got.n], ['hello', 3]);
  // The collection and a field renamed at once.
  upd = await su.collections.update(c.id, {
    name: C.renamed,
    fields: renamed(upd.fields, 'headline', 'heading'),
    indexes: [`CREATE UNIQUE INDEX ${idx} ON ${C.renames} (heading)`],
    listRule: null,
  });
  assert.equal(upd.name, C.renamed);
  assert.equal(upd.indexes.length, 1);
  assert.match(upd.indexes[0], new RegExp(`ON [\`"]?${C.renamed}[\`"]? \\(`));
  got = await su.collection(C.renamed).getOne(rec.id);
  assert.deepEqual([got.heading, got.n, got.left], ['hello', 3, 'R']);
  await su.collections.delete(c.id);
});
}
