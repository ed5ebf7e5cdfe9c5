// The files checks, driven through PocketBase's official JS SDK: uploads with File and Blob,
// PocketBase's stored names, size, type and count limits, the `field+`/`+field`/`field-`
// modifiers, `pb.files.getURL` with thumbnails and downloads, ranges, the headers user content
// needs, protected files with `pb.files.getToken()`, and files going away with what replaced or
// deleted them.
//
// Usage: as conformance.mjs (PB_URL, PB_SUPERUSER_EMAIL, PB_SUPERUSER_PASSWORD). Every
// expectation was observed on the real PocketBase 0.40.

import zlib from 'node:zlib';
import {
  assert, check, expectError, fieldCode, client, raw, SU_EMAIL, SU_PASSWORD, ID_RE, finish,
} from './harness.mjs';

const RUN = `f${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
const DOCS = `${RUN}_docs`;
const PRIV = `${RUN}_priv`;
const USERS = `${RUN}_users`;
const PASSWORD = 'Secret12345';
const su = client();
const guest = client();
const state = {};

// A real PNG of w x h pixels (8-bit RGB), made here.
function png(w, h) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type), data]);
    const c = Buffer.alloc(4); c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0); ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; ihdr[9] = 2;
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let x = 0; x < w; x++) row.set([x * 4 % 256, y * 5 % 256, 120], 1 + x * 3);
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(Buffer.concat(rows))), chunk('IEND', Buffer.alloc(0)),
  ]);
}

// Width and height of a PNG, from its header.
function pngSize(buf) {
  assert.equal(buf.subarray(1, 4).toString(), 'PNG', 'a PNG');
  return [buf.readUInt32BE(16), buf.readUInt32BE(20)];
}

async function fetchBytes(url, headers = {}) {
  const res = await fetch(url, { headers });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

const PNG = png(64, 48);
const NAME_RE = (stem, ext) => new RegExp(`^${stem}_[a-z0-9]{10}\\.${ext}$`);

console.log(`# files run ${RUN}`);

await check('files: setup (superuser, collections with file fields, a user)', async () => {
  await su.collection('_superusers').authWithPassword(SU_EMAIL, SU_PASSWORD);
  await su.collections.create({
    name: DOCS, type: 'base',
    listRule: '', viewRule: '', createRule: '', updateRule: '', deleteRule: '',
    fields: [
      { name: 'title', type: 'text' },
      { name: 'one', type: 'file', maxSelect: 1, maxSize: 1000 },
      { name: 'many', type: 'file', maxSelect: 3 },
      { name: 'img', type: 'file', maxSelect: 1, mimeTypes: ['image/png'], thumbs: ['50x50', '20x0', '30x30f'] },
    ],
  });
  const users = await su.collections.create({
    name: USERS, type: 'auth', listRule: '', viewRule: '', createRule: '',
    fields: [],
  });
  await su.collections.create({
    name: PRIV, type: 'base', listRule: '', viewRule: `@request.auth.collectionId = "${users.id}"`, createRule: '',
    fields: [{ name: 'secret', type: 'file', maxSelect: 1, protected: true }, { name: 'open', type: 'file', maxSelect: 1 }],
  });
  state.user = await guest.collection(USERS).create({ email: `${RUN}@example.com`, password: PASSWORD, passwordConfirm: PASSWORD });
});

await check('files: create with File and Blob values stores them under PocketBase names', async () => {
  const r = await guest.collection(DOCS).create({
    title: 'hello',
    one: new File(['hello'], 'Hello World.txt', { type: 'text/plain' }),
    many: [new File(['a'], 'first.txt'), new Blob(['b'])],
    img: new File([PNG], 'photo.png', { type: 'image/png' }),
  });
  assert.match(r.id, ID_RE);
  assert.match(r.one, NAME_RE('hello_world', 'txt'));
  assert.equal(r.many.length, 2);
  assert.match(r.many[0], NAME_RE('first', 'txt'));
  assert.match(r.many[1], /^blob_[a-z0-9]{10}\.txt$/);
  assert.match(r.img, NAME_RE('photo', 'png'));
  state.doc = r;
});

