-- +goose Up
-- A pending audit record is an audit record: once written, the service's
-- role must not be able to change it or make it vanish before it is chained.
-- Until now the chainer moved pending records with the service's own
-- privileges, so that role could also UPDATE or DELETE them (and move the
-- head) in the moment before the chainer ran.
--
-- Chaining now goes through two functions that run as the migrations'
-- owner (SECURITY DEFINER). The service computes the hashes, as before, and
-- needs no privilege on audit_pending beyond SELECT and INSERT, and none on
-- audit_log or audit_head beyond SELECT: docs/operations.md revokes the rest.
--
-- audit_chain_head locks the head for the calling transaction and returns
-- it. audit_chain moves the given pending records into the log with the
-- sequence numbers and hashes given, and moves the head to the last. It
-- refuses anything that is not a continuation of the chain from the head:
-- sequence numbers in order from the head's, each record pointing to the one
-- before, ids in the order they were written. A wrong hash passes here and
-- is named by `safeflow audit verify`; a record can only enter the log, never
-- leave it or audit_pending any other way.
-- +goose StatementBegin
CREATE FUNCTION audit_chain_head(OUT seq BIGINT, OUT hash BYTEA)
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    SELECT h.seq, h.hash FROM audit_head h WHERE h.id = 1 FOR UPDATE
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION audit_chain(ids BIGINT[], seqs BIGINT[], prevs BYTEA[], hashes BYTEA[]) RETURNS INTEGER
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    n INTEGER := coalesce(cardinality(ids), 0);
    head_seq BIGINT;
    head_hash BYTEA;
    moved INTEGER;
BEGIN
    IF n = 0 THEN
        RETURN 0;
    END IF;
    IF cardinality(seqs) <> n OR cardinality(prevs) <> n OR cardinality(hashes) <> n THEN
        RAISE EXCEPTION 'audit_chain: % ids but % sequence numbers, % previous hashes and % hashes',
            n, cardinality(seqs), cardinality(prevs), cardinality(hashes);
    END IF;
    SELECT h.seq, h.hash INTO head_seq, head_hash FROM audit_head h WHERE h.id = 1 FOR UPDATE;
    FOR i IN 1..n LOOP
        IF seqs[i] <> head_seq + i THEN
            RAISE EXCEPTION 'audit_chain: record % would be number %, but the log''s head is at %', i, seqs[i], head_seq;
        END IF;
        IF prevs[i] <> (CASE WHEN i = 1 THEN head_hash ELSE hashes[i - 1] END) THEN
            RAISE EXCEPTION 'audit_chain: record % does not point to the record before it', seqs[i];
        END IF;
        IF i > 1 AND ids[i] <= ids[i - 1] THEN
            RAISE EXCEPTION 'audit_chain: pending records must be chained in the order they were written';
        END IF;
    END LOOP;
    WITH m AS (DELETE FROM audit_pending p WHERE p.id = ANY(ids) RETURNING p.*)
    INSERT INTO audit_log (seq, at, actor_type, actor_id, actor_role, source, action, object,
        conversation_id, channel, outcome, reason, request_id, prev_hash, hash)
    SELECT c.seq, m.at, m.actor_type, m.actor_id, m.actor_role, m.source, m.action, m.object,
        m.conversation_id, m.channel, m.outcome, m.reason, m.request_id, c.prev, c.hash
    FROM m JOIN unnest(ids, seqs, prevs, hashes) AS c(id, seq, prev, hash) ON c.id = m.id;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved <> n THEN
        RAISE EXCEPTION 'audit_chain: % of % pending records found', moved, n;
    END IF;
    UPDATE audit_head SET seq = seqs[n], hash = hashes[n] WHERE id = 1;
    RETURN n;
END;
$$;
-- +goose StatementEnd

-- Functions are open to everyone by default: these are for the service.
REVOKE ALL ON FUNCTION audit_chain_head() FROM PUBLIC;
REVOKE ALL ON FUNCTION audit_chain(BIGINT[], BIGINT[], BYTEA[], BYTEA[]) FROM PUBLIC;

-- Nobody edits a pending record, not even its owner by accident.
-- +goose StatementBegin
CREATE FUNCTION audit_pending_unchanged() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'pending audit records cannot be changed: % is not allowed', TG_OP;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending
    FOR EACH ROW EXECUTE FUNCTION audit_pending_unchanged();
CREATE TRIGGER audit_pending_no_truncate BEFORE TRUNCATE ON audit_pending
    FOR EACH STATEMENT EXECUTE FUNCTION audit_pending_unchanged();

-- +goose Down
DROP TRIGGER audit_pending_no_truncate ON audit_pending;
DROP TRIGGER audit_pending_no_update ON audit_pending;
DROP FUNCTION audit_pending_unchanged();
DROP FUNCTION audit_chain(BIGINT[], BIGINT[], BYTEA[], BYTEA[]);
DROP FUNCTION audit_chain_head();
