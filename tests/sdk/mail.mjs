// The mail checks, driven through PocketBase's official JS SDK against a real SMTP server: the
// SMTP settings and test emails, email verification, password reset, email change, OTP sign-in
// (codes, reuse, attempt limits, expiry), MFA (password + OTP), the new-location login alert
// and custom mail templates, with the tokens revoked along the way. It owns every endpoint that
// sends mail, plus auth-with-otp and the MFA answers of the auth endpoints.
//
// Usage: as conformance.mjs (PB_URL, PB_SUPERUSER_EMAIL, PB_SUPERUSER_PASSWORD), plus SMTP_HOST,
// SMTP_PORT and MAILDIR: an SMTP server (run-*.sh start aiosmtpd with a Maildir handler) that
// writes each message it gets to $MAILDIR/new. The suite points the server's SMTP settings at it
// and restores them at the end. Every expectation was observed on the real PocketBase 0.40.6.
//
// "No mail" is checked by waiting a second after the request and finding nothing for that
// address (PocketBase sends most mails in the background, after answering).

import fs from 'node:fs';
import path from 'node:path';
import {
  assert, check, expectError, client, raw, jwtPayload, sleep, SU_EMAIL, SU_PASSWORD, ID_RE, finish,
} from './harness.mjs';

const { SMTP_HOST, SMTP_PORT, MAILDIR } = process.env;
if (!SMTP_HOST || !SMTP_PORT || !MAILDIR) {
  console.error('SMTP_HOST, SMTP_PORT and MAILDIR must be set (run-pocketbase.sh / run-pier.sh set them)');
  process.exit(2);
}

const RUN = `m${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const USERS = `${RUN}_users`; // verification, reset, email change, OTP
const MFA = `${RUN}_mfa`; // OTP + MFA
const TPL = `${RUN}_tpl`; // custom templates
const APP_URL = 'http://app.example.test';
const FROM = 'Mail Suite <noreply@example.test>';
const PASSWORD = 'Secret12345';
const su = client();
const guest = client();
const state = {};
const email = (who) => `${who}_${RUN}@example.test`;

console.log(`# mail run ${RUN}`);

// ---------------------------------------------------------------------------------------------
// reading the Maildir

