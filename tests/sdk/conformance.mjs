// PocketBase-compatibility conformance suite, driven through PocketBase's official JS SDK.
//
// Usage:  PB_URL=http://127.0.0.1:8090 PB_SUPERUSER_EMAIL=... PB_SUPERUSER_PASSWORD=... node conformance.mjs
//
// Prints one line per check ("ok - name" / "not ok - name: reason") and, last, exactly one
// "N passed, M failed" line. Exit code 0 only when M == 0.
//
// The reference is the REAL PocketBase (0.40.x): every expectation below was observed on it.
// Where its behaviour is surprising, the check says so in a "PB:" comment, because pier has to
// reproduce it, not "fix" it. Every run uses fresh, uniquely named collections and users, so the
// suite can be rerun against the same server. It does change one server setting: it turns batch
// requests off (to see the 403), then on, and finally restores what it found.
//
// Optional: CONFORMANCE_FILTER=<regex> runs only the checks whose name matches (setup checks
// that others depend on may then be skipped, so expect failures downstream of them).

import {
  assert, PocketBase, ClientResponseError, BASE, SU_EMAIL, SU_PASSWORD, check, expectError,
  assertErrorShape, fieldCode, client, raw, jwtPayload, sleep, DATE_RE, ID_RE, names, sortedKeys,
  finish,
} from './harness.mjs';

// ---------------------------------------------------------------------------------------------
// run-unique names

const RUN = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const C = {
  orgs: `${RUN}_orgs`, // listRule/viewRule null: superuser only
  cats: `${RUN}_cats`,
  items: `${RUN}_items`, // the list/filter/sort/expand fixture
  authors: `${RUN}_authors`,
  tags: `${RUN}_tags`,
  posts: `${RUN}_posts`, // every field type
  scratch: `${RUN}_scratch`,
  locked: `${RUN}_locked`,
  open: `${RUN}_open`,
  authed: `${RUN}_authed`,
  notes: `${RUN}_notes`,
  members: `${RUN}_members`,
  imp1: `${RUN}_imp1`,
  imp2: `${RUN}_imp2`,
  view: `${RUN}_view`,
  batch: `${RUN}_batch`,
  renames: `${RUN}_renames`,
  renamed: `${RUN}_renamed`,
};
const email = (who) => `${RUN}_${who}@example.com`;
const PASSWORD = 'Secret12345';

const su = client();
const guest = client();
const state = {}; // ids and objects shared between checks

console.log(`# conformance run ${RUN} against ${BASE}`);

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

// =============================================================================================
// records: create / validation / get / update / delete

await check('records: create (JSON) returns every field with zero values + meta keys', async () => {
  const a = await guest.collection(C.authors).create({ name: 'Ann' });
  state.ann = a;
  const t1 = await guest.collection(C.tags).create({ name: 't1' });
  const t2 = await guest.collection(C.tags).create({ name: 't2' });
  const t3 = await guest.collection(C.tags).create({ name: 't3' });
  state.t = [t1, t2, t3];
  const r = await guest.collection(C.posts).create({ title: 'abc' });
  state.emptyPost = r;
  assert.match(r.id, ID_RE);
  assert.equal(r.collectionId, state.posts.id);
  assert.equal(r.collectionName, C.posts);
  assert.match(r.created, DATE_RE);
  assert.match(r.updated, DATE_RE);
  assert.deepEqual({ ...r, id: 0, created: 0, updated: 0 }, {
    id: 0, created: 0, updated: 0, collectionId: state.posts.id, collectionName: C.posts,
    title: 'abc', views: 0, published: false, contact: '', website: '', pubdate: '', status: '', labels: [],
    meta: null, author: '', tags: [], attachment: '', docs: [], body: '',
    // PB: "secret" is a hidden field, so it is absent for a guest
  });
});

await check('records: create with all field types, values normalised', async () => {
  const r = await guest.collection(C.posts).create({
    title: 'Hello', views: 42, published: true, contact: 'x@example.com', website: 'https://example.com/a',
    pubdate: '2024-01-02T03:04:05Z', status: 'live', labels: ['b', 'a'], meta: { k: 'v', deep: { n: 2 }, arr: [1, 2] },
    author: state.ann.id, tags: [state.t[0].id, state.t[1].id],
    body: '<p>Hello <b>world</b> and more text here</p>', secret: 's3cret-by-guest',
  });
  state.post = r;
  assert.equal(r.views, 42);
  assert.equal(r.published, true);
  assert.equal(r.contact, 'x@example.com');
  assert.equal(r.website, 'https://example.com/a');
  assert.equal(r.pubdate, '2024-01-02 03:04:05.000Z'); // PB: space separator, millis, Z
  assert.equal(r.status, 'live');
  assert.deepEqual(r.labels, ['b', 'a']); // order as given, not the option order
  assert.deepEqual(r.meta, { k: 'v', deep: { n: 2 }, arr: [1, 2] });
  assert.equal(r.author, state.ann.id);
  assert.deepEqual(r.tags, [state.t[0].id, state.t[1].id]);
  assert.equal(r.body, '<p>Hello <b>world</b> and more text here</p>');
  assert.equal(r.created, r.updated);
});

await check('records: loose typing (strings cast, bad date/json accepted)', async () => {
  const r = await guest.collection(C.posts).create({
    title: 'cast', views: '12', published: 'true', pubdate: 'not a date', meta: '{not json', labels: 'c', status: ['draft', 'live'],
  });
  assert.equal(r.views, 12); // PB: numeric strings are cast
  assert.equal(r.published, true);
  assert.equal(r.pubdate, ''); // PB: an unparsable date is silently stored as "" (no error)
  assert.equal(r.meta, '{not json'); // PB: an invalid JSON string is kept as a JSON string value
  assert.deepEqual(r.labels, ['c']); // PB: a scalar for a multi-select becomes a one-item array
  assert.equal(r.status, 'live'); // PB: an array for a single select keeps the LAST value
  const r2 = await guest.collection(C.posts).create({ title: 'cast2', views: 'abc' });
  assert.equal(r2.views, 0); // PB: non-numeric string -> 0, not an error
});

await check('records: missing required field -> 400 data.title.code validation_required', async () => {
  const body = await expectError(guest.collection(C.posts).create({ views: 1 }), 400);
  assertErrorShape(body, 400, 'Failed to create record.');
  assert.deepEqual(body.data, { title: { code: 'validation_required', message: 'Cannot be blank.' } });
});

