-- +goose Up
-- A message's reads and the engine run beside the single writer, on a
-- connection of their own; only its writes take the writer's turn, and they
-- apply only if the conversation's version is still the one read. Every
-- write of a conversation counts a version up. (PostgreSQL's migration 11
-- adds the same column for the same reason.)
ALTER TABLE conversations ADD COLUMN version BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE conversations DROP COLUMN version;
