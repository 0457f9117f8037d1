-- +goose Up
-- Sessions of the secure web chat. Only the SHA-256 of the session id is
-- kept, as for secure links. first_line is the conversation's transcript
-- length when the session opened: the page shows nothing written before it.
-- The idle timeout is checked against last_seen, the absolute limit against
-- expires; both on the server.
CREATE TABLE secure_sessions (
    id_hash         BLOB PRIMARY KEY,
    conversation_id TEXT NOT NULL,
    first_line      BIGINT NOT NULL,
    created         BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    expires         BIGINT NOT NULL
);
CREATE INDEX secure_sessions_conversation ON secure_sessions (conversation_id);
CREATE INDEX secure_sessions_last_seen ON secure_sessions (last_seen);

-- +goose Down
DROP TABLE secure_sessions;