await check('records: text min/max -> validation_min/max_text_constraint with params', async () => {
  const b1 = await expectError(guest.collection(C.posts).create({ title: 'ab' }), 400);
  assert.equal(fieldCode(b1, 'title'), 'validation_min_text_constraint');
  assert.deepEqual(b1.data.title.params, { min: 3 });
  const b2 = await expectError(guest.collection(C.posts).create({ title: 'x'.repeat(21) }), 400);
  assert.equal(fieldCode(b2, 'title'), 'validation_max_text_constraint');
  assert.deepEqual(b2.data.title.params, { max: 20 });
});

await check('records: email/url/select/relation validation codes', async () => {
  const P = guest.collection(C.posts);
  assert.equal(fieldCode(await expectError(P.create({ title: 'abc', contact: 'nope' }), 400), 'contact'), 'validation_is_email');
  assert.equal(fieldCode(await expectError(P.create({ title: 'abc', website: 'nope' }), 400), 'website'), 'validation_invalid_url');
  const b = await expectError(P.create({ title: 'abc', status: 'nope' }), 400);
  assert.equal(fieldCode(b, 'status'), 'validation_invalid_value');
  assert.deepEqual(b.data.status.params, { value: 'nope' });
  assert.equal(fieldCode(await expectError(P.create({ title: 'abc', labels: ['a', 'zz'] }), 400), 'labels'), 'validation_invalid_value');
  assert.equal(fieldCode(await expectError(P.create({ title: 'abc', author: 'nonexistent1234' }), 400), 'author'), 'validation_missing_rel_records');
  const many = await expectError(P.create({ title: 'abc', tags: ['a', 'b', 'c', 'd', 'e', 'f'].map((x) => x.repeat(15)) }), 400);
  assert.ok(fieldCode(many, 'tags'), JSON.stringify(many.data));
});

await check('records: several invalid fields are reported together', async () => {
  const body = await expectError(guest.collection(C.posts).create({ title: '', contact: 'bad', website: 'bad' }), 400);
  assert.deepEqual(sortedKeys(body.data), ['contact', 'title', 'website']);
});

await check('records: custom 15-char id accepted; short/duplicate id rejected', async () => {
  const id = (RUN + 'xx' + '0'.repeat(15)).slice(0, 15);
  const r = await guest.collection(C.posts).create({ id, title: 'custom' });
  assert.equal(r.id, id);
  state.customId = id;
  const b1 = await expectError(guest.collection(C.posts).create({ id: 'abc', title: 'custom' }), 400);
  assert.equal(fieldCode(b1, 'id'), 'validation_min_text_constraint');
  const b2 = await expectError(guest.collection(C.posts).create({ id, title: 'custom' }), 400);
  assert.equal(fieldCode(b2, 'id'), 'validation_not_unique');
});

await check('records: get one', async () => {
  const r = await guest.collection(C.posts).getOne(state.post.id);
  assert.equal(r.id, state.post.id);
  assert.equal(r.title, 'Hello');
  assert.deepEqual(r.meta, { k: 'v', deep: { n: 2 }, arr: [1, 2] });
});

await check('records: get missing id -> 404 "The requested resource wasn\'t found."', async () => {
  const body = await expectError(guest.collection(C.posts).getOne('doesnotexist123'), 404);
  assertErrorShape(body, 404, "The requested resource wasn't found.");
  assert.deepEqual(body.data, {});
});

await check('records: unknown collection -> 404 "Missing collection context."', async () => {
  const body = await expectError(guest.collection(`${RUN}_nosuch`).getList(1, 1), 404);
  assertErrorShape(body, 404, 'Missing collection context.');
});

await check('records: hidden field: not returned to guest, returned to superuser', async () => {
  const g = await guest.collection(C.posts).getOne(state.post.id);
  assert.ok(!('secret' in g), 'guest must not see hidden field');
  const g2 = await guest.collection(C.posts).getOne(state.post.id, { fields: 'id,secret' });
  assert.deepEqual(g2, { id: state.post.id });
  const s = await su.collection(C.posts).getOne(state.post.id);
  // PB: a guest write to a hidden field is silently dropped
  assert.equal(s.secret, '');
  const s2 = await su.collection(C.posts).update(state.post.id, { secret: 'top' });
  assert.equal(s2.secret, 'top');
  await guest.collection(C.posts).update(state.post.id, { secret: 'changed-by-guest' });
  assert.equal((await su.collection(C.posts).getOne(state.post.id, { fields: 'secret' })).secret, 'top');
});

await check('records: filtering by a hidden field: 400 for guest, works for superuser', async () => {
  const body = await expectError(guest.collection(C.posts).getList(1, 5, { filter: 'secret = "top"' }), 400);
  assertErrorShape(body, 400);
  const r = await su.collection(C.posts).getList(1, 5, { filter: 'secret = "top"' });
  assert.deepEqual(r.items.map((x) => x.id), [state.post.id]);
});

await check('records: update sets fields, bumps updated, keeps created', async () => {
  await sleep(5);
  const r = await guest.collection(C.posts).update(state.post.id, { title: 'Hello 2', published: false });
  assert.equal(r.title, 'Hello 2');
  assert.equal(r.published, false);
  assert.equal(r.views, 42, 'untouched field kept');
  assert.equal(r.created, state.post.created);
  assert.ok(r.updated > state.post.updated, `updated ${r.updated} > ${state.post.updated}`);
});

await check('records: update validation error -> 400 "Failed to update record."', async () => {
  const body = await expectError(guest.collection(C.posts).update(state.post.id, { title: '' }), 400);
  assertErrorShape(body, 400, 'Failed to update record.');
  assert.equal(fieldCode(body, 'title'), 'validation_required');
});

await check('records: number modifiers views+ / views- (and +views is ignored)', async () => {
  const P = guest.collection(C.posts);
  const id = state.post.id;
  assert.equal((await P.update(id, { 'views+': 5 })).views, 47);
  assert.equal((await P.update(id, { 'views-': 3 })).views, 44);
  // PB: the prepend form has no meaning for numbers and is silently ignored
  assert.equal((await P.update(id, { '+views': 100 })).views, 44);
  // PB: a plain value and a modifier in one body: set first, then modify
  assert.equal((await P.update(id, { views: 1, 'views+': 2 })).views, 3);
});

await check('records: multi-select modifiers labels+ / +labels / labels-', async () => {
  const P = guest.collection(C.posts);
  const id = state.post.id; // labels are ['b','a']
  assert.deepEqual((await P.update(id, { labels: ['b'] })).labels, ['b']);
  assert.deepEqual((await P.update(id, { 'labels+': ['c', 'd'] })).labels, ['b', 'c', 'd']);
  assert.deepEqual((await P.update(id, { '+labels': 'a' })).labels, ['a', 'b', 'c', 'd']);
  assert.deepEqual((await P.update(id, { 'labels-': ['b', 'd'] })).labels, ['a', 'c']);
  // PB: appending an existing value does not duplicate it
  assert.deepEqual((await P.update(id, { 'labels+': 'a' })).labels, ['a', 'c']);
});