function decodeWords(v) { // RFC 2047 encoded words in headers
  return v.replace(/=\?([^?]+)\?([bBqQ])\?([^?]*)\?=(\s+(?==\?))?/g, (_, cs, enc, data) => {
    const buf = /b/i.test(enc) ? Buffer.from(data, 'base64') : Buffer.from(
      data.replace(/_/g, ' ').replace(/=([0-9A-Fa-f]{2})/g, (m, h) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    return buf.toString(/utf-?8/i.test(cs) ? 'utf8' : 'latin1');
  });
}

function parseHeaders(block) {
  const headers = {};
  for (const line of block.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const i = line.indexOf(':');
    // raw 8-bit header bytes are taken as UTF-8
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = decodeWords(Buffer.from(line.slice(i + 1).trim(), 'latin1').toString('utf8'));
  }
  return headers;
}

const param = (value, name) => {
  const m = new RegExp(`;\\s*${name}="?([^";]+)"?`, 'i').exec(value || '');
  return m && m[1];
};

function decodeBody(body, encoding = '', charset = 'utf-8') {
  let buf;
  if (/quoted-printable/i.test(encoding)) {
    const s = Buffer.from(body.replace(/[ \t]+(\r?\n)/g, '$1').replace(/=\r?\n/g, ''), 'latin1');
    const out = [];
    for (let i = 0; i < s.length; i++) {
      const hex = s[i] === 0x3d && s.subarray(i + 1, i + 3).toString('latin1');
      if (hex && /^[0-9A-Fa-f]{2}$/.test(hex)) { out.push(parseInt(hex, 16)); i += 2; } else out.push(s[i]);
    }
    buf = Buffer.from(out);
  } else if (/base64/i.test(encoding)) buf = Buffer.from(body.replace(/\s+/g, ''), 'base64');
  else buf = Buffer.from(body, 'latin1');
  return buf.toString(/utf-?8|us-ascii/i.test(charset) ? 'utf8' : 'latin1');
}

// Walks a MIME entity (given as latin1 text, so bytes survive), collecting text/plain and text/html.
function walk(entity, out) {
  const split = /\r?\n\r?\n/.exec(entity);
  const headers = parseHeaders(split ? entity.slice(0, split.index) : entity);
  const body = split ? entity.slice(split.index + split[0].length) : '';
  const type = (headers['content-type'] || 'text/plain').split(';')[0].trim().toLowerCase();
  if (type.startsWith('multipart/')) {
    const boundary = param(headers['content-type'], 'boundary').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const parts = body.split(new RegExp(`(?:^|\\r?\\n)--${boundary}(?:--)?[ \\t]*(?:\\r?\\n|$)`));
    for (const part of parts.slice(1, -1)) walk(part, out);
  } else if (type === 'text/plain' || type === 'text/html') {
    const key = type === 'text/plain' ? 'text' : 'html';
    out[key] = (out[key] || '') + decodeBody(body, headers['content-transfer-encoding'], param(headers['content-type'], 'charset') || 'utf-8');
  }
  return headers;
}

function parseMail(rawText) {
  const parts = {};
  const headers = walk(rawText, parts);
  const address = (v) => ((/<([^>]+)>/.exec(v || '') || [])[1] || (v || '').trim()).toLowerCase();
  const from = (headers.from || '').replace(/^"(.*)"\s*</, '$1 <'); // `"Name" <a@b>` is `Name <a@b>`
  return { headers, to: address(headers.to), from, subject: headers.subject, text: parts.text || '', html: parts.html || '' };
}

const seen = new Set(); // files already handed out

function unseenMails(to) {
  const dir = path.join(MAILDIR, 'new');
  const found = [];
  for (const f of fs.readdirSync(dir).sort()) {
    if (seen.has(f)) continue;
    const m = parseMail(fs.readFileSync(path.join(dir, f), 'latin1'));
    if (m.to === to.toLowerCase()) found.push({ file: f, ...m });
  }
  return found;
}

// Waits (10 s at most) for the next mail to `to` and returns it: {to, from, subject, text, html}.
async function nextMail(to, ms = 10000) {
  for (const end = Date.now() + ms; ; await sleep(50)) {
    const [m] = unseenMails(to);
    if (m) { seen.add(m.file); return m; }
    if (Date.now() > end) throw new assert.AssertionError({ message: `no mail to ${to} within ${ms} ms` });
  }
}

// Asserts that no (further) mail to `to` arrives within `ms`.
async function noMail(to, ms = 1000) {
  await sleep(ms);
  const got = unseenMails(to);
  assert.equal(got.length, 0, `expected no mail to ${to}, got: ${got.map((m) => m.subject).join(' / ')}`);
}

const JWT = '[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+';

// The token of the `{APP_URL}/_/#/auth/<kind>/{TOKEN}` link, found in the HTML part (as an href)
// and in the text part.
function linkToken(mail, kind) {
  const m = new RegExp(`href="${APP_URL.replace(/\./g, '\\.')}/_/#/auth/${kind}/(${JWT})"`).exec(mail.html);
  assert.ok(m, `a ${kind} link in the HTML part: ${mail.html.slice(-600)}`);
  assert.ok(mail.text.includes(`${APP_URL}/_/#/auth/${kind}/${m[1]}`), `the ${kind} link in the text part: ${mail.text}`);
  return m[1];
}

// The code of the default OTP mail ("Your one-time password is: <strong>CODE</strong>").
function otpCode(mail, length = 8) {
  const m = /Your one-time password is: <strong>(\d+)<\/strong>/.exec(mail.html);
  assert.ok(m, `an OTP code in the HTML part: ${mail.html.slice(-400)}`);
  assert.equal(m[1].length, length, 'code length');
  assert.match(mail.text, new RegExp(`Your one-time password is: ${m[1]}\\b`));
  return m[1];
}

// Awaits a failing request and checks PocketBase's envelope exactly: the status, the message and
// the `data` field codes ({} when data must be empty).
async function expectFail(promise, status, message, codes = {}, what = 'request') {
  const body = await expectError(promise, status, what);
  assert.equal(body.status, status, `${what}: body.status`);
  assert.equal(body.message, message, `${what}: body.message`);
  const got = Object.fromEntries(Object.entries(body.data || {}).map(([k, v]) => [k, v && v.code]));
  assert.deepEqual(got, codes, `${what}: data codes in ${JSON.stringify(body.data)}`);
  return body;
}

const VALIDATION = 'An error occurred while validating the submitted data.';
const NO_AUTH = 'The request requires valid record authorization token.';
const BAD_OTP = 'Invalid or expired OTP.';

async function newUser(collection, who, extra = {}) {
  const addr = email(who);
  const r = await su.collection(collection).create({ email: addr, password: PASSWORD, passwordConfirm: PASSWORD, ...extra });
  assert.equal(r.verified, false);
  return { id: r.id, email: addr };
}

async function signIn(collection, identity, password = PASSWORD) {
  const pb = client();
  await pb.collection(collection).authWithPassword(identity, password);
  return pb;
}

// A POST with a JSON body through the SDK's plain `send` (it throws ClientResponseError).
const post = (p, body, pb = guest) => pb.send(p, { method: 'POST', body });

const verified = async (collection, id) => (await su.collection(collection).getOne(id)).verified;

// ---------------------------------------------------------------------------------------------

await check('mail: setup (SMTP and sender settings, auth collections)', async () => {
  await su.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD);
  const before = await su.settings.getAll();
  state.restore = { meta: before.meta, smtp: before.smtp };
  const s = await su.settings.update({
    meta: { appName: 'MailSuite', appURL: APP_URL, senderName: 'Mail Suite', senderAddress: 'noreply@example.test' },
    smtp: { enabled: true, host: SMTP_HOST, port: Number(SMTP_PORT), tls: false, authMethod: 'PLAIN', username: '', password: '' },
  });
  assert.equal(s.meta.appName, 'MailSuite');
  assert.equal(s.meta.appURL, APP_URL);
  assert.equal(s.meta.senderName, 'Mail Suite');
  assert.equal(s.meta.senderAddress, 'noreply@example.test');
  // PB: the SMTP password is never returned.
  assert.deepEqual(s.smtp, {
    enabled: true, port: Number(SMTP_PORT), host: SMTP_HOST, username: '', authMethod: 'PLAIN', tls: false, localName: '',
  });
  const rules = { listRule: '', viewRule: '', createRule: '', updateRule: 'id = @request.auth.id' };
  state.users = await su.collections.create({ name: USERS, type: 'auth', ...rules, fields: [{ name: 'name', type: 'text' }] });
  // PB: the defaults every auth collection gets.
  assert.equal(state.users.otp.enabled, false);
  assert.equal(state.users.otp.duration, 180);
  assert.equal(state.users.otp.length, 8);
  assert.deepEqual(state.users.mfa, { enabled: false, duration: 600, rule: '' });
  assert.equal(state.users.authAlert.enabled, true);
  assert.equal(state.users.verificationTemplate.subject, 'Verify your {APP_NAME} email');
  assert.equal(state.users.resetPasswordTemplate.subject, 'Reset your {APP_NAME} password');
  assert.equal(state.users.confirmEmailChangeTemplate.subject, 'Confirm your {APP_NAME} new email address');
  assert.equal(state.users.otp.emailTemplate.subject, 'OTP for {APP_NAME}');
  assert.equal(state.users.authAlert.emailTemplate.subject, 'Login from a new location');
  assert.ok(state.users.verificationTemplate.body.includes('{APP_URL}/_/#/auth/confirm-verification/{TOKEN}'));
  state.mfa = await su.collections.create({ name: MFA, type: 'auth', ...rules, fields: [{ name: 'name', type: 'text' }] });
  state.tpl = await su.collections.create({
    name: TPL, type: 'auth', ...rules, fields: [{ name: 'name', type: 'text' }],
    verificationTemplate: {
      subject: 'Hi {RECORD:name} – verify ünïcode',
      body: '<p>{APP_NAME}|{APP_URL}|{TOKEN}|{RECORD:name}|{RECORD:email}|&amp; <b>x</b></p>',
    },
    otp: {
      enabled: true, duration: 180, length: 6,
      emailTemplate: { subject: 'Code {OTP} for {RECORD:name}', body: '<p>id={OTP_ID} code={OTP} name={RECORD:name} x={RECORD:tokenKey} y={RECORD:nope}</p>' },
    },
  });
});

await check('mail: test emails for every template, as superuser only', async () => {
  const subjects = {
    verification: 'Verify your MailSuite email',
    'password-reset': 'Reset your MailSuite password',
    'email-change': 'Confirm your MailSuite new email address',
    otp: 'OTP for MailSuite',
    'login-alert': 'Login from a new location',
  };
  for (const [template, subject] of Object.entries(subjects)) {
    const to = email(`test-${template}`);
    assert.equal(await su.settings.testEmail(USERS, to, template), true);
    const m = await nextMail(to);
    assert.equal(m.to, to);
    assert.equal(m.from, FROM);
    assert.equal(m.subject, subject);
    assert.match(m.html, /<p>Hello,<\/p>/);
    assert.match(m.html, /MailSuite team/);
    if (template === 'otp') assert.equal(otpCode(m, 6), '123456'); // PB: a fixed sample code
    if (template === 'login-alert') assert.match(m.text, /from a new location:\s+\S+ \S+ - TEST_IP TEST_USER_AGENT/);
    const kind = { verification: 'confirm-verification', 'password-reset': 'confirm-password-reset', 'email-change': 'confirm-email-change' }[template];
    if (kind) {
      const claims = jwtPayload(linkToken(m, kind));
      assert.equal(claims.collectionId, state.users.id);
      assert.equal(claims.email, to);
      assert.equal(claims.type, { verification: 'verification', 'password-reset': 'passwordReset', 'email-change': 'emailChange' }[template]);
    }
  }
  await expectFail(su.settings.testEmail(USERS, email('test-bogus'), 'bogus'), 400,
    'Failed to send the test email.', { template: 'validation_in_invalid' });
  await expectFail(su.send('/api/settings/test/email', { method: 'POST', body: {} }), 400,
    'Failed to send the test email.', { email: 'validation_required', template: 'validation_required' });
  await expectFail(su.settings.testEmail(`${RUN}_nope`, email('test-nope'), 'verification'), 400,
    'Failed to send the test email.', { collection: 'validation_invalid_auth_collection' });
  await expectFail(guest.settings.testEmail(USERS, email('test-guest'), 'verification'), 401, NO_AUTH);
  await noMail(email('test-guest'), 300);
});

await check('mail: verification mail, confirm, confirm again, bad tokens, unknown address', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'verify', { name: 'Vera' });
  assert.equal(await C.requestVerification(u.email), true);
  const m = await nextMail(u.email);
  assert.equal(m.from, FROM);
  assert.equal(m.subject, 'Verify your MailSuite email');
  assert.match(m.html, /<p>Thank you for joining us at MailSuite\.<\/p>/);
  assert.match(m.text, /Thank you for joining us at MailSuite\./);
  const token = linkToken(m, 'confirm-verification');
  const claims = jwtPayload(token);
  assert.deepEqual(Object.keys(claims).sort(), ['collectionId', 'email', 'exp', 'id', 'type']);
  assert.deepEqual([claims.collectionId, claims.email, claims.id, claims.type], [state.users.id, u.email, u.id, 'verification']);
  // PB: the token lives verificationToken.duration (86400 s).
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 86400) < 60, `exp ${claims.exp}`);
  assert.equal(await verified(USERS, u.id), false);
  assert.equal(await C.confirmVerification(token), true);
  assert.equal(await verified(USERS, u.id), true);
  // PB: the token stays valid: confirming again is another 204 and changes nothing.
  assert.equal(await C.confirmVerification(token), true);
  assert.equal(await verified(USERS, u.id), true);
  await expectFail(C.confirmVerification('garbage'), 400, VALIDATION, { token: 'validation_invalid_token_claims' });
  // A JWT with an email claim but a bad signature.
  const forged = `${token.split('.').slice(0, 2).join('.')}.${'A'.repeat(43)}`;
  await expectFail(C.confirmVerification(forged), 400, VALIDATION, { token: 'validation_invalid_token' });
  await expectFail(post(`/api/collections/${USERS}/confirm-verification`, {}), 400, VALIDATION, { token: 'validation_required' });
  // An unknown address gets the same answer, and no mail.
  const nobody = `nobody-${RUN}@example.test`;
  assert.equal(await C.requestVerification(nobody), true);
  await expectFail(C.requestVerification('not-an-email'), 400, VALIDATION, { email: 'validation_is_email' });
  await expectFail(post(`/api/collections/${USERS}/request-verification`, {}), 400, VALIDATION, { email: 'validation_required' });
  await expectFail(post('/api/collections/_superusers/request-verification', { email: SU_EMAIL }), 400,
    'All superusers are verified by default.');
  await noMail(nobody);
});


