// What the conformance parts share: the run's unique names, the two clients and the state
// one check leaves for the next.

import { client } from '../harness.mjs';

// ---------------------------------------------------------------------------------------------
// run-unique names

export const RUN = `c${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
export const C = {
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
export const email = (who) => `${RUN}_${who}@example.com`;
export const PASSWORD = 'Secret12345';

export const su = client();
export const guest = client();
export const state = {}; // ids and objects shared between checks
