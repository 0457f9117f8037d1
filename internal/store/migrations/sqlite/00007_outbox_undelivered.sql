-- +goose Up
-- The outbox keeps every message it has sent, so the rows still to deliver
-- are a small and moving part of it. Partial indexes hold only those rows:
-- the claim walks them in order and checks a contact's earlier ones without
-- stepping over the sent history (on PostgreSQL, over the dead index entries
-- each status change leaves until vacuum). The wider indexes they replace
-- cost a write at every change of status.
CREATE INDEX outbox_undelivered ON outbox (seq) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_contact_undelivered ON outbox (contact_id, seq) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_dead ON outbox (seq) WHERE status = 'dead';
DROP INDEX outbox_due;
DROP INDEX outbox_contact;

-- +goose Down
CREATE INDEX outbox_due ON outbox (status, next_attempt);
CREATE INDEX outbox_contact ON outbox (contact_id, seq);
DROP INDEX outbox_dead;
DROP INDEX outbox_contact_undelivered;
DROP INDEX outbox_undelivered;