await check('mail: verification: no second mail within 2 minutes or once verified; tokens of another collection', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'verify2');
  const pb = await signIn(USERS, u.email);
  assert.equal(await C.requestVerification(u.email), true);
  const token = linkToken(await nextMail(u.email), 'confirm-verification');
  await sleep(300); // PB: the resend guard (2 minutes) is set once the mail went out
  assert.equal(await C.requestVerification(u.email), true);
  await noMail(u.email);
  assert.equal(await C.confirmVerification(token), true);
  // PB: verifying does not revoke the user's tokens.
  assert.equal((await pb.collection(USERS).authRefresh()).record.verified, true);
  assert.equal(await C.requestVerification(u.email), true);
  await noMail(u.email);
  const other = await newUser(MFA, 'verify-other');
  assert.equal(await guest.collection(MFA).requestVerification(other.email), true);
  const otherToken = linkToken(await nextMail(other.email), 'confirm-verification');
  await expectFail(C.confirmVerification(otherToken), 400, VALIDATION, { token: 'validation_token_collection_mismatch' });
  assert.equal(await verified(MFA, other.id), false);
});

await check('mail: password reset: mail, bad input, confirm, old password and tokens revoked, reuse, unknown address', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'reset');
  const before = await signIn(USERS, u.email);
  assert.equal(await C.requestPasswordReset(u.email), true);
  const m = await nextMail(u.email);
  assert.equal(m.from, FROM);
  assert.equal(m.subject, 'Reset your MailSuite password');
  assert.match(m.html, /<p>Click on the button below to reset your password\.<\/p>/);
  assert.match(m.text, /If you didn't ask to reset your password, please ignore this email\./);
  const token = linkToken(m, 'confirm-password-reset');
  const claims = jwtPayload(token);
  assert.deepEqual(Object.keys(claims).sort(), ['collectionId', 'email', 'exp', 'id', 'type']);
  assert.deepEqual([claims.collectionId, claims.email, claims.id, claims.type], [state.users.id, u.email, u.id, 'passwordReset']);
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 1800) < 60, `exp ${claims.exp}`); // passwordResetToken.duration
  const NEW = 'NewSecret123';
  await expectFail(C.confirmPasswordReset(token, NEW, 'Other1234567'), 400, VALIDATION, { passwordConfirm: 'validation_values_mismatch' });
  const short = await expectFail(C.confirmPasswordReset(token, 'short', 'short'), 400, VALIDATION, { password: 'validation_length_out_of_range' });
  assert.deepEqual(short.data.password, { code: 'validation_length_out_of_range', message: 'The length must be between 8 and 255.', params: { max: 255, min: 8 } });
  await expectFail(post(`/api/collections/${USERS}/confirm-password-reset`, {}), 400, VALIDATION,
    { password: 'validation_required', passwordConfirm: 'validation_required', token: 'validation_required' });
  await expectFail(C.confirmPasswordReset('garbage', NEW, NEW), 400, VALIDATION, { token: 'validation_invalid_token' });
  assert.equal(await C.confirmPasswordReset(token, NEW, NEW), true);
  await expectFail(client().collection(USERS).authWithPassword(u.email, PASSWORD), 400, 'Failed to authenticate.');
  const after = await signIn(USERS, u.email, NEW);
  // PB: a reset to the address the token was sent to also verifies the user.
  assert.equal(after.authStore.record.verified, true);
  assert.equal(await verified(USERS, u.id), true);
  // PB: the reset rotates tokenKey: tokens issued before are dead.
  await expectFail(before.collection(USERS).authRefresh(), 401, NO_AUTH);
  await after.collection(USERS).authRefresh();
  await expectFail(C.confirmPasswordReset(token, 'Another12345', 'Another12345'), 400, VALIDATION, { token: 'validation_invalid_token' });
  const nobody = `nobody-reset-${RUN}@example.test`;
  assert.equal(await C.requestPasswordReset(nobody), true);
  await expectFail(C.requestPasswordReset('nope'), 400, VALIDATION, { email: 'validation_is_email' });
  await noMail(nobody);
});

