//! The system tables of the records engine.

use pier_storage::Migration;

/// Storage-core migrations followed by the records engine's own.
pub const MIGRATIONS: &[Migration] = &[
    pier_storage::CORE_MIGRATIONS[0],
    Migration {
        version: 2,
        name: "collections",
        sqlite: "CREATE TABLE _collections (
                     id TEXT PRIMARY KEY NOT NULL,
                     name TEXT NOT NULL UNIQUE COLLATE NOCASE,
                     type TEXT NOT NULL,
                     system BOOLEAN NOT NULL DEFAULT FALSE,
                     data TEXT NOT NULL,
                     created TEXT NOT NULL,
                     updated TEXT NOT NULL
                 );",
        postgres: "CREATE TABLE _collections (
                     id TEXT PRIMARY KEY NOT NULL,
                     name TEXT NOT NULL,
                     type TEXT NOT NULL,
                     system BOOLEAN NOT NULL DEFAULT FALSE,
                     data TEXT NOT NULL,
                     created TEXT NOT NULL,
                     updated TEXT NOT NULL
                 );
                 CREATE UNIQUE INDEX _collections_name ON _collections (LOWER(name));",
    },
    Migration {
        version: 3,
        name: "superusers",
        sqlite: "CREATE TABLE _superusers (
                     id TEXT PRIMARY KEY NOT NULL,
                     email TEXT NOT NULL DEFAULT '',
                     emailVisibility BOOLEAN NOT NULL DEFAULT FALSE,
                     verified BOOLEAN NOT NULL DEFAULT FALSE,
                     password TEXT NOT NULL DEFAULT '',
                     tokenKey TEXT NOT NULL DEFAULT '',
                     created TEXT NOT NULL DEFAULT '',
                     updated TEXT NOT NULL DEFAULT ''
                 );
                 CREATE UNIQUE INDEX _superusers_email ON _superusers (email COLLATE NOCASE);
                 CREATE UNIQUE INDEX _superusers_tokenKey ON _superusers (tokenKey);",
        postgres: "CREATE TABLE _superusers (
                     id TEXT PRIMARY KEY NOT NULL,
                     email TEXT COLLATE \"C\" NOT NULL DEFAULT '',
                     \"emailVisibility\" BOOLEAN NOT NULL DEFAULT FALSE,
                     verified BOOLEAN NOT NULL DEFAULT FALSE,
                     password TEXT NOT NULL DEFAULT '',
                     \"tokenKey\" TEXT NOT NULL DEFAULT '',
                     created TEXT COLLATE \"C\" NOT NULL DEFAULT '',
                     updated TEXT COLLATE \"C\" NOT NULL DEFAULT ''
                 );
                 CREATE UNIQUE INDEX _superusers_email ON _superusers (LOWER(email));
                 CREATE UNIQUE INDEX \"_superusers_tokenKey\" ON _superusers (\"tokenKey\");",
    },
    Migration {
        version: 4,
        name: "events outbox",
        // On SQLite events stay in the process that writes them: nothing to store.
        sqlite: "-- The events outbox is PostgreSQL's alone.",
        postgres: "CREATE TABLE _events (
                     id BIGSERIAL PRIMARY KEY,
                     seq BIGINT UNIQUE,
                     created_at BIGINT NOT NULL,
                     payload TEXT NOT NULL
                 );
                 CREATE INDEX _events_unnumbered ON _events (id) WHERE seq IS NULL;
                 CREATE TABLE _events_head (
                     id INTEGER PRIMARY KEY CHECK (id = 1),
                     seq BIGINT NOT NULL
                 );
                 INSERT INTO _events_head (id, seq) VALUES (1, 0);",
    },
    Migration {
        version: 5,
        name: "one-time passwords, MFA sessions and sign-in origins",
        sqlite: "CREATE TABLE _otps (
                     id TEXT PRIMARY KEY NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     password TEXT NOT NULL,
                     \"sentTo\" TEXT NOT NULL DEFAULT '',
                     attempts INTEGER NOT NULL DEFAULT 0,
                     created INTEGER NOT NULL
                 );
                 CREATE INDEX _otps_created ON _otps (created);
                 CREATE TABLE _mfas (
                     id TEXT PRIMARY KEY NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     method TEXT NOT NULL,
                     created INTEGER NOT NULL
                 );
                 CREATE INDEX _mfas_created ON _mfas (created);
                 CREATE TABLE \"_authOrigins\" (
                     id TEXT PRIMARY KEY NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     fingerprint TEXT NOT NULL,
                     created INTEGER NOT NULL,
                     updated INTEGER NOT NULL
                 );
                 CREATE UNIQUE INDEX \"_authOrigins_fingerprint\"
                     ON \"_authOrigins\" (\"collectionRef\", \"recordRef\", fingerprint);",
        postgres: "CREATE TABLE _otps (
                     id TEXT PRIMARY KEY NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     password TEXT NOT NULL,
                     \"sentTo\" TEXT NOT NULL DEFAULT '',
                     attempts BIGINT NOT NULL DEFAULT 0,
                     created BIGINT NOT NULL
                 );
                 CREATE INDEX _otps_created ON _otps (created);
                 CREATE TABLE _mfas (
                     id TEXT PRIMARY KEY NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     method TEXT NOT NULL,
                     created BIGINT NOT NULL
                 );
                 CREATE INDEX _mfas_created ON _mfas (created);
                 CREATE TABLE \"_authOrigins\" (
                     id TEXT PRIMARY KEY NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     fingerprint TEXT NOT NULL,
                     created BIGINT NOT NULL,
                     updated BIGINT NOT NULL
                 );
                 CREATE UNIQUE INDEX \"_authOrigins_fingerprint\"
                     ON \"_authOrigins\" (\"collectionRef\", \"recordRef\", fingerprint);",
    },
    Migration {
        version: 6,
        name: "API keys",
        sqlite: "CREATE TABLE \"_apiKeys\" (
                     id TEXT PRIMARY KEY NOT NULL,
                     name TEXT NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     hash TEXT NOT NULL,
                     prefix TEXT NOT NULL,
                     scopes TEXT NOT NULL,
                     expires INTEGER NOT NULL DEFAULT 0,
                     created TEXT NOT NULL,
                     \"lastUsed\" TEXT NOT NULL DEFAULT ''
                 );
                 CREATE UNIQUE INDEX \"_apiKeys_hash\" ON \"_apiKeys\" (hash);
                 CREATE INDEX \"_apiKeys_record\" ON \"_apiKeys\" (\"collectionRef\", \"recordRef\");",
        postgres: "CREATE TABLE \"_apiKeys\" (
                     id TEXT PRIMARY KEY NOT NULL,
                     name TEXT NOT NULL,
                     \"collectionRef\" TEXT NOT NULL,
                     \"recordRef\" TEXT NOT NULL,
                     hash TEXT NOT NULL,
                     prefix TEXT NOT NULL,
                     scopes TEXT NOT NULL,
                     expires BIGINT NOT NULL DEFAULT 0,
                     created TEXT COLLATE \"C\" NOT NULL,
                     \"lastUsed\" TEXT NOT NULL DEFAULT ''
                 );
                 CREATE UNIQUE INDEX \"_apiKeys_hash\" ON \"_apiKeys\" (hash);
                 CREATE INDEX \"_apiKeys_record\" ON \"_apiKeys\" (\"collectionRef\", \"recordRef\");",
    },
];
