// The conformance suite's records: create, validation, get, update, delete.
// Run by ../conformance.mjs after the parts before it (checks here may use their state).

import {
  assert, PocketBase, ClientResponseError, BASE, SU_EMAIL, SU_PASSWORD, check, expectError,
  assertErrorShape, fieldCode, client, raw, jwtPayload, sleep, DATE_RE, ID_RE, names, sortedKeys,
} from '../harness.mjs';
import { RUN, C, email, PASSWORD, su, guest, state } from './context.mjs';

export async function run() {
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
}