await check('mail: password reset: no second mail within 2 minutes; a password change kills the token; other collections', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'reset2');
  assert.equal(await C.requestPasswordReset(u.email), true);
  const token = linkToken(await nextMail(u.email), 'confirm-password-reset');
  await sleep(300);
  assert.equal(await C.requestPasswordReset(u.email), true);
  await noMail(u.email);
  const pb = await signIn(USERS, u.email);
  await pb.collection(USERS).update(u.id, { oldPassword: PASSWORD, password: 'Changed12345', passwordConfirm: 'Changed12345' });
  await expectFail(C.confirmPasswordReset(token, 'Reset123456', 'Reset123456'), 400, VALIDATION, { token: 'validation_invalid_token' });
  const other = await newUser(MFA, 'reset-other');
  assert.equal(await guest.collection(MFA).requestPasswordReset(other.email), true);
  const otherToken = linkToken(await nextMail(other.email), 'confirm-password-reset');
  await expectFail(C.confirmPasswordReset(otherToken, 'Reset123456', 'Reset123456'), 400, VALIDATION,
    { token: 'validation_token_collection_mismatch' });
});

await check('mail: email change: mail to the new address, bad input, confirm, sign-in, old token revoked, reuse', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'change');
  const taken = await newUser(USERS, 'change-taken');
  const pb = await signIn(USERS, u.email);
  const newEmail = email('changed');
  await expectFail(C.requestEmailChange(newEmail), 401, NO_AUTH);
  const U = pb.collection(USERS);
  await expectFail(U.requestEmailChange(taken.email), 400, VALIDATION, { newEmail: 'validation_invalid_new_email' });
  await expectFail(U.requestEmailChange(u.email), 400, VALIDATION, { newEmail: 'validation_not_in_invalid' });
  await expectFail(U.requestEmailChange('bad'), 400, VALIDATION, { newEmail: 'validation_is_email' });
  await expectFail(post(`/api/collections/${USERS}/request-email-change`, {}, pb), 400, VALIDATION, { newEmail: 'validation_required' });
  assert.equal(await U.requestEmailChange(newEmail), true);
  // PB sends this one before answering, and only to the new address.
  assert.equal(unseenMails(u.email).length, 0, 'no mail to the old address');
  const m = await nextMail(newEmail);
  assert.equal(m.from, FROM);
  assert.equal(m.subject, 'Confirm your MailSuite new email address');
  assert.match(m.html, /<p>Click on the button below to confirm your new email address\.<\/p>/);
  const token = linkToken(m, 'confirm-email-change');
  const claims = jwtPayload(token);
  assert.deepEqual(Object.keys(claims).sort(), ['collectionId', 'email', 'exp', 'id', 'newEmail', 'type']);
  assert.deepEqual([claims.collectionId, claims.email, claims.newEmail, claims.id, claims.type],
    [state.users.id, u.email, newEmail, u.id, 'emailChange']);
  assert.ok(Math.abs(claims.exp - Date.now() / 1000 - 1800) < 60, `exp ${claims.exp}`); // emailChangeToken.duration
  await expectFail(C.confirmEmailChange(token, 'wrong-password'), 400, VALIDATION, { password: 'validation_invalid_password' });
  await expectFail(post(`/api/collections/${USERS}/confirm-email-change`, { token }), 400, VALIDATION, { password: 'validation_required' });
  await expectFail(C.confirmEmailChange('garbage', PASSWORD), 400, VALIDATION,
    { password: 'validation_invalid_password', token: 'validation_invalid_token_payload' });
  await expectFail(post(`/api/collections/${USERS}/confirm-email-change`, {}), 400, VALIDATION,
    { password: 'validation_required', token: 'validation_required' });
  assert.equal(await C.confirmEmailChange(token, PASSWORD), true);
  const rec = await su.collection(USERS).getOne(u.id);
  assert.equal(rec.email, newEmail);
  assert.equal(rec.verified, true, 'PB: confirming an email change verifies the user');
  assert.equal((await signIn(USERS, newEmail)).authStore.record.id, u.id);
  await expectFail(client().collection(USERS).authWithPassword(u.email, PASSWORD), 400, 'Failed to authenticate.');
  // PB: the change rotates tokenKey: the user's earlier token is dead.
  await expectFail(pb.collection(USERS).authRefresh(), 401, NO_AUTH);
  await expectFail(C.confirmEmailChange(token, PASSWORD), 400, VALIDATION,
    { password: 'validation_invalid_password', token: 'validation_invalid_token' });
});

