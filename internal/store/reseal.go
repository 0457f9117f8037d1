package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"

	"github.com/safeflow/safeflow/internal/seal"
)

// keyColumn is one column of the key a sealed table is paged by.
type keyColumn struct {
	name    string
	integer bool // BIGINT rather than TEXT
}

// sealedColumn is a column of sealed values and the seal.AD column they are
// bound to.
type sealedColumn struct {
	name string // in the table, such as "address_sealed"
	ad   string // seal.AD.Column, such as "address"
}

// sealedTable is a table holding sealed values. The seal.AD row of each value
// is the table's key, its parts joined by "/": the row id, or for the
// transcript conversation_id + "/" + n, as tx.go seals them.
type sealedTable struct {
	name    string
	key     []keyColumn // unique, in paging order
	columns []sealedColumn
}

// sealedTables lists every sealed column of the schema. A test compares it
// with the migrated schema, so a new *_sealed column cannot be forgotten here.
var sealedTables = []sealedTable{
	{name: "contacts", key: []keyColumn{{name: "id"}},
		columns: []sealedColumn{{"address_sealed", "address"}}},
	{name: "conversations", key: []keyColumn{{name: "id"}},
		columns: []sealedColumn{{"vars_sealed", "vars"}, {"address_sealed", "address"}}},
	{name: "transcript", key: []keyColumn{{name: "conversation_id"}, {name: "n", integer: true}},
		columns: []sealedColumn{{"body_sealed", "body"}}},
	{name: "outbox", key: []keyColumn{{name: "id"}},
		columns: []sealedColumn{{"address_sealed", "address"}, {"body_sealed", "body"}}},
}

// sealedRecord is one row read by the re-seal job: its key and its sealed
// values, in the order of the table's columns.
type sealedRecord struct {
	key    []any
	values [][]byte
}

func (r *sealedRecord) row() string {
	parts := make([]string, len(r.key))
	for i, k := range r.key {
		parts[i] = fmt.Sprint(k)
	}
	return strings.Join(parts, "/")
}

