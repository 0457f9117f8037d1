-- +goose Up
-- A pending audit record is an audit record: nobody edits it before it is
-- chained. (The chainer deletes it as it moves it into the log.)
-- +goose StatementBegin
CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending
BEGIN
    SELECT RAISE(ABORT, 'pending audit records cannot be changed: UPDATE is not allowed');
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER audit_pending_no_update;