await check('records: multi-relation modifiers tags+ / tags- / +tags', async () => {
  const P = guest.collection(C.posts);
  const id = state.post.id;
  const [t1, t2, t3] = state.t.map((t) => t.id);
  assert.deepEqual((await P.update(id, { 'tags+': t3 })).tags, [t1, t2, t3]);
  assert.deepEqual((await P.update(id, { 'tags-': [t1] })).tags, [t2, t3]);
  assert.deepEqual((await P.update(id, { '+tags': t1 })).tags, [t1, t2, t3]);
  await expectError(P.update(id, { 'tags+': 'nonexistent1234' }), 400, 'append missing relation id');
});

await check('records: delete -> true (204), then 404; deleting again -> 404', async () => {
  const r = await guest.collection(C.posts).create({ title: 'doomed' });
  assert.equal(await guest.collection(C.posts).delete(r.id), true);
  await expectError(guest.collection(C.posts).getOne(r.id), 404);
  await expectError(guest.collection(C.posts).delete(r.id), 404);
});

await check('records: deleting a target removes it from non-cascade multi relations', async () => {
  const [t1, t2, t3] = state.t.map((t) => t.id);
  await su.collection(C.tags).delete(t2);
  const r = await guest.collection(C.posts).getOne(state.post.id);
  assert.deepEqual(r.tags, [t1, t3]);
});

await check('records: cascadeDelete relation deletes the referencing records', async () => {
  const bob = await guest.collection(C.authors).create({ name: 'Bob' });
  const p1 = await guest.collection(C.posts).create({ title: 'bob1', author: bob.id });
  const p2 = await guest.collection(C.posts).create({ title: 'bob2', author: bob.id });
  await guest.collection(C.authors).delete(bob.id);
  await expectError(guest.collection(C.posts).getOne(p1.id), 404, 'p1 after cascade');
  await expectError(guest.collection(C.posts).getOne(p2.id), 404, 'p2 after cascade');
  // the other author's post is untouched
  assert.equal((await guest.collection(C.posts).getOne(state.post.id)).author, state.ann.id);
});

await check('records: JSON field path filter (meta.k, meta.deep.n)', async () => {
  const r = await guest.collection(C.posts).getList(1, 10, { filter: 'meta.k = "v" && meta.deep.n > 1' });
  assert.deepEqual(r.items.map((x) => x.id), [state.post.id]);
  const none = await guest.collection(C.posts).getList(1, 10, { filter: 'meta.k = "w"' });
  assert.equal(none.totalItems, 0);
});

// =============================================================================================
// list / filter / sort / fields / expand  (fixture: cats + items)

const ITEMS = [
  // name, n, grp, labels, cat, cats, when
  ['Alpha', 1, 'x', ['a'], 'fruit', ['fruit', 'veg'], '2000-01-01 00:00:00.000Z'],
  ['beta', 2, 'x', ['a', 'b'], 'fruit', ['veg'], '2100-01-01 00:00:00.000Z'],
  ['Gamma', 3, 'y', [], 'veg', [], ''],
  ['delta', 4, 'y', ['c', 'b', 'a'], '', ['fruit'], '2000-06-01 00:00:00.000Z'],
  ['EPSILON', 5, 'y', ['b'], 'veg', [], ''],
];

await check('list fixture: items collection + 5 records', async () => {
  await su.collections.create({
    name: C.items, type: 'base', listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'name', type: 'text' }, { name: 'n', type: 'number' }, { name: 'grp', type: 'text' },
      { name: 'labels', type: 'select', values: ['a', 'b', 'c'], maxSelect: 3 },
      { name: 'cat', type: 'relation', collectionId: state.cats.id, maxSelect: 1 },
      { name: 'cats', type: 'relation', collectionId: state.cats.id, maxSelect: 5 },
      { name: 'org', type: 'relation', collectionId: state.orgs.id, maxSelect: 1 },
      { name: 'when', type: 'date' },
      { name: 'note', type: 'editor' },
      { name: 'created', type: 'autodate', onCreate: true },
    ],
  });
  const root = await su.collection(C.cats).create({ name: 'root' });
  const fruit = await su.collection(C.cats).create({ name: 'Fruit', parent: root.id });
  const veg = await su.collection(C.cats).create({ name: 'veg' });
  state.catIds = { root: root.id, fruit: fruit.id, veg: veg.id };
  state.items = [];
  for (const [name, n, grp, labels, cat, cats, when] of ITEMS) {
    state.items.push(await su.collection(C.items).create({
      name, n, grp, labels, when,
      cat: cat ? state.catIds[cat] : '',
      cats: cats.map((c) => state.catIds[c]),
      org: n === 1 ? state.acme.id : '',
      note: n === 1 ? '<p>Lorem <i>ipsum</i> dolor sit amet</p>' : '',
    }));
  }
  assert.equal(state.items.length, 5);
});

const I = () => guest.collection(C.items);
const byNameList = async (filter, extra = {}) => names((await I().getList(1, 50, { filter, sort: 'n', ...extra })).items);

await check('list: default envelope page=1 perPage=30 with totals (raw GET)', async () => {
  const r = await raw('GET', `/api/collections/${C.items}/records`);
  assert.equal(r.status, 200);
  assert.deepEqual(sortedKeys(r.json), ['items', 'page', 'perPage', 'totalItems', 'totalPages']);
  assert.equal(r.json.page, 1);
  assert.equal(r.json.perPage, 30);
  assert.equal(r.json.totalItems, 5);
  assert.equal(r.json.totalPages, 1);
  // PB: without sort there is no ORDER BY: rows come back in insertion (rowid) order
  assert.deepEqual(names(r.json.items), ITEMS.map((x) => x[0]));
});

await check('list: page/perPage/totalItems/totalPages', async () => {
  const r = await I().getList(2, 2, { sort: 'n' });
  assert.equal(r.page, 2);
  assert.equal(r.perPage, 2);
  assert.equal(r.totalItems, 5);
  assert.equal(r.totalPages, 3);
  assert.deepEqual(names(r.items), ['Gamma', 'delta']);
  const last = await I().getList(3, 2, { sort: 'n' });
  assert.deepEqual(names(last.items), ['EPSILON']);
});

await check('list: page past the end -> empty items, totals still reported', async () => {
  const r = await I().getList(9, 2, { sort: 'n' });
  assert.deepEqual(r.items, []);
  assert.equal(r.page, 9);
  assert.equal(r.totalItems, 5);
  assert.equal(r.totalPages, 3);
});

