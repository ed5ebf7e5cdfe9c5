// The realtime checks, driven through PocketBase's official JS SDK (`subscribe` on `*` and on
// one record, create/update/delete events, unsubscribe, `expand`/`fields`/`filter` options,
// list and view rules per user, hidden fields and email visibility, the auth a subscription
// binds) plus the subscribe endpoint's answers to bad input, over raw HTTP.
//
// Usage: as conformance.mjs (PB_URL, PB_SUPERUSER_EMAIL, PB_SUPERUSER_PASSWORD). Node 20 has no
// EventSource, so the `eventsource` package provides it, as the SDK's README advises. Every
// expectation was observed on the real PocketBase 0.40.
//
// "Not delivered" is checked without timing: after the write that must not arrive, a write
// that must arrive follows, and events come in commit order.

import { EventSource } from 'eventsource';
import {
  assert, check, expectError, client, raw, SU_EMAIL, SU_PASSWORD, finish, sleep,
} from './harness.mjs';

globalThis.EventSource = EventSource;

const RUN = `r${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const POSTS = `${RUN}_posts`;
const USERS = `${RUN}_users`;
const PASSWORD = 'Secret12345';
const su = client();
const state = {};
const clients = [];

console.log(`# realtime run ${RUN}`);

// Every event one subscription receives, with a way to wait for the next ones.
async function listen(pb, collection, topic, options) {
  const events = [];
  const unsubscribe = await pb.collection(collection).subscribe(topic, (e) => events.push(e), options);
  return {
    events,
    unsubscribe,
    // Waits until `n` events arrived (10 s at most) and returns them.
    async wait(n) {
      for (let i = 0; i < 200 && events.length < n; i++) await sleep(50);
      assert.ok(events.length >= n, `expected ${n} events on ${topic}, got ${events.length}: ${JSON.stringify(events).slice(0, 300)}`);
      return events;
    },
  };
}

function user(token) {
  const pb = client(token);
  clients.push(pb);
  return pb;
}

await check('realtime: setup (superuser, users, posts with rules and a hidden field)', async () => {
  await su.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD);
  const users = await su.collections.create({
    name: USERS, type: 'auth',
    listRule: '', viewRule: '', createRule: '', updateRule: 'id = @request.auth.id',
    fields: [{ name: 'name', type: 'text' }],
  });
  await su.collections.create({
    name: POSTS, type: 'base',
    listRule: 'public = true || owner = @request.auth.id',
    viewRule: 'public = true || owner = @request.auth.id',
    createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'public', type: 'bool' },
      { name: 'views', type: 'number' },
      { name: 'secret', type: 'text', hidden: true },
      { name: 'owner', type: 'relation', collectionId: users.id, maxSelect: 1 },
    ],
  });
  for (const [key, name, visible] of [['ann', 'Ann', false], ['bob', 'Bob', true]]) {
    const email = `${key}_${RUN}@example.com`;
    const rec = await su.collection(USERS).create({
      email, name, password: PASSWORD, passwordConfirm: PASSWORD, emailVisibility: visible,
    });
    const pb = user();
    await pb.collection(USERS).authWithPassword(email, PASSWORD);
    state[key] = { id: rec.id, email, pb };
  }
});

await check('realtime: a guest on * gets create, update and delete of what the list rule shows', async () => {
  const guest = user();
  const sub = await listen(guest, POSTS, '*');
  const hidden = await su.collection(POSTS).create({ title: 'private', public: false, owner: state.ann.id, secret: 's' });
  const shown = await su.collection(POSTS).create({ title: 'public', public: true, secret: 's', views: 1 });
  await su.collection(POSTS).update(shown.id, { views: 2 });
  await su.collection(POSTS).delete(shown.id);
  const [c, u, d] = await sub.wait(3);
  assert.deepEqual([c.action, u.action, d.action], ['create', 'update', 'delete']);
  assert.equal(c.record.id, shown.id, 'the private post is not delivered');
  assert.equal(c.record.title, 'public');
  assert.equal(u.record.views, 2);
  assert.equal(d.record.id, shown.id);
  assert.equal('secret' in c.record, false, 'hidden fields stay hidden');
  assert.equal(c.record.collectionName, POSTS);
  assert.equal(sub.events.length, 3);
  await sub.unsubscribe();
  state.privatePost = hidden;
});

await check('realtime: a subscription to one record gets only its events, by the view rule', async () => {
  const guest = user();
  // An owner, so that a guest's empty auth id does not match it.
  const target = await su.collection(POSTS).create({ title: 'one', public: true, owner: state.bob.id });
  const other = await su.collection(POSTS).create({ title: 'other', public: true });
  const sub = await listen(guest, POSTS, target.id);
  await su.collection(POSTS).update(other.id, { views: 5 });
  await su.collection(POSTS).update(target.id, { views: 7 });
  await su.collection(POSTS).update(target.id, { public: false });
  await su.collection(POSTS).update(target.id, { public: true, title: 'back' });
  const [a, b] = await sub.wait(2);
  assert.deepEqual([a.action, a.record.views], ['update', 7]);
  assert.equal(b.record.title, 'back', 'the update the view rule refused was not delivered');
  await su.collection(POSTS).delete(target.id);
  const events = await sub.wait(3);
  assert.equal(events[2].action, 'delete');
  assert.equal(events.length, 3);
});

