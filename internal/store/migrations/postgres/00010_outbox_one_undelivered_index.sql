-- +goose Up
-- Undelivered outbox rows keep one index, by contact, that only the
-- contact-order check and the search for due messages can use:
-- - the check for a contact's older undelivered message looks up the
--   contact's entries (the sequence number rides along in the index);
-- - the search for due messages reads each contact's oldest entry;
-- - messages just written are claimed by sequence number through the primary
--   key.
-- With the undelivered rows also indexed by sequence number, the planner,
-- taking those indexes for small, picked them for lookups by sequence number
-- and for the check, and then stepped over every entry before the row, dead
-- ones (delivered since the last vacuum) included. One index fewer is also
-- one write fewer for each new message and each change of status.
CREATE INDEX outbox_undelivered_by_contact ON outbox (contact_id) INCLUDE (seq) WHERE status IN ('pending', 'sending');
DROP INDEX outbox_contact_undelivered;
DROP INDEX outbox_undelivered;

-- +goose Down
CREATE INDEX outbox_undelivered ON outbox (seq) WHERE status IN ('pending', 'sending');
CREATE INDEX outbox_contact_undelivered ON outbox (contact_id, seq) WHERE status IN ('pending', 'sending');
DROP INDEX outbox_undelivered_by_contact;