await check('list: skipTotal -> totalItems and totalPages are -1', async () => {
  const r = await I().getList(1, 2, { sort: 'n', skipTotal: true });
  assert.equal(r.totalItems, -1);
  assert.equal(r.totalPages, -1);
  assert.deepEqual(names(r.items), ['Alpha', 'beta']);
});

await check('list: perPage capped at 1000, page<1 -> 1, perPage 0 -> 30, perPage=abc -> 400', async () => {
  const a = await raw('GET', `/api/collections/${C.items}/records?perPage=5000&page=0`);
  assert.equal(a.status, 200);
  assert.equal(a.json.perPage, 1000);
  assert.equal(a.json.page, 1);
  const b = await raw('GET', `/api/collections/${C.items}/records?perPage=0`);
  assert.equal(b.json.perPage, 30);
  const c = await raw('GET', `/api/collections/${C.items}/records?perPage=abc`);
  assert.equal(c.status, 400); // PB: a non-numeric perPage is a 400, not ignored
  assertErrorShape(c.json, 400);
});

await check('sort: -created (newest first); created,-n tie-break', async () => {
  const r = await I().getList(1, 50, { sort: '-created' });
  const created = r.items.map((x) => x.created);
  for (let i = 1; i < created.length; i++) assert.ok(created[i - 1] >= created[i], `${created}`);
  const r2 = await I().getList(1, 50, { sort: '-created,-n' });
  assert.deepEqual(names(r2.items), ['EPSILON', 'delta', 'Gamma', 'beta', 'Alpha']);
});

await check('sort: multiple fields (grp,-n and -grp,n)', async () => {
  assert.deepEqual(names((await I().getList(1, 50, { sort: 'grp,-n' })).items), ['beta', 'Alpha', 'EPSILON', 'delta', 'Gamma']);
  assert.deepEqual(names((await I().getList(1, 50, { sort: '-grp,+n' })).items), ['Gamma', 'delta', 'EPSILON', 'Alpha', 'beta']);
});

await check('sort: text sort is binary / case-sensitive (uppercase first)', async () => {
  // PB: SQLite BINARY collation: 'EPSILON' < 'Gamma' < 'beta'. A PostgreSQL backend needs COLLATE "C".
  assert.deepEqual(names((await I().getList(1, 50, { sort: 'name' })).items), ['Alpha', 'EPSILON', 'Gamma', 'beta', 'delta']);
});

await check('sort: by relation field (-cat.name,n)', async () => {
  // empty relation sorts as "" (last when descending)
  assert.deepEqual(names((await I().getList(1, 50, { sort: '-cat.name,n' })).items), ['Gamma', 'EPSILON', 'Alpha', 'beta', 'delta']);
});

await check('sort: @random returns every record once; @rowid / -@rowid', async () => {
  const r = await I().getList(1, 50, { sort: '@random' });
  assert.deepEqual(names(r.items).sort(), ITEMS.map((x) => x[0]).sort());
  assert.equal(r.totalItems, 5);
  assert.deepEqual(names((await I().getList(1, 50, { sort: '-@rowid' })).items), ['EPSILON', 'delta', 'Gamma', 'beta', 'Alpha']);
});

await check('sort: unknown field -> 400', async () => {
  const body = await expectError(I().getList(1, 5, { sort: 'nosuchfield' }), 400);
  assertErrorShape(body, 400);
});

await check('filter: = != > >= < <=', async () => {
  assert.deepEqual(await byNameList('n = 3'), ['Gamma']);
  assert.deepEqual(await byNameList('n != 3'), ['Alpha', 'beta', 'delta', 'EPSILON']);
  assert.deepEqual(await byNameList('n > 3'), ['delta', 'EPSILON']);
  assert.deepEqual(await byNameList('n >= 3'), ['Gamma', 'delta', 'EPSILON']);
  assert.deepEqual(await byNameList('n < 3'), ['Alpha', 'beta']);
  assert.deepEqual(await byNameList('n <= 3'), ['Alpha', 'beta', 'Gamma']);
});

await check('filter: = on text is case-sensitive; single quotes work', async () => {
  assert.deepEqual(await byNameList('name = "alpha"'), []);
  assert.deepEqual(await byNameList("name = 'Alpha'"), ['Alpha']);
});

await check('filter: ~ / !~ are case-insensitive contains; explicit % is honoured', async () => {
  assert.deepEqual(await byNameList('name ~ "AL"'), ['Alpha']);
  assert.deepEqual(await byNameList('name !~ "al"'), ['beta', 'Gamma', 'delta', 'EPSILON']);
  assert.deepEqual(await byNameList('name ~ "%a"'), ['Alpha', 'beta', 'Gamma', 'delta']);
  assert.deepEqual(await byNameList('name ~ "e%"'), ['EPSILON']);
});

await check('filter: && || and parentheses', async () => {
  assert.deepEqual(await byNameList('n > 1 && n < 5'), ['beta', 'Gamma', 'delta']);
  assert.deepEqual(await byNameList('n = 1 || n = 5'), ['Alpha', 'EPSILON']);
  assert.deepEqual(await byNameList('(n = 1 || n = 2 || n = 3) && grp = "x"'), ['Alpha', 'beta']);
  assert.deepEqual(await byNameList('n = 1 || (n = 4 && grp = "y")'), ['Alpha', 'delta']);
});

await check('filter: relation path (cat.name) and nested path (cat.parent.name)', async () => {
  assert.deepEqual(await byNameList('cat.name = "Fruit"'), ['Alpha', 'beta']);
  assert.deepEqual(await byNameList('cat.parent.name = "root"'), ['Alpha', 'beta']);
  assert.deepEqual(await byNameList('cat = ""'), ['delta']);
  assert.deepEqual(await byNameList(`cat = "${state.catIds.veg}"`), ['Gamma', 'EPSILON']);
});

await check('filter: any-of ?= vs all-of = over a multi relation path', async () => {
  assert.deepEqual(await byNameList('cats.name ?= "veg"'), ['Alpha', 'beta']);
  // PB: without "?", a comparison over a multi-valued path must hold for EVERY item
  assert.deepEqual(await byNameList('cats.name = "veg"'), ['beta']);
  // PB: records with an EMPTY multi relation also match "?!=" (the joined NULL counts as "not equal")
  assert.deepEqual(await byNameList('cats.name ?!= "veg"'), ['Alpha', 'Gamma', 'delta', 'EPSILON']);
});