await check('realtime: unsubscribe stops the events', async () => {
  const guest = user();
  const gone = await listen(guest, POSTS, '*');
  const kept = await listen(guest, POSTS, '*', { query: { fields: 'id' } });
  await su.collection(POSTS).create({ title: 'before', public: true });
  await gone.wait(1);
  await gone.unsubscribe();
  await su.collection(POSTS).create({ title: 'after', public: true });
  await kept.wait(2);
  assert.equal(gone.events.length, 1, 'no event after unsubscribe');
  assert.deepEqual(Object.keys(kept.events[1]).sort(), ['action', 'record']);
  assert.deepEqual(Object.keys(kept.events[1].record), ['id'], 'fields option applies');
  await guest.realtime.unsubscribe();
});

await check('realtime: options shape the record (expand, fields) and filter the events', async () => {
  const guest = user();
  const sub = await listen(guest, POSTS, '*', {
    expand: 'owner', fields: 'id,title,expand.owner.name', filter: 'views > 10',
  });
  await su.collection(POSTS).create({ title: 'few', public: true, views: 3, owner: state.bob.id });
  await su.collection(POSTS).create({ title: 'many', public: true, views: 30, owner: state.bob.id });
  const [e] = await sub.wait(1);
  assert.equal(e.record.title, 'many', 'the filter option left out the first');
  assert.deepEqual(Object.keys(e.record).sort(), ['expand', 'id', 'title']);
  assert.deepEqual(e.record.expand, { owner: { name: 'Bob' } });
  await sub.unsubscribe();
});

await check('realtime: each user gets what the rules show that user, deletes included', async () => {
  const ann = await listen(state.ann.pb, POSTS, '*');
  const bob = await listen(state.bob.pb, POSTS, '*');
  const mine = await su.collection(POSTS).create({ title: 'ann only', public: false, owner: state.ann.id });
  await su.collection(POSTS).delete(mine.id);
  const marker = await su.collection(POSTS).create({ title: 'marker', public: true });
  const annEvents = await ann.wait(3);
  const bobEvents = await bob.wait(1);
  assert.deepEqual(annEvents.map((e) => [e.action, e.record.title]), [['create', 'ann only'], ['delete', 'ann only'], ['create', 'marker']]);
  assert.deepEqual(bobEvents.map((e) => e.record.id), [marker.id], 'Bob sees neither the create nor the delete');
  await ann.unsubscribe();
  await bob.unsubscribe();
});

await check('realtime: auth records: the email shows to its owner and when visible', async () => {
  const sub = await listen(state.ann.pb, USERS, '*');
  await su.collection(USERS).update(state.bob.id, { name: 'Bob 2' });
  await su.collection(USERS).update(state.ann.id, { name: 'Ann 2' });
  const [bob, ann] = await sub.wait(2);
  assert.equal(bob.record.email, state.bob.email, 'visible email');
  assert.equal(ann.record.email, state.ann.email, 'own email');
  const guest = user();
  const g = await listen(guest, USERS, '*');
  await su.collection(USERS).update(state.ann.id, { name: 'Ann 3' });
  const [e] = await g.wait(1);
  assert.equal('email' in e.record, false, 'a hidden email stays hidden from others');
  assert.equal('password' in e.record || 'tokenKey' in e.record, false);
  await sub.unsubscribe();
});

await check('realtime: POST /api/realtime answers bad input in PocketBase\'s shape', async () => {
  let r = await raw('POST', '/api/realtime', { body: { clientId: 'nope', subscriptions: [`${POSTS}/*`] } });
  assert.equal(r.status, 404);
  assert.deepEqual(r.json, { data: {}, message: 'Missing or invalid client id.', status: 404 });
  r = await raw('POST', '/api/realtime', { body: {} });
  assert.equal(r.status, 400);
  assert.deepEqual(r.json.data, { clientId: { code: 'validation_required', message: 'Cannot be blank.' } });
  r = await raw('POST', '/api/realtime', { body: { clientId: 'x', subscriptions: Array(1001).fill('a') } });
  assert.equal(r.status, 400);
  assert.equal(r.json.data.subscriptions.code, 'validation_length_too_long');
  r = await raw('POST', '/api/realtime', { body: { clientId: 'x', subscriptions: ['ok', 'a'.repeat(2501)] } });
  assert.equal(r.status, 400);
  assert.equal(r.json.data.subscriptions['1'].code, 'validation_length_too_long');
  r = await raw('POST', '/api/realtime', { body: { clientId: 'x'.repeat(300) } });
  assert.equal(r.json.data.clientId.code, 'validation_length_out_of_range');
  const res = await fetch(`${process.env.PB_URL.replace(/\/+$/, '')}/api/realtime`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{not json',
  });
  assert.equal(res.status, 400);
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), ['data', 'message', 'status']);
});

await check('realtime: a client bound to one user cannot be taken over by another', async () => {
  const pb = state.ann.pb;
  await pb.collection(POSTS).subscribe('*', () => {});
  const clientId = pb.realtime.clientId;
  assert.ok(clientId && clientId.length > 0, 'the SDK read the client id from PB_CONNECT');
  const body = await expectError(
    state.bob.pb.send('/api/realtime', { method: 'POST', body: { clientId, subscriptions: [`${POSTS}/*`] } }),
    403, 'subscribe as another user',
  );
  assert.equal(body.message, "The current and the previous request authorization don't match.");
  // The same user may set the topics again.
  await pb.send('/api/realtime', { method: 'POST', body: { clientId, subscriptions: [`${POSTS}/*`] } });
  await pb.realtime.unsubscribe();
});

for (const pb of clients) pb.realtime.unsubscribe().catch(() => {});
finish();
