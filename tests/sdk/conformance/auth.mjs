// The conformance suite's auth collections, owner rules and email visibility.
// Run by ../conformance.mjs after the parts before it (checks here may use their state).

import {
  assert, PocketBase, ClientResponseError, BASE, SU_EMAIL, SU_PASSWORD, check, expectError,
  assertErrorShape, fieldCode, client, raw, jwtPayload, sleep, DATE_RE, ID_RE, names, sortedKeys,
} from '../harness.mjs';
import { RUN, C, email, PASSWORD, su, guest, state } from './context.mjs';

export async function run() {
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
}