await check('mail: email change: the address taken meanwhile, or a password change, kills the token', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'change2');
  const pb = await signIn(USERS, u.email);
  const [a, b] = [email('change2-a'), email('change2-b')];
  assert.equal(await pb.collection(USERS).requestEmailChange(a), true);
  const tokenA = linkToken(await nextMail(a), 'confirm-email-change');
  await newUser(USERS, 'change2-a');
  await expectFail(C.confirmEmailChange(tokenA, PASSWORD), 400, VALIDATION,
    { password: 'validation_invalid_password', token: 'validation_invalid_token_email' });
  assert.equal(await pb.collection(USERS).requestEmailChange(b), true);
  const tokenB = linkToken(await nextMail(b), 'confirm-email-change');
  await pb.collection(USERS).update(u.id, { oldPassword: PASSWORD, password: 'Changed12345', passwordConfirm: 'Changed12345' });
  await expectFail(C.confirmEmailChange(tokenB, 'Changed12345'), 400, VALIDATION,
    { password: 'validation_invalid_password', token: 'validation_invalid_token' });
  assert.equal((await su.collection(USERS).getOne(u.id)).email, u.email);
});

await check('mail: OTP: 403 until enabled; auth-methods; the code by mail; wrong code; sign-in verifies; reuse', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'otp');
  const OFF = 'The collection is not configured to allow OTP authentication.';
  await expectFail(C.requestOTP(u.email), 403, OFF);
  await expectFail(C.authWithOTP('aaaaaaaaaaaaaaa', '12345678'), 403, OFF);
  const col = await su.collections.update(USERS, { otp: { enabled: true, duration: 180, length: 8 } });
  assert.deepEqual([col.otp.enabled, col.otp.duration, col.otp.length], [true, 180, 8]);
  const methods = await C.listAuthMethods();
  assert.deepEqual(methods.otp, { enabled: true, duration: 180 });
  assert.deepEqual(methods.mfa, { enabled: false, duration: 0 });
  assert.deepEqual(methods.password, { enabled: true, identityFields: ['email'] });
  const res = await C.requestOTP(u.email);
  assert.deepEqual(Object.keys(res), ['otpId']);
  assert.match(res.otpId, ID_RE);
  const m = await nextMail(u.email);
  assert.equal(m.from, FROM);
  assert.equal(m.subject, 'OTP for MailSuite');
  assert.match(m.html, /<p><i>If you didn't ask for the one-time password, you can ignore this email\.<\/i><\/p>/);
  const code = otpCode(m, 8);
  await expectFail(C.authWithOTP(res.otpId, code === '12345678' ? '87654321' : '12345678'), 400, BAD_OTP);
  const auth = await C.authWithOTP(res.otpId, code);
  assert.equal(auth.record.id, u.id);
  assert.equal(auth.record.email, u.email);
  assert.equal(auth.record.verified, true, 'PB: an OTP sent to the record email verifies it');
  assert.equal(await verified(USERS, u.id), true);
  const claims = jwtPayload(auth.token);
  assert.deepEqual([claims.type, claims.id, claims.collectionId, claims.refreshable], ['auth', u.id, state.users.id, true]);
  await client(auth.token).collection(USERS).authRefresh();
  // PB: a used OTP is deleted.
  await expectFail(C.authWithOTP(res.otpId, code), 400, BAD_OTP);
});

