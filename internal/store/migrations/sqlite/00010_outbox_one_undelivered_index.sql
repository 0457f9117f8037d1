-- +goose Up
-- Undelivered outbox rows keep one index, by contact and sequence number:
-- the search for due messages reads each contact's oldest entry from it,
-- and messages just written are claimed by sequence number through the
-- table itself. One index fewer is one write fewer for each new message and
-- each change of status. (On PostgreSQL the same change also keeps the
-- planner from a bad choice; see its migration 10.)
DROP INDEX outbox_undelivered;

-- +goose Down
CREATE INDEX outbox_undelivered ON outbox (seq) WHERE status IN ('pending', 'sending');
