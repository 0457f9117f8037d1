-- +goose Up
-- Migration 14's functions run as the owner with the search path of the
-- migration's session. PostgreSQL looks in the caller's temporary schema
-- first unless pg_temp is named in the path, so a caller could have shadowed
-- audit_log, audit_head or audit_pending with temporary tables of its own
-- and had the owner's function move records into them. pg_temp goes last.
-- (set_config(..., true) lasts until the end of this migration's
-- transaction; FROM CURRENT keeps the path as it is then.)
SELECT set_config('search_path', current_setting('search_path') || ', pg_temp', true);
ALTER FUNCTION audit_chain_head() SET search_path FROM CURRENT;
ALTER FUNCTION audit_chain(BIGINT[], BIGINT[], BYTEA[], BYTEA[]) SET search_path FROM CURRENT;

-- +goose Down
ALTER FUNCTION audit_chain_head() RESET search_path;
ALTER FUNCTION audit_chain(BIGINT[], BIGINT[], BYTEA[], BYTEA[]) RESET search_path;
