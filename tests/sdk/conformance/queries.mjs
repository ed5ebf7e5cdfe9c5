// The conformance suite's lists: filter, sort, fields and expand (fixture: cats + items).
// Run by ../conformance.mjs after the parts before it (checks here may use their state).

import {
  assert, PocketBase, ClientResponseError, BASE, SU_EMAIL, SU_PASSWORD, check, expectError,
  assertErrorShape, fieldCode, client, raw, jwtPayload, sleep, DATE_RE, ID_RE, names, sortedKeys,
} from '../harness.mjs';
import { RUN, C, email, PASSWORD, su, guest, state } from './context.mjs';

export async function run() {
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
}