await check('filter: multi-select: :each ?=, :each =, ~, and bare ?= quirk', async () => {
  assert.deepEqual(await byNameList('labels:each ?= "a"'), ['Alpha', 'beta', 'delta']);
  assert.deepEqual(await byNameList('labels:each = "a"'), ['Alpha']);
  assert.deepEqual(await byNameList('labels ~ "b"'), ['beta', 'delta', 'EPSILON']);
  // PB: surprising: a bare multi-select field is compared as its whole JSON value, so
  // `labels ?= "a"` matches nothing here; use `labels:each ?= "a"` or `labels ~ "a"`.
  assert.deepEqual(await byNameList('labels ?= "a"'), []);
  assert.deepEqual(await byNameList('labels = \'["a"]\''), ['Alpha']);
});

await check('filter: :length on multi select / multi relation', async () => {
  assert.deepEqual(await byNameList('labels:length > 1'), ['beta', 'delta']);
  assert.deepEqual(await byNameList('labels:length = 0'), ['Gamma']);
  assert.deepEqual(await byNameList('cats:length = 2'), ['Alpha']);
  assert.deepEqual(await byNameList('cats:length = 0'), ['Gamma', 'EPSILON']);
});

await check('filter: :lower', async () => {
  assert.deepEqual(await byNameList('name:lower = "alpha"'), ['Alpha']);
  assert.deepEqual(await byNameList('name:lower = "epsilon" || name:lower = "gamma"'), ['Gamma', 'EPSILON']);
});

await check('filter: datetime macros @now / @yesterday / @tomorrow', async () => {
  assert.deepEqual(await byNameList('created <= @now'), ITEMS.map((x) => x[0]));
  assert.deepEqual(await byNameList('created > @now'), []);
  assert.deepEqual(await byNameList('created > @yesterday && created < @tomorrow'), ITEMS.map((x) => x[0]));
  assert.deepEqual(await byNameList('when > @now'), ['beta']);
  // PB: an empty date is "" and compares as a string, so it is "before" @now
  assert.deepEqual(await byNameList('when < @now'), ['Alpha', 'Gamma', 'delta', 'EPSILON']);
  assert.deepEqual(await byNameList('when = ""'), ['Gamma', 'EPSILON']);
  assert.deepEqual(await byNameList('when >= "2000-03-01 00:00:00.000Z" && when <= "2001-01-01"'), ['delta']);
});

await check('filter: @request.auth.id works for superusers, is 403 for guests', async () => {
  const r = await su.collection(C.items).getList(1, 50, { filter: '@request.auth.id != ""' });
  assert.equal(r.totalItems, 5);
  // PB: client-side filters may use @request.* only as a superuser; others get 403
  const body = await expectError(I().getList(1, 5, { filter: '@request.auth.id = ""' }), 403);
  assertErrorShape(body, 403, 'Only superusers can filter by @request.');
});

await check('filter: pb.filter() parameter binding escapes quotes', async () => {
  const weird = 'a"b\'c';
  await su.collection(C.items).create({ name: weird, n: 99 });
  const r = await I().getList(1, 5, { filter: su.filter('name = {:v} && n = {:n}', { v: weird, n: 99 }) });
  assert.deepEqual(names(r.items), [weird]);
  await su.collection(C.items).delete(r.items[0].id);
});

await check('filter: invalid filters -> 400 "Something went wrong while processing your request."', async () => {
  for (const f of ['nosuchfield = 1', 'n = ', '(n > 1', 'name = "Alpha" &&']) {
    const body = await expectError(I().getList(1, 5, { filter: f }), 400, `filter ${f}`);
    assertErrorShape(body, 400, 'Something went wrong while processing your request.');
    assert.deepEqual(body.data, {});
  }
});

await check('fields: projection returns only the requested keys', async () => {
  const r = await I().getList(1, 2, { sort: 'n', fields: 'id,name' });
  assert.deepEqual(r.items.map(sortedKeys), [['id', 'name'], ['id', 'name']]);
  assert.deepEqual(names(r.items), ['Alpha', 'beta']);
  // envelope keys are not affected
  assert.equal(r.totalItems, 5);
});

await check('fields: :excerpt(10,true) strips HTML and adds an ellipsis; :excerpt(10) does not', async () => {
  const a = await I().getOne(state.items[0].id, { fields: 'id,note:excerpt(10,true)' });
  assert.deepEqual(a, { id: state.items[0].id, note: 'Lorem ipsu...' });
  const b = await I().getOne(state.items[0].id, { fields: 'note:excerpt(10)' });
  assert.deepEqual(b, { note: 'Lorem ipsu' });
  const c = await I().getOne(state.items[1].id, { fields: 'note:excerpt(10,true)' });
  assert.deepEqual(c, { note: '' });
});

await check('expand: single relation', async () => {
  const r = await I().getOne(state.items[0].id, { expand: 'cat' });
  assert.equal(r.cat, state.catIds.fruit, 'relation value stays the id');
  assert.equal(r.expand.cat.id, state.catIds.fruit);
  assert.equal(r.expand.cat.name, 'Fruit');
  assert.equal(r.expand.cat.collectionName, C.cats);
});

await check('expand: multi relation keeps the stored order', async () => {
  const r = await I().getOne(state.items[0].id, { expand: 'cats' });
  assert.ok(Array.isArray(r.expand.cats));
  assert.deepEqual(names(r.expand.cats), ['Fruit', 'veg']);
});

await check('expand: nested a.b puts the inner expand inside the outer record', async () => {
  const r = await I().getOne(state.items[0].id, { expand: 'cat.parent' });
  assert.equal(r.expand.cat.name, 'Fruit');
  assert.equal(r.expand.cat.expand.parent.name, 'root');
});

await check('expand: on a list, empty relation has no expand key', async () => {
  const r = await I().getList(1, 50, { sort: 'n', expand: 'cat,cats' });
  const delta = r.items.find((x) => x.name === 'delta');
  assert.ok(!('cat' in delta.expand), 'no expand.cat for empty relation');
  assert.deepEqual(names(delta.expand.cats), ['Fruit']);
  const gamma = r.items.find((x) => x.name === 'Gamma');
  assert.equal(gamma.expand.cat.name, 'veg');
  assert.ok(!('cats' in gamma.expand), 'no expand.cats for empty multi relation');
});

await check('expand: back-relation <collection>_via_<field>', async () => {
  const r = await guest.collection(C.cats).getOne(state.catIds.fruit, { expand: `${C.items}_via_cat,${C.items}_via_cats` });
  assert.deepEqual(names(r.expand[`${C.items}_via_cat`]).sort(), ['Alpha', 'beta']);
  assert.deepEqual(names(r.expand[`${C.items}_via_cats`]).sort(), ['Alpha', 'delta']);
  // PB: a back-relation with no match leaves an empty expand object
  const root = await guest.collection(C.cats).getOne(state.catIds.root, { expand: `${C.items}_via_cat` });
  assert.deepEqual(root.expand, {});
});

