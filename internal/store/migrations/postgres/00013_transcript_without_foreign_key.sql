-- +goose Up
-- Every message writes two or three transcript lines, and PostgreSQL checks
-- each line's foreign key to conversations with a query of its own, run
-- after the statement: a row lock on the conversation the same statement
-- has just written. Measured under load, those checks were more than a
-- third of a message's statements and about a tenth of its time in
-- PostgreSQL. The store writes lines only for a conversation it loaded or
-- saved in the same transaction, and refuses any other
-- (TestLinesOnlyForTheTransactionsConversations), and conversations are
-- never deleted, so the check never fails; it goes. SQLite, where the same
-- check is an in-process index lookup, keeps it.
ALTER TABLE transcript DROP CONSTRAINT transcript_conversation_id_fkey;

-- +goose Down
ALTER TABLE transcript ADD CONSTRAINT transcript_conversation_id_fkey
    FOREIGN KEY (conversation_id) REFERENCES conversations (id);
