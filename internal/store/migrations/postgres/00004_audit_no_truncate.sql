-- +goose Up
-- Row triggers do not fire on TRUNCATE, so 00002 left the owner one way to
-- empty the audit log in a single statement. A statement trigger closes it.
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- +goose Down
DROP TRIGGER audit_log_no_truncate ON audit_log;