await check('mail: OTP: an unknown address gets an otpId and no mail; bad input', async () => {
  const C = guest.collection(USERS);
  const nobody = `nobody-otp-${RUN}@example.test`;
  const res = await C.requestOTP(nobody);
  assert.deepEqual(Object.keys(res), ['otpId']);
  assert.match(res.otpId, ID_RE);
  await expectFail(C.authWithOTP(res.otpId, '12345678'), 400, BAD_OTP);
  await expectFail(C.authWithOTP('aaaaaaaaaaaaaaa', '12345678'), 400, BAD_OTP);
  await expectFail(C.requestOTP('nope'), 400, VALIDATION, { email: 'validation_is_email' });
  await expectFail(post(`/api/collections/${USERS}/request-otp`, {}), 400, VALIDATION, { email: 'validation_required' });
  await expectFail(C.authWithOTP('', ''), 400, VALIDATION, { otpId: 'validation_required', password: 'validation_required' });
  await noMail(nobody);
});

await check('mail: OTP: after 5 attempts per user, 429 even for the right code or a new OTP; others unaffected', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'otp-limit');
  const { otpId } = await C.requestOTP(u.email);
  const code = otpCode(await nextMail(u.email));
  const wrong = code === '11111111' ? '22222222' : '11111111';
  const LIMIT = 'Too many attempts, please try again later with a new OTP.';
  // PB: 5 attempts per user (and client IP) in 180 s, counted before the code is compared;
  // the OTP itself is kept.
  for (let i = 1; i <= 30; i++) {
    await expectFail(C.authWithOTP(otpId, wrong), i <= 5 ? 400 : 429, i <= 5 ? BAD_OTP : LIMIT, {}, `attempt ${i}`);
  }
  await expectFail(C.authWithOTP(otpId, code), 429, LIMIT, {}, 'the right code');
  const again = await C.requestOTP(u.email);
  assert.notEqual(again.otpId, otpId);
  await expectFail(C.authWithOTP(again.otpId, otpCode(await nextMail(u.email))), 429, LIMIT, {}, 'a new OTP');
  const v = await newUser(USERS, 'otp-limit2');
  const r = await C.requestOTP(v.email);
  assert.equal((await C.authWithOTP(r.otpId, otpCode(await nextMail(v.email)))).record.id, v.id);
});

