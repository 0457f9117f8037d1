-- +goose Up
-- Provider message ids are forgotten after a while (Store.PruneInboundSeen).
-- Rows arrive in time order, so a BRIN index on seen finds the old ones for
-- a few pages of index, and costs the inserts next to nothing.
CREATE INDEX inbound_seen_seen ON inbound_seen USING brin (seen);

-- +goose Down
DROP INDEX inbound_seen_seen;
