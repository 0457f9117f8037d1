-- +goose Up
-- outbox and audit_pending are queues: every row is written, changed or
-- deleted within seconds. Until vacuum runs, the dead rows and their index
-- entries stay, and the claims and the chainer step over them, while the
-- planner goes on taking the tables for nearly empty. PostgreSQL's default
-- waits for a fifth of a table to be dead; these tables are vacuumed after
-- a thousand dead rows (outbox: or 1% of it), without the cost-based pauses.
ALTER TABLE outbox SET (autovacuum_vacuum_scale_factor = 0.01, autovacuum_vacuum_threshold = 1000,
	autovacuum_vacuum_cost_delay = 0);
ALTER TABLE audit_pending SET (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 1000,
	autovacuum_vacuum_cost_delay = 0, autovacuum_analyze_scale_factor = 0, autovacuum_analyze_threshold = 1000);

-- +goose Down
ALTER TABLE audit_pending RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold,
	autovacuum_vacuum_cost_delay, autovacuum_analyze_scale_factor, autovacuum_analyze_threshold);
ALTER TABLE outbox RESET (autovacuum_vacuum_scale_factor, autovacuum_vacuum_threshold, autovacuum_vacuum_cost_delay);