await check('files: getURL serves the bytes with the headers user content needs', async () => {
  const r = state.doc;
  const text = await fetchBytes(guest.files.getURL(r, r.one));
  assert.equal(text.status, 200);
  assert.equal(text.body.toString(), 'hello');
  assert.equal(text.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(text.headers.get('x-content-type-options'), 'nosniff');
  assert.match(text.headers.get('content-security-policy'), /default-src 'none'.*sandbox/);
  assert.equal(text.headers.get('content-disposition'), `attachment; filename="${r.one}"`);
  const image = await fetchBytes(guest.files.getURL(r, r.img));
  assert.equal(image.headers.get('content-type'), 'image/png');
  assert.equal(image.headers.get('content-disposition'), `inline; filename="${r.img}"`);
  assert.ok(image.body.equals(PNG), 'the same bytes');
  const dl = await fetchBytes(guest.files.getURL(r, r.img, { download: true }));
  assert.equal(dl.headers.get('content-disposition'), `attachment; filename="${r.img}"`);
});

await check('files: a Range request gets 206 and the bytes asked for', async () => {
  const r = state.doc;
  const part = await fetchBytes(guest.files.getURL(r, r.one), { Range: 'bytes=1-2' });
  assert.equal(part.status, 206);
  assert.equal(part.body.toString(), 'el');
  assert.equal(part.headers.get('content-range'), 'bytes 1-2/5');
});

await check('files: thumbnails for 100x100 and declared sizes; other sizes serve the original', async () => {
  const r = state.doc;
  const get = (thumb) => fetchBytes(guest.files.getURL(r, r.img, { thumb }));
  const t100 = await get('100x100');
  assert.equal(t100.status, 200);
  assert.deepEqual(pngSize(t100.body), [100, 100]);
  assert.equal(t100.headers.get('content-disposition'), `inline; filename="100x100_${r.img}"`);
  assert.deepEqual(pngSize((await get('50x50')).body), [50, 50]);
  assert.deepEqual(pngSize((await get('20x0')).body), [20, 15]);
  assert.deepEqual(pngSize((await get('30x30f')).body), [30, 22]);
  const other = await get('10x10');
  assert.ok(other.body.equals(PNG), 'an undeclared size serves the original');
  const notImage = await fetchBytes(guest.files.getURL(r, r.one, { thumb: '100x100' }));
  assert.equal(notImage.body.toString(), 'hello');
});

await check('files: maxSize, mimeTypes and maxSelect are enforced with PocketBase codes', async () => {
  const big = await expectError(guest.collection(DOCS).create({ one: new File([Buffer.alloc(2000)], 'big.bin') }), 400);
  assert.equal(fieldCode(big, 'one'), 'validation_file_size_limit');
  assert.deepEqual(big.data.one.params, { file: 'big.bin', maxSize: 1000 });
  const fake = await expectError(guest.collection(DOCS).create({ img: new File(['not a png'], 'fake.png', { type: 'image/png' }) }), 400);
  assert.equal(fieldCode(fake, 'img'), 'validation_invalid_mime_type');
  const many = await expectError(guest.collection(DOCS).create({
    many: [1, 2, 3, 4].map((i) => new File([`${i}`], `f${i}.txt`)),
  }), 400);
  assert.equal(fieldCode(many, 'many'), 'validation_too_many_files');
  const bogus = await expectError(guest.collection(DOCS).create({ many: ['bogus.txt'] }), 400);
  assert.equal(fieldCode(bogus, 'many'), 'validation_invalid_file');
});

await check('files: many+ appends, +many prepends, many- removes, a plain upload replaces', async () => {
  const r = state.doc;
  const C = guest.collection(DOCS);
  const a = await C.update(r.id, { 'many+': new File(['c'], 'third.txt') });
  assert.deepEqual(a.many.slice(0, 2), r.many);
  assert.match(a.many[2], NAME_RE('third', 'txt'));
  const b = await C.update(r.id, { 'many-': [r.many[0]] });
  assert.deepEqual(b.many, a.many.slice(1));
  const c = await C.update(r.id, { '+many': new File(['z'], 'zero.txt') });
  assert.match(c.many[0], NAME_RE('zero', 'txt'));
  assert.deepEqual(c.many.slice(1), b.many);
  const d = await C.update(r.id, { many: new File(['only'], 'only.txt') });
  assert.equal(d.many.length, 1);
  assert.match(d.many[0], NAME_RE('only', 'txt'));
  // The replaced and removed files are gone.
  for (const old of a.many) {
    const res = await fetchBytes(guest.files.getURL(d, old));
    assert.equal(res.status, 404, `${old} should be deleted`);
  }
  state.doc = d;
});

await check('files: null clears a file field and deletes the file', async () => {
  const r = state.doc;
  const oldUrl = guest.files.getURL(r, r.one);
  const u = await guest.collection(DOCS).update(r.id, { one: null });
  assert.equal(u.one, '');
  assert.equal((await fetchBytes(oldUrl)).status, 404);
  state.doc = u;
});

await check('files: deleting the record deletes its files', async () => {
  const r = state.doc;
  const url = guest.files.getURL(r, r.img);
  assert.equal((await fetchBytes(url)).status, 200);
  await guest.collection(DOCS).delete(r.id);
  const gone = await raw('GET', new URL(url).pathname);
  assert.equal(gone.status, 404);
  assert.equal(gone.json.message, "The requested resource wasn't found.");
});

await check('files: protected files need a file token whose owner passes the view rule', async () => {
  const r = await guest.collection(PRIV).create({
    secret: new File(['classified'], 'secret.txt'), open: new File(['public'], 'open.txt'),
  });
  const url = guest.files.getURL(r, r.secret);
  assert.equal((await fetchBytes(url)).status, 404, 'no token');
  assert.equal((await fetchBytes(`${url}?token=abc`)).status, 404, 'bad token');
  // An unprotected field of the same record is served without a token.
  assert.equal((await fetchBytes(guest.files.getURL(r, r.open))).body.toString(), 'public');
  const user = client();
  await user.collection(USERS).authWithPassword(`${RUN}@example.com`, PASSWORD);
  // An auth token is not a file token.
  assert.equal((await fetchBytes(`${url}?token=${user.authStore.token}`)).status, 404, 'auth token');
  const token = await user.files.getToken();
  const ok = await fetchBytes(user.files.getURL(r, r.secret, { token }));
  assert.equal(ok.status, 200);
  assert.equal(ok.body.toString(), 'classified');
  // A superuser's file token passes every rule.
  const suToken = await su.files.getToken();
  assert.equal((await fetchBytes(su.files.getURL(r, r.secret, { token: suToken }))).status, 200);
});

await check('files: unknown collection, record or name is a 404', async () => {
  const r = await guest.collection(DOCS).create({ one: new File(['x'], 'x.txt') });
  for (const path of [
    `/api/files/${RUN}_nope/${r.id}/${r.one}`,
    `/api/files/${DOCS}/aaaaaaaaaaaaaaa/${r.one}`,
    `/api/files/${DOCS}/${r.id}/other.txt`,
    `/api/files/${DOCS}/${r.id}/..%2F..%2Fdata.db`,
  ]) {
    const res = await raw('GET', path);
    assert.equal(res.status, 404, path);
  }
});

try {
  for (const c of [DOCS, PRIV, USERS]) await su.collections.delete(c);
} catch { /* best effort */ }
finish();
