// PocketBase-compatibility conformance suite, driven through PocketBase's official JS SDK, in
// parts under conformance/ (run in order here; they share conformance/context.mjs).
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

import { BASE, finish } from './harness.mjs';
import { RUN } from './conformance/context.mjs';
import * as collections from './conformance/collections.mjs';
import * as records from './conformance/records.mjs';
import * as queries from './conformance/queries.mjs';
import * as schema from './conformance/schema.mjs';
import * as auth from './conformance/auth.mjs';
import * as batch from './conformance/batch.mjs';

console.log(`# conformance run ${RUN} against ${BASE}`);
for (const part of [collections, records, queries, schema, auth, batch]) {
  await part.run();
}
finish();
