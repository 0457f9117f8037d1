-- +goose Up
-- The audit log is appended to by every message, so every page it touches
-- is written again at each commit. Two changes make that cheaper on SQLite:
-- seq becomes the table's rowid (INTEGER PRIMARY KEY), so the records need
-- no separate key index, and the index on at goes: only `safeflow audit
-- export --since` reads by time, and it can afford to scan.
-- The table is rebuilt under the same name; its append-only triggers go
-- with the old table and are made again.
CREATE TABLE audit_log_rowid (
    seq             INTEGER PRIMARY KEY,
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
    prev_hash       BLOB NOT NULL,
    hash            BLOB NOT NULL
);
INSERT INTO audit_log_rowid SELECT seq, at, actor_type, actor_id, actor_role, source, action, object,
    conversation_id, channel, outcome, reason, request_id, prev_hash, hash FROM audit_log ORDER BY seq;
DROP TABLE audit_log;
ALTER TABLE audit_log_rowid RENAME TO audit_log;
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE is not allowed'); END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE is not allowed'); END;
-- +goose StatementEnd

-- +goose Down
-- Nothing to undo: the rebuilt table holds the same records.
SELECT 1;