// Reseal moves every sealed value that is not under the key ring's active key
// onto it: contact addresses, conversation variables and addresses,
// transcript bodies and outbox addresses and bodies. It works through each
// table in batches of up to batch rows, each batch in its own transaction, so
// that the service keeps running alongside; a job that stops part-way (an
// error, a cancelled ctx) keeps the batches it committed, and running it
// again carries on with the values still under older keys.
//
// progress, when not nil, is called after each batch commits and at least
// once per table, with the number of values re-sealed in that table so far.
// Reseal returns how many values it re-sealed, also when it fails.
//
// Every value is opened before it is sealed again (seal.Ring.Reseal), so a
// value that was changed, copied from another row, or sealed under a key
// missing from the ring stops the job with an error wrapping seal.ErrOpen or
// seal.ErrUnknownKey, naming the table and row; the batch it was in is rolled
// back. Remove old keys from the key file only after Reseal has succeeded.
func (s *Store) Reseal(ctx context.Context, batch int, progress func(table string, done int)) (int, error) {
	if batch < 1 {
		return 0, fmt.Errorf("reseal: batch size must be at least 1, not %d", batch)
	}
	active := s.ring.ActiveID()
	if active == "" {
		return 0, errors.New("reseal: the key ring has no active key")
	}
	total := 0
	for i := range sealedTables {
		t := &sealedTables[i]
		done, err := s.resealTable(ctx, t, active, batch, progress)
		total += done
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// resealTable runs the job over one table and returns how many values it
// re-sealed.
func (s *Store) resealTable(ctx context.Context, t *sealedTable, active string, batch int,
	progress func(string, int)) (int, error) {
	// Rows whose every value already starts with the active key's header
	// (version 1, id length, id: the layout in internal/seal's package
	// documentation) are skipped in SQL, so a resumed job does not read again
	// what it already moved. This only narrows the scan: a value in another
	// format is selected, and Ring.Reseal decides.
	header := append([]byte{1, byte(len(active))}, active...)
	query, args := t.selectStale(s, header, batch)
	done, reported := 0, false
	var after []any
	for {
		var n, changed int
		var last []any
		err := s.resealTx(ctx, func(tx *sqlx.Tx) error {
			var err error
			n, changed, last, err = s.resealBatch(ctx, tx, t, query, args, after)
			return err
		})
		if err != nil {
			return done, err
		}
		if n == 0 {
			break
		}
		done += changed
		after = last
		if progress != nil {
			progress(t.name, done)
			reported = true
		}
		if n < batch {
			break
		}
	}
	if progress != nil && !reported {
		progress(t.name, done)
	}
	return done, nil
}

// selectStale builds the batch query of a table: the rows after a cursor
// with at least one value whose header differs from header. Its arguments
// are the cursor's key values followed by the returned args.
func (t *sealedTable) selectStale(s *Store, header []byte, batch int) (string, []any) {
	keys := make([]string, len(t.key))
	marks := make([]string, len(t.key))
	for i, k := range t.key {
		keys[i], marks[i] = k.name, "?"
	}
	cols := make([]string, len(t.columns))
	stale := make([]string, len(t.columns))
	args := make([]any, len(t.columns))
	for i, c := range t.columns {
		cols[i] = c.name
		// substr on a BLOB (SQLite) or bytea (PostgreSQL) counts bytes.
		stale[i] = "substr(" + c.name + ", 1, " + strconv.Itoa(len(header)) + ") <> ?"
		args[i] = header
	}
	cursor := strings.Join(keys, ", ")
	if len(keys) > 1 {
		cursor = "(" + cursor + ") > (" + strings.Join(marks, ", ") + ")"
	} else {
		cursor += " > ?"
	}
	q := "SELECT " + strings.Join(keys, ", ") + ", " + strings.Join(cols, ", ") + " FROM " + t.name +
		" WHERE " + cursor + " AND (" + strings.Join(stale, " OR ") + ")" +
		" ORDER BY " + strings.Join(keys, ", ") + " LIMIT " + strconv.Itoa(batch) + s.forUpdate()
	return q, args
}

// resealBatch re-seals one batch in tx: the rows after the key after (nil
// for the start of the table). It returns how many rows it read, how many
// values it changed, and the key of the last row.
func (s *Store) resealBatch(ctx context.Context, tx *sqlx.Tx, t *sealedTable, query string, args, after []any) (int, int, []any, error) {
	if after == nil {
		// Every key is above the smallest value of its type.
		after = make([]any, len(t.key))
		for i, k := range t.key {
			if k.integer {
				after[i] = int64(-1) << 63
			} else {
				after[i] = ""
			}
		}
	}
	records, err := t.read(ctx, tx, s.q(query), append(append([]any{}, after...), args...))
	if err != nil {
		return 0, 0, nil, err
	}
	active := s.ring.ActiveID()
	changed := 0
	for _, r := range records {
		row := r.row()
		var sets []string
		var vals []any
		for i, c := range t.columns {
			if id, err := s.ring.KeyIDOf(r.values[i]); err == nil && id == active {
				continue
			}
			v, moved, err := s.ring.Reseal(r.values[i], seal.AD{Table: t.name, Column: c.ad, Row: row})
			if err != nil {
				return 0, 0, nil, fmt.Errorf("reseal %s row %s: %w", t.name, row, err)
			}
			if moved {
				sets = append(sets, c.name+" = ?")
				vals = append(vals, v)
			}
		}
		if len(sets) == 0 {
			continue
		}
		where := make([]string, len(t.key))
		for i, k := range t.key {
			where[i] = k.name + " = ?"
		}
		_, err := tx.ExecContext(ctx, s.q("UPDATE "+t.name+" SET "+strings.Join(sets, ", ")+" WHERE "+strings.Join(where, " AND ")),
			append(vals, r.key...)...)
		if err != nil {
			return 0, 0, nil, fmt.Errorf("reseal %s row %s: %w", t.name, row, err)
		}
		changed += len(sets)
	}
	if len(records) == 0 {
		return 0, 0, nil, nil
	}
	return len(records), changed, records[len(records)-1].key, nil
}

// read runs a batch query and returns its rows. They are read in full before
// any update, since SQLite has one connection and a statement may not be
// left open under another.
func (t *sealedTable) read(ctx context.Context, tx *sqlx.Tx, query string, args []any) ([]sealedRecord, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reseal %s: %w", t.name, err)
	}
	defer rows.Close()
	var out []sealedRecord
	for rows.Next() {
		r := sealedRecord{key: make([]any, len(t.key)), values: make([][]byte, len(t.columns))}
		dest := make([]any, 0, len(t.key)+len(t.columns))
		strs := make([]string, len(t.key))
		ints := make([]int64, len(t.key))
		for i, k := range t.key {
			if k.integer {
				dest = append(dest, &ints[i])
			} else {
				dest = append(dest, &strs[i])
			}
		}
		for i := range t.columns {
			dest = append(dest, &r.values[i])
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("reseal %s: %w", t.name, err)
		}
		for i, k := range t.key {
			if k.integer {
				r.key[i] = ints[i]
			} else {
				r.key[i] = strs[i]
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reseal %s: %w", t.name, err)
	}
	return out, nil
}

// resealTx runs one batch in its own transaction, and again when it lost a
// race with the service's transactions (a deadlock on PostgreSQL).
func (s *Store) resealTx(ctx context.Context, fn func(*sqlx.Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := func() error {
			tx, err := s.db.BeginTxx(ctx, nil)
			if err != nil {
				return fmt.Errorf("reseal: begin: %w", err)
			}
			if err := fn(tx); err != nil {
				tx.Rollback()
				return err
			}
			if err := tx.Commit(); err != nil {
				return fmt.Errorf("reseal: commit: %w", err)
			}
			return nil
		}()
		if err == nil || attempt == maxRetries || !retryable(err) {
			return err
		}
	}
}