await check('expand: fields can project into expand (id,expand.cat.name)', async () => {
  const r = await I().getOne(state.items[0].id, { expand: 'cat', fields: 'id,expand.cat.name' });
  assert.deepEqual(r, { id: state.items[0].id, expand: { cat: { name: 'Fruit' } } });
});

await check('expand: unknown expand is ignored; target view rule is enforced', async () => {
  const r = await I().getOne(state.items[0].id, { expand: 'nosuchfield' });
  assert.ok(!('expand' in r), 'PB ignores an unknown expand');
  // orgs has viewRule null: a guest gets no expand, a superuser does
  const g = await I().getOne(state.items[0].id, { expand: 'org' });
  assert.equal(g.org, state.acme.id);
  assert.ok(!g.expand || !g.expand.org, 'guest must not see expand.org');
  const s = await su.collection(C.items).getOne(state.items[0].id, { expand: 'org' });
  assert.equal(s.expand.org.name, 'acme');
});

await check('filter: relation path into a superuser-only collection is 400 for guests', async () => {
  // PB (0.31+): filtering across a relation checks the target's listRule
  await expectError(I().getList(1, 5, { filter: 'org.name = "acme"' }), 400);
  const r = await su.collection(C.items).getList(1, 5, { filter: 'org.name = "acme"' });
  assert.deepEqual(names(r.items), ['Alpha']);
});

await check('getFullList: pages through everything (batch size 2)', async () => {
  const all = await I().getFullList({ batch: 2, sort: '-n' });
  assert.deepEqual(all.map((x) => x.n), [5, 4, 3, 2, 1]);
});

await check('getFirstListItem: first match, 404 when none', async () => {
  const r = await I().getFirstListItem('n > 3', { sort: 'n' });
  assert.equal(r.name, 'delta');
  await expectError(I().getFirstListItem('n > 300'), 404);
});

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

// =============================================================================================
// auth collection: users

