-- +goose Up
-- Contacts are found by a blind index of their address; the address itself
-- is sealed. No plaintext phone number or PSID is stored anywhere.
CREATE TABLE contacts (
    id             TEXT PRIMARY KEY,
    channel        TEXT NOT NULL,
    address_index  BYTEA NOT NULL UNIQUE,
    address_sealed BYTEA NOT NULL,
    language       TEXT NOT NULL DEFAULT '',
    opted_out      BOOLEAN NOT NULL DEFAULT FALSE,
    created        BIGINT NOT NULL
);

CREATE TABLE conversations (
    id             TEXT PRIMARY KEY,
    contact_id     TEXT NOT NULL REFERENCES contacts(id),
    flow_id        TEXT NOT NULL,
    flow_hash      TEXT NOT NULL,
    step           TEXT NOT NULL,
    status         TEXT NOT NULL,
    vars_sealed    BYTEA NOT NULL,
    origin         TEXT NOT NULL,
    address_sealed BYTEA NOT NULL,
    language       TEXT NOT NULL,
    attempts       INTEGER NOT NULL,
    secure         TEXT NOT NULL,
    stay_secure    BOOLEAN NOT NULL,
    prompt_sent    BOOLEAN NOT NULL,
    link_sent_at   BIGINT NOT NULL,
    link_resends   INTEGER NOT NULL,
    queue          TEXT NOT NULL,
    timer_due      BIGINT NOT NULL,
    lines          BIGINT NOT NULL DEFAULT 0,
    created        BIGINT NOT NULL,
    updated        BIGINT NOT NULL
);
-- At most one conversation of a contact is open at a time.
CREATE UNIQUE INDEX conversations_open ON conversations (contact_id) WHERE status <> 'ended';
CREATE INDEX conversations_updated ON conversations (updated);

CREATE TABLE transcript (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    n               BIGINT NOT NULL,
    at              BIGINT NOT NULL,
    inbound         BOOLEAN NOT NULL,
    channel         TEXT NOT NULL,
    step            TEXT NOT NULL,
    sensitive       BOOLEAN NOT NULL,
    body_sealed     BYTEA NOT NULL,
    PRIMARY KEY (conversation_id, n)
);

-- Provider message ids already handled: a replayed webhook changes nothing.
CREATE TABLE inbound_seen (
    channel     TEXT NOT NULL,
    provider_id TEXT NOT NULL,
    seen        BIGINT NOT NULL,
    PRIMARY KEY (channel, provider_id)
);

CREATE TABLE outbox (
    seq             BIGSERIAL PRIMARY KEY,
    id              TEXT NOT NULL UNIQUE,
    conversation_id TEXT NOT NULL DEFAULT '',
    contact_id      TEXT NOT NULL,
    channel         TEXT NOT NULL,
    address_sealed  BYTEA NOT NULL,
    body_sealed     BYTEA NOT NULL,
    meta            TEXT NOT NULL DEFAULT '',
    link            BOOLEAN NOT NULL DEFAULT FALSE,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt    BIGINT NOT NULL,
    provider_id     TEXT NOT NULL DEFAULT '',
    error           TEXT NOT NULL DEFAULT '',
    created         BIGINT NOT NULL,
    updated         BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt);
CREATE INDEX outbox_contact ON outbox (contact_id, seq);

CREATE TABLE timers (
    id              BIGSERIAL PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    kind            TEXT NOT NULL,
    step            TEXT NOT NULL,
    due             BIGINT NOT NULL
);
CREATE INDEX timers_due ON timers (due);
CREATE INDEX timers_conversation ON timers (conversation_id);

-- Secure links: only the SHA-256 of the token is kept.
CREATE TABLE secure_links (
    token_hash      BYTEA PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    contact_id      TEXT NOT NULL,
    created         BIGINT NOT NULL,
    expires         BIGINT NOT NULL,
    redeemed        BIGINT NOT NULL DEFAULT 0,
    failures        INTEGER NOT NULL DEFAULT 0,
    locked          BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX secure_links_conversation ON secure_links (conversation_id);

-- Every flow version ever served, by content hash, so a conversation in
-- flight keeps its definition on every node.
CREATE TABLE flow_versions (
    hash    TEXT PRIMARY KEY,
    flow_id TEXT NOT NULL,
    file    TEXT NOT NULL,
    source  BYTEA NOT NULL,
    created BIGINT NOT NULL
);

CREATE TABLE audit_log (
    seq             BIGINT PRIMARY KEY,
    at              BIGINT NOT NULL,
    actor_type      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    actor_role      TEXT NOT NULL,
    source          TEXT NOT NULL,
    action          TEXT NOT NULL,
    object          TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    channel         TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    prev_hash       BYTEA NOT NULL,
    hash            BYTEA NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);

-- The head of the audit chain: one row, locked by each appender.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE,
    created       BIGINT NOT NULL
);

CREATE TABLE sessions (
    id_hash   BYTEA PRIMARY KEY,
    user_id   TEXT NOT NULL REFERENCES users(id),
    created   BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    expires   BIGINT NOT NULL
);

-- +goose Down
DROP TABLE sessions; DROP TABLE users; DROP TABLE audit_head; DROP TABLE audit_log;
DROP TABLE flow_versions; DROP TABLE secure_links; DROP TABLE timers; DROP TABLE outbox;
DROP TABLE inbound_seen; DROP TABLE transcript; DROP TABLE conversations; DROP TABLE contacts;
