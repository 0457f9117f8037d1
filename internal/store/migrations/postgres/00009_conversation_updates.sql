-- +goose Up
-- Every message updates its conversation's row. No query reads conversations
-- by their time of update, yet the index on it made each of those updates
-- write a new entry into every index of the table. Without it, and with room
-- left on each page, PostgreSQL updates the row in place on its page (a HOT
-- update) and leaves the indexes alone.
DROP INDEX conversations_updated;
ALTER TABLE conversations SET (fillfactor = 80);

-- +goose Down
ALTER TABLE conversations RESET (fillfactor);
CREATE INDEX conversations_updated ON conversations (updated);
