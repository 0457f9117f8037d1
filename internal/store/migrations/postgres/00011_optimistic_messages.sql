-- +goose Up
-- A message is first handled without locks: its reads take one statement,
-- and all its writes another, which applies only if the conversation's
-- version is still the one read. Every write of a conversation counts a
-- version up; expect() makes the writing statement fail, and roll back
-- whole, when what it found is not what the reads assumed.
ALTER TABLE conversations ADD COLUMN version bigint NOT NULL DEFAULT 0;

-- +goose StatementBegin
CREATE FUNCTION safeflow_expect(ok boolean) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
	IF NOT ok THEN
		RAISE EXCEPTION 'the rows changed since they were read' USING ERRCODE = '40001';
	END IF;
	RETURN true;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION safeflow_expect(boolean);
ALTER TABLE conversations DROP COLUMN version;
