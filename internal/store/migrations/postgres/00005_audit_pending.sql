-- +goose Up
-- Audit records are written here in the same transaction as the action they
-- record, then chained into audit_log, in order, by one chainer at a time.
-- Message transactions so never wait for the chain's head.
CREATE TABLE audit_pending (
    id              BIGSERIAL PRIMARY KEY,
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
    request_id      TEXT NOT NULL
);

-- +goose Down
DROP TABLE audit_pending;