await check('mail: OTP: with 10 unexpired OTPs, a request returns the newest otpId again and mails nothing', async () => {
  const C = guest.collection(USERS);
  const u = await newUser(USERS, 'otp-cap');
  const ids = [];
  for (let i = 0; i < 12; i++) ids.push((await C.requestOTP(u.email)).otpId);
  assert.equal(new Set(ids.slice(0, 10)).size, 10, `ten OTPs: ${ids}`);
  assert.deepEqual(ids.slice(10), [ids[9], ids[9]]);
  for (let i = 0; i < 10; i++) otpCode(await nextMail(u.email));
  await noMail(u.email);
});

await check('mail: OTP: an expired OTP is refused', async () => {
  const C = guest.collection(USERS);
  await su.collections.update(USERS, { otp: { enabled: true, duration: 10, length: 8 } }); // PB: 10 s is the minimum
  try {
    const u = await newUser(USERS, 'otp-expiry');
    const { otpId } = await C.requestOTP(u.email);
    const code = otpCode(await nextMail(u.email));
    await sleep(11000);
    await expectFail(C.authWithOTP(otpId, code), 400, BAD_OTP);
  } finally {
    await su.collections.update(USERS, { otp: { enabled: true, duration: 180, length: 8 } });
  }
});

await check('mail: MFA: password then OTP with the mfaId, each factor needed every time, bogus and used mfaIds', async () => {
  const C = guest.collection(MFA);
  const noOtp = await expectError(su.collections.update(MFA, { mfa: { enabled: true, duration: 600 } }), 400);
  assert.equal(noOtp.message, 'Failed to update collection.');
  assert.equal(noOtp.data.mfa.enabled.code, 'validation_mfa_not_enough_auths');
  const col = await su.collections.update(MFA, { otp: { enabled: true, duration: 180, length: 8 }, mfa: { enabled: true, duration: 600 } });
  assert.deepEqual(col.mfa, { enabled: true, duration: 600, rule: '' });
  const methods = await C.listAuthMethods();
  assert.deepEqual([methods.mfa, methods.otp], [{ enabled: true, duration: 600 }, { enabled: true, duration: 180 }]);
  const u = await newUser(MFA, 'mfa');
  // PB: the first factor answers 401 with a body of only {mfaId} (not the error envelope).
  const first = await expectError(C.authWithPassword(u.email, PASSWORD), 401, 'password alone');
  assert.deepEqual(Object.keys(first), ['mfaId']);
  assert.match(first.mfaId, ID_RE);
  const again = await expectError(C.authWithPassword(u.email, PASSWORD), 401, 'password alone again');
  assert.deepEqual(Object.keys(again), ['mfaId']);
  assert.notEqual(again.mfaId, first.mfaId);
  await expectFail(C.authWithPassword(u.email, 'wrong-password'), 400, 'Failed to authenticate.');
  await expectFail(C.authWithPassword(u.email, PASSWORD, { mfaId: first.mfaId }), 400, 'A different authentication method is required.');
  const otp = async () => {
    const { otpId } = await C.requestOTP(u.email);
    return [otpId, otpCode(await nextMail(u.email))];
  };
  let [otpId, code] = await otp();
  await expectFail(C.authWithOTP(otpId, code, { mfaId: 'bogusbogusbogus' }), 400, 'Invalid or expired MFA session.');
  // PB: the OTP was deleted before the MFA session was checked.
  await expectFail(C.authWithOTP(otpId, code, { mfaId: first.mfaId }), 400, BAD_OTP);
  [otpId, code] = await otp();
  await expectFail(C.authWithOTP(otpId, code === '12345678' ? '87654321' : '12345678', { mfaId: first.mfaId }), 400, BAD_OTP);
  // The SDK sends options it does not know, like mfaId, as query parameters (?mfaId=).
  const ok = await C.authWithOTP(otpId, code, { mfaId: first.mfaId });
  assert.equal(ok.record.id, u.id);
  assert.equal(ok.record.verified, true);
  assert.equal(jwtPayload(ok.token).type, 'auth');
  await client(ok.token).collection(MFA).authRefresh();
  // PB: a completed MFA session is deleted; the next sign-in needs both factors again.
  [otpId, code] = await otp();
  await expectFail(C.authWithOTP(otpId, code, { mfaId: first.mfaId }), 400, 'Invalid or expired MFA session.');
  const third = await expectError(C.authWithPassword(u.email, PASSWORD), 401, 'password alone, later');
  assert.ok(![first.mfaId, again.mfaId].includes(third.mfaId));
});