await check('users: default auth collection exists with its default rules', async () => {
  const u = await su.collections.getOne('users');
  assert.equal(u.type, 'auth');
  assert.equal(u.id, '_pb_users_auth_');
  assert.equal(u.listRule, 'id = @request.auth.id');
  assert.equal(u.viewRule, 'id = @request.auth.id');
  assert.equal(u.createRule, '');
  assert.equal(u.updateRule, 'id = @request.auth.id');
  assert.equal(u.deleteRule, 'id = @request.auth.id');
  assert.deepEqual(u.passwordAuth, { enabled: true, identityFields: ['email'] });
  const f = Object.fromEntries(u.fields.map((x) => [x.name, x]));
  for (const n of ['id', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified', 'name', 'avatar', 'created', 'updated']) assert.ok(f[n], n);
  assert.equal(f.password.hidden, true);
  assert.equal(f.tokenKey.hidden, true);
});

await check('users: signup (create with password/passwordConfirm)', async () => {
  const r = await guest.collection('users').create({ email: email('alice'), password: PASSWORD, passwordConfirm: PASSWORD, name: 'Alice' });
  state.alice = r;
  assert.match(r.id, ID_RE);
  assert.equal(r.collectionName, 'users');
  assert.equal(r.name, 'Alice');
  assert.equal(r.verified, false);
  assert.equal(r.emailVisibility, false);
  for (const k of ['password', 'passwordConfirm', 'tokenKey']) assert.ok(!(k in r), `${k} must not be returned`);
  // PB: the guest who signed up does not get the email back when emailVisibility is false
  assert.ok(!('email' in r), 'email hidden in signup response');
  const bob = await guest.collection('users').create({ email: email('bob'), password: PASSWORD, passwordConfirm: PASSWORD, name: 'Bob', emailVisibility: true });
  assert.equal(bob.email, email('bob'));
  state.bob = bob;
});

await check('users: passwordConfirm mismatch -> validation_values_mismatch, reported alone', async () => {
  const body = await expectError(guest.collection('users').create({ email: 'bad', password: '123', passwordConfirm: '456' }), 400);
  assertErrorShape(body, 400, 'Failed to create record.');
  assert.deepEqual(sortedKeys(body.data), ['passwordConfirm']);
  assert.equal(fieldCode(body, 'passwordConfirm'), 'validation_values_mismatch');
});

await check('users: signup validation (missing confirm, short password, bad/duplicate email)', async () => {
  const U = guest.collection('users');
  assert.equal(fieldCode(await expectError(U.create({ email: email('c1'), password: PASSWORD }), 400), 'passwordConfirm'), 'validation_required');
  const b = await expectError(U.create({ email: 'bad', password: '123', passwordConfirm: '123' }), 400);
  assert.equal(fieldCode(b, 'email'), 'validation_is_email');
  assert.equal(fieldCode(b, 'password'), 'validation_min_text_constraint');
  assert.equal(fieldCode(await expectError(U.create({ password: PASSWORD, passwordConfirm: PASSWORD }), 400), 'email'), 'validation_required');
  assert.equal(fieldCode(await expectError(U.create({ email: email('alice'), password: PASSWORD, passwordConfirm: PASSWORD }), 400), 'email'), 'validation_not_unique');
});

await check('users: a guest cannot sign up as verified', async () => {
  const body = await expectError(guest.collection('users').create({ email: email('v'), password: PASSWORD, passwordConfirm: PASSWORD, verified: true }), 400);
  // PB: reported with the generic "values mismatch" code on the verified field
  assert.equal(fieldCode(body, 'verified'), 'validation_values_mismatch');
});

const alice = client();
const bob = client();

await check('users: auth-with-password returns token + own record (with email)', async () => {
  const auth = await alice.collection('users').authWithPassword(email('alice'), PASSWORD);
  assert.equal(auth.record.id, state.alice.id);
  assert.equal(auth.record.email, email('alice')); // PB: the owner always sees their email
  assert.ok(!('password' in auth.record) && !('tokenKey' in auth.record));
  assert.ok(alice.authStore.isValid);
  assert.ok(!alice.authStore.isSuperuser);
  const p = jwtPayload(auth.token);
  assert.deepEqual(sortedKeys(p), ['collectionId', 'exp', 'id', 'refreshable', 'type']);
  assert.equal(p.collectionId, '_pb_users_auth_');
  assert.equal(p.id, state.alice.id);
  assert.equal(p.refreshable, true);
  assert.equal(p.type, 'auth');
  const left = p.exp - Date.now() / 1000;
  assert.ok(Math.abs(left - 432000) < 300, `exp in ${left}s, expected ~432000 (5 days)`);
  await bob.collection('users').authWithPassword(email('bob'), PASSWORD);
});

await check('users: wrong password / unknown email -> 400 "Failed to authenticate."', async () => {
  const b1 = await expectError(client().collection('users').authWithPassword(email('alice'), 'wrong-password'), 400);
  assertErrorShape(b1, 400, 'Failed to authenticate.');
  const b2 = await expectError(client().collection('users').authWithPassword(email('nobody'), PASSWORD), 400);
  assertErrorShape(b2, 400, 'Failed to authenticate.');
});

await check('users: authRefresh returns a fresh token for the same record', async () => {
  const before = alice.authStore.token;
  await sleep(1100); // exp has 1 s resolution
  const r = await alice.collection('users').authRefresh();
  assert.equal(r.record.id, state.alice.id);
  assert.equal(r.record.email, email('alice'));
  assert.notEqual(r.token, before);
  assert.equal(alice.authStore.token, r.token);
});

await check('users: auth-refresh without/with a garbage token -> 401', async () => {
  const b = await expectError(client().collection('users').authRefresh(), 401);
  assertErrorShape(b, 401, 'The request requires valid record authorization token.');
  const r = await raw('POST', '/api/collections/users/auth-refresh', { token: 'garbage.token.value' });
  assert.equal(r.status, 401);
});

await check('users: auth-refresh on a different auth collection -> 403', async () => {
  const body = await expectError(alice.collection('_superusers').authRefresh(), 403);
  assertErrorShape(body, 403);
});

await check('users: auth-methods', async () => {
  const m = await guest.collection('users').listAuthMethods();
  assert.deepEqual(m.password, { enabled: true, identityFields: ['email'] });
  assert.deepEqual(m.oauth2, { enabled: false, providers: [] });
  // PB: durations are reported as 0 while a method is disabled
  assert.deepEqual(m.mfa, { enabled: false, duration: 0 });
  assert.deepEqual(m.otp, { enabled: false, duration: 0 });
});

await check('users: token accepted raw and with "Bearer " (raw fetch); garbage token = guest', async () => {
  const path = `/api/collections/users/records/${state.alice.id}`;
  const a = await raw('GET', path, { token: alice.authStore.token });
  assert.equal(a.status, 200);
  assert.equal(a.json.id, state.alice.id);
  const b = await raw('GET', path, { token: `Bearer ${alice.authStore.token}` });
  assert.equal(b.status, 200);
  assert.equal(b.json.email, email('alice'));
  // PB: an invalid token on a rule-guarded endpoint is treated as a guest (404 here), not 401
  const c = await raw('GET', path, { token: 'garbage.token.value' });
  assert.equal(c.status, 404);
});

await check('users: id = @request.auth.id: a user lists/sees only themself', async () => {
  const list = await alice.collection('users').getList(1, 100);
  assert.deepEqual(list.items.map((x) => x.id), [state.alice.id]);
  assert.equal(list.totalItems, 1);
  const body = await expectError(alice.collection('users').getOne(state.bob.id), 404);
  assertErrorShape(body, 404);
  await expectError(alice.collection('users').update(state.bob.id, { name: 'hacked' }), 404);
  await expectError(alice.collection('users').delete(state.bob.id), 404);
  assert.equal((await guest.collection('users').getList(1, 10)).totalItems, 0);
  await expectError(guest.collection('users').getOne(state.alice.id), 404);
});

await check('users: a user token gets 403 on superuser-only endpoints', async () => {
  const b1 = await expectError(alice.collections.getList(1, 1), 403);
  assertErrorShape(b1, 403, 'The authorized record is not allowed to perform this action.');
  await expectError(alice.settings.getAll(), 403);
});

await check('users: impersonate (superuser) -> non-refreshable token with custom duration', async () => {
  const imp = await su.collection('users').impersonate(state.alice.id, 3600);
  assert.equal(imp.authStore.record.id, state.alice.id);
  const p = jwtPayload(imp.authStore.token);
  assert.equal(p.id, state.alice.id);
  assert.equal(p.refreshable, false);
  const left = p.exp - Date.now() / 1000;
  assert.ok(Math.abs(left - 3600) < 120, `exp in ${left}s`);
  const me = await imp.collection('users').getOne(state.alice.id);
  assert.equal(me.email, email('alice'));
  // PB: refreshing a non-refreshable token succeeds but hands back the very same token
  const before = imp.authStore.token;
  const again = await imp.collection('users').authRefresh();
  assert.equal(again.token, before);
  state.impToken = imp.authStore.token;
});

await check('users: impersonate by a non-superuser -> 403', async () => {
  let err;
  try { await alice.collection('users').impersonate(state.bob.id, 60); } catch (e) { err = e; }
  assert.ok(err instanceof ClientResponseError, 'must fail');
  assert.equal(err.status, 403);
});

await check('users: changing a password needs oldPassword (own account)', async () => {
  const U = alice.collection('users');
  const b1 = await expectError(U.update(state.alice.id, { password: 'NewSecret123', passwordConfirm: 'NewSecret123' }), 400);
  assert.equal(fieldCode(b1, 'oldPassword'), 'validation_required');
  const b2 = await expectError(U.update(state.alice.id, { password: 'NewSecret123', passwordConfirm: 'NewSecret123', oldPassword: 'wrong-one' }), 400);
  assert.equal(fieldCode(b2, 'oldPassword'), 'validation_invalid_old_password');
});

await check('users: changing the password invalidates the old token', async () => {
  const old = alice.authStore.token;
  const r = await alice.collection('users').update(state.alice.id, { password: 'NewSecret123', passwordConfirm: 'NewSecret123', oldPassword: PASSWORD });
  assert.equal(r.id, state.alice.id);
  const path = `/api/collections/users/records/${state.alice.id}`;
  // PB: the old token is now just ignored (guest) on rule-guarded reads ...
  assert.equal((await raw('GET', path, { token: old })).status, 404);
  // ... and rejected where auth is required
  assert.equal((await raw('POST', '/api/collections/users/auth-refresh', { token: old })).status, 401);
  // the impersonation token was signed with the same tokenKey, so it dies too
  assert.equal((await raw('GET', path, { token: state.impToken })).status, 404);
  await expectError(client().collection('users').authWithPassword(email('alice'), PASSWORD), 400, 'old password');
  await alice.collection('users').authWithPassword(email('alice'), 'NewSecret123');
  assert.equal((await raw('GET', path, { token: alice.authStore.token })).status, 200);
});

await check('users: superuser can change a password without oldPassword', async () => {
  await su.collection('users').update(state.bob.id, { password: 'BobSecret999', passwordConfirm: 'BobSecret999' });
  await client().collection('users').authWithPassword(email('bob'), 'BobSecret999');
  assert.equal((await raw('GET', `/api/collections/users/records/${state.bob.id}`, { token: bob.authStore.token })).status, 404);
  await bob.collection('users').authWithPassword(email('bob'), 'BobSecret999');
});

// =============================================================================================
// owner rules on a base collection

await check('rules owner = @request.auth.id: create only for yourself', async () => {
  await su.collections.create({
    name: C.notes, type: 'base',
    listRule: 'owner = @request.auth.id', viewRule: 'owner = @request.auth.id',
    createRule: '@request.auth.id != "" && @request.body.owner = @request.auth.id',
    updateRule: 'owner = @request.auth.id', deleteRule: 'owner = @request.auth.id',
    fields: [{ name: 'text', type: 'text' }, { name: 'owner', type: 'relation', collectionId: '_pb_users_auth_', maxSelect: 1 }],
  });
  const N = alice.collection(C.notes);
  state.noteA = await N.create({ text: 'a1', owner: state.alice.id });
  state.noteB = await bob.collection(C.notes).create({ text: 'b1', owner: state.bob.id });
  await expectError(N.create({ text: 'a2', owner: state.bob.id }), 400, 'create for someone else');
  await expectError(guest.collection(C.notes).create({ text: 'g', owner: state.alice.id }), 400, 'guest create');
});

await check('rules owner: list is filtered per user; superuser sees all', async () => {
  assert.deepEqual((await alice.collection(C.notes).getList(1, 10)).items.map((x) => x.text), ['a1']);
  assert.deepEqual((await bob.collection(C.notes).getList(1, 10)).items.map((x) => x.text), ['b1']);
  assert.equal((await guest.collection(C.notes).getList(1, 10)).totalItems, 0);
  assert.equal((await su.collection(C.notes).getList(1, 10)).totalItems, 2);
});

await check('rules owner: record hidden by view/update/delete rule -> 404 (not 403)', async () => {
  for (const [what, call] of [
    ['view', () => bob.collection(C.notes).getOne(state.noteA.id)],
    ['update', () => bob.collection(C.notes).update(state.noteA.id, { text: 'hack' })],
    ['delete', () => bob.collection(C.notes).delete(state.noteA.id)],
    ['guest view', () => guest.collection(C.notes).getOne(state.noteA.id)],
  ]) {
    const body = await expectError(call(), 404, what);
    assertErrorShape(body, 404, "The requested resource wasn't found.");
  }
  assert.equal((await su.collection(C.notes).getOne(state.noteA.id)).text, 'a1', 'not modified');
});

await check('rules owner: the owner can update and delete', async () => {
  assert.equal((await alice.collection(C.notes).update(state.noteA.id, { text: 'a1x' })).text, 'a1x');
  assert.equal(await alice.collection(C.notes).delete(state.noteA.id), true);
  await expectError(su.collection(C.notes).getOne(state.noteA.id), 404);
});

await check('rules @request.auth.id != "": authenticated user may list/view/create', async () => {
  const A = alice.collection(C.authed);
  assert.equal((await A.getList(1, 10)).totalItems, 1);
  assert.equal((await A.getOne(state.authedRec.id)).t, 'x');
  assert.equal((await A.create({ t: 'by alice' })).t, 'by alice');
  // updateRule is null -> 403 for users too
  await expectError(A.update(state.authedRec.id, { t: 'nope' }), 403);
});

// =============================================================================================
// email visibility (second auth collection whose rules let users see each other)

await check('auth collection: create via API (system fields added, no autodate)', async () => {
  const c = await su.collections.create({
    name: C.members, type: 'auth', listRule: '@request.auth.id != ""', viewRule: '@request.auth.id != ""', createRule: '',
    fields: [{ name: 'nick', type: 'text' }],
  });
  assert.equal(c.type, 'auth');
  assert.deepEqual(c.fields.map((x) => x.name), ['id', 'nick', 'password', 'tokenKey', 'email', 'emailVisibility', 'verified']);
  assert.deepEqual(c.passwordAuth, { enabled: true, identityFields: ['email'] });
  assert.equal(c.authRule, '');
  assert.equal(c.manageRule, null);
  assert.equal(c.authToken.duration, 432000);
});

const mx = client();
const my = client();

await check('emailVisibility: false hides email from other users, not from owner/superuser', async () => {
  const M = (c) => c.collection(C.members);
  const x = await M(guest).create({ email: email('mx'), password: PASSWORD, passwordConfirm: PASSWORD, nick: 'x', emailVisibility: true });
  const y = await M(guest).create({ email: email('my'), password: PASSWORD, passwordConfirm: PASSWORD, nick: 'y' });
  state.mx = x;
  state.my = y;
  await M(mx).authWithPassword(email('mx'), PASSWORD);
  await M(my).authWithPassword(email('my'), PASSWORD);
  const seenByX = await M(mx).getList(1, 10, { sort: 'nick' });
  assert.deepEqual(seenByX.items.map((i) => [i.nick, i.email, i.emailVisibility]), [['x', email('mx'), true], ['y', undefined, false]]);
  assert.ok(!('email' in seenByX.items[1]), 'email key absent, not null');
  const seenByY = await M(my).getList(1, 10, { sort: 'nick' });
  assert.deepEqual(seenByY.items.map((i) => i.email), [email('mx'), email('my')]);
  const seenBySu = await M(su).getList(1, 10, { sort: 'nick' });
  assert.deepEqual(seenBySu.items.map((i) => i.email), [email('mx'), email('my')]);
});

await check('emailVisibility: hidden email cannot be projected or filtered on by others', async () => {
  const M = mx.collection(C.members);
  assert.deepEqual(await M.getOne(state.my.id, { fields: 'id,email' }), { id: state.my.id });
  assert.equal((await M.getList(1, 10, { filter: `email = "${email('my')}"` })).totalItems, 0);
  assert.equal((await my.collection(C.members).getList(1, 10, { filter: `email = "${email('mx')}"` })).totalItems, 1);
});

await check('auth collection: updateRule null blocks users; users token does not work across collections', async () => {
  await expectError(mx.collection(C.members).update(state.my.id, { nick: 'hack' }), 403);
  // a members token is not a users token: users listRule sees no one
  assert.equal((await mx.collection('users').getList(1, 10)).totalItems, 0);
});

await check('collections: a users token is 403 on collection create', async () => {
  await expectError(alice.collections.create({ name: `${RUN}_byuser`, type: 'base' }), 403);
});

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

// ---------------------------------------------------------------------------------------------
finish();
