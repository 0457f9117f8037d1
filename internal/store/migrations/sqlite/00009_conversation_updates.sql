-- +goose Up
-- Every message updates its conversation's row. No query reads conversations
-- by their time of update, yet the index on it cost each of those updates a
-- page written to the log.
DROP INDEX conversations_updated;

-- +goose Down
CREATE INDEX conversations_updated ON conversations (updated);