await check('mail: MFA: OTP first (verifies even so), password second with mfaId in the body; MFA off again', async () => {
  const C = guest.collection(MFA);
  const u = await newUser(MFA, 'mfa2');
  const otp = async () => {
    const { otpId } = await C.requestOTP(u.email);
    return [otpId, otpCode(await nextMail(u.email))];
  };
  const first = await expectError(C.authWithOTP(...await otp()), 401, 'OTP alone');
  assert.deepEqual(Object.keys(first), ['mfaId']);
  // PB: the OTP marks the user verified before MFA is asked for.
  assert.equal(await verified(MFA, u.id), true);
  const ok = await post(`/api/collections/${MFA}/auth-with-password`, { identity: u.email, password: PASSWORD, mfaId: first.mfaId });
  assert.equal(ok.record.id, u.id);
  assert.equal(jwtPayload(ok.token).id, u.id);
  const second = await expectError(C.authWithOTP(...await otp()), 401, 'OTP alone again');
  assert.deepEqual(Object.keys(second), ['mfaId']);
  assert.notEqual(second.mfaId, first.mfaId);
  const off = await su.collections.update(MFA, { mfa: { enabled: false }, otp: { enabled: false } });
  assert.deepEqual([off.mfa.enabled, off.otp.enabled], [false, false]);
  assert.equal((await C.authWithPassword(u.email, PASSWORD)).record.id, u.id);
});

await check('mail: a password sign-in from a new user agent (not the first sign-in) mails a login alert', async () => {
  const u = await newUser(USERS, 'alert');
  const login = async (ua) => {
    const r = await raw('POST', `/api/collections/${USERS}/auth-with-password`, {
      body: { identity: u.email, password: PASSWORD }, headers: { 'User-Agent': ua },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
  };
  await login('MailSuite-UA-1');
  await login('MailSuite-UA-1');
  await noMail(u.email);
  await login('MailSuite-UA-2');
  const m = await nextMail(u.email);
  assert.equal(m.from, FROM);
  assert.equal(m.subject, 'Login from a new location');
  assert.match(m.html, /<p>We noticed a login to your MailSuite account from a new location:<\/p>/);
  assert.match(m.html, /<p><em>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z - 127\.0\.0\.1 MailSuite-UA-2<\/em><\/p>/);
  assert.match(m.html, /change your MailSuite account password to revoke access from all other locations/);
  await login('MailSuite-UA-2');
  await noMail(u.email);
});

await check('mail: custom templates: {APP_NAME} {APP_URL} {TOKEN} {OTP} {OTP_ID} and {RECORD:*}, escaped', async () => {
  const C = guest.collection(TPL);
  const u = await newUser(TPL, 'tpl', { name: 'Zoë <b>' });
  assert.equal(await C.requestVerification(u.email), true);
  const m = await nextMail(u.email);
  // PB: record values are HTML-escaped, in the subject too (which goes out RFC 2047 encoded).
  assert.equal(m.subject, 'Hi Zoë &lt;b&gt; – verify ünïcode');
  const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const body = new RegExp(`<p>MailSuite\\|${esc(APP_URL)}\\|(${JWT})\\|Zoë &lt;b&gt;\\|${esc(u.email)}\\|&amp; <b>x</b></p>`).exec(m.html);
  assert.ok(body, m.html.slice(-400));
  assert.ok(m.text.includes(body[1]), 'the token in the text part');
  assert.equal(jwtPayload(body[1]).id, u.id);
  assert.equal(await C.confirmVerification(body[1]), true);
  const { otpId } = await C.requestOTP(u.email);
  const o = await nextMail(u.email);
  const subject = /^Code (\d{6}) for Zoë &lt;b&gt;$/.exec(o.subject);
  assert.ok(subject, o.subject);
  // PB: only known placeholders are replaced; {RECORD:tokenKey} (hidden) stays as written.
  assert.ok(o.html.includes(`<p>id=${otpId} code=${subject[1]} name=Zoë &lt;b&gt; x={RECORD:tokenKey} y={RECORD:nope}</p>`), o.html.slice(-300));
  // Another collection's OTP is refused; in its own collection it signs in.
  await expectFail(guest.collection(USERS).authWithOTP(otpId, subject[1]), 400, BAD_OTP);
  assert.equal((await C.authWithOTP(otpId, subject[1])).record.id, u.id);
});

await check('mail: teardown (settings restored, collections deleted)', async () => {
  const s = await su.settings.update(state.restore);
  assert.equal(s.meta.appName, state.restore.meta.appName);
  assert.equal(s.smtp.enabled, state.restore.smtp.enabled);
  for (const c of [USERS, MFA, TPL]) await su.collections.delete(c);
});

finish();
