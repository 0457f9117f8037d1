package audit

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// timeLayout always shows six fractional digits, the precision records keep,
// so that an export reads the same however the clock rounded.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// jsonRecord is the export form of a Record: one JSON object per line, every
// field present, hashes in lower-case hex. The names are stable because
// auditors' tools read them.
type jsonRecord struct {
	Seq          int64     `json:"seq"`
	Time         string    `json:"time"`
	Actor        jsonActor `json:"actor"`
	Source       string    `json:"source"`
	Action       string    `json:"action"`
	Object       string    `json:"object"`
	Conversation string    `json:"conversation"`
	Channel      string    `json:"channel"`
	Outcome      string    `json:"outcome"`
	Reason       string    `json:"reason"`
	RequestID    string    `json:"request_id"`
	PrevHash     string    `json:"prev_hash"`
	Hash         string    `json:"hash"`
}

type jsonActor struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Role string `json:"role"`
}

// WriteJSONL writes records to w as JSON Lines, one object per record, with
// the hashes in hex, so that an export can be verified on its own with
// ReadJSONL and Verify.
func WriteJSONL(w io.Writer, records []Record) error {
	jw := NewJSONLWriter(w)
	for i := range records {
		if err := jw.Write(&records[i]); err != nil {
			return err
		}
	}
	return jw.Flush()
}

// A JSONLWriter writes records one at a time, as WriteJSONL does, for logs
// too long to hold in memory. Call Flush at the end.
type JSONLWriter struct {
	bw  *bufio.Writer
	enc *json.Encoder
}

// NewJSONLWriter returns a writer of records to w.
func NewJSONLWriter(w io.Writer) *JSONLWriter {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	// Reasons and ids are written as they are; escaping <, > and & would only
	// make the export harder to read.
	enc.SetEscapeHTML(false)
	return &JSONLWriter{bw: bw, enc: enc}
}

// Write writes one record.
func (w *JSONLWriter) Write(r *Record) error {
	err := w.enc.Encode(jsonRecord{
		Seq:          r.Seq,
		Time:         r.Time.UTC().Format(timeLayout),
		Actor:        jsonActor{Type: r.Actor.Type, ID: r.Actor.ID, Role: r.Actor.Role},
		Source:       r.Source,
		Action:       r.Action,
		Object:       r.Object,
		Conversation: r.Conversation,
		Channel:      r.Channel,
		Outcome:      r.Outcome,
		Reason:       r.Reason,
		RequestID:    r.RequestID,
		PrevHash:     hex.EncodeToString(r.PrevHash),
		Hash:         hex.EncodeToString(r.Hash),
	})
	if err != nil {
		return fmt.Errorf("write audit export: record %d: %w", r.Seq, err)
	}
	return nil
}

// Flush writes what is buffered.
func (w *JSONLWriter) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("write audit export: %w", err)
	}
	return nil
}

// ReadJSONL reads records written by WriteJSONL, in the order they appear.
// Blank lines are skipped; a line that is not a record, or has a field
// WriteJSONL does not write, is an error naming the line.
func ReadJSONL(r io.Reader) ([]Record, error) {
	var records []Record
	err := EachJSONL(r, func(rec *Record) error {
		records = append(records, *rec)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return records, nil
}

// EachJSONL reads records as ReadJSONL does, one at a time, and calls fn
// with each, for exports too long to hold in memory. An error from fn
// stops it and is returned.
func EachJSONL(r io.Reader, fn func(*Record) error) error {
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read audit export: line %d: %w", n, err)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			rec, perr := parseLine(line)
			if perr != nil {
				return fmt.Errorf("read audit export: line %d: %w", n, perr)
			}
			if ferr := fn(&rec); ferr != nil {
				return ferr
			}
		}
		if err != nil { // io.EOF after the last line
			return nil
		}
	}
}

func parseLine(line []byte) (Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var j jsonRecord
	if err := dec.Decode(&j); err != nil {
		return Record{}, err
	}
	if dec.More() {
		return Record{}, errors.New("more than one JSON value on the line")
	}
	t, err := time.Parse(time.RFC3339Nano, j.Time)
	if err != nil {
		return Record{}, fmt.Errorf("time: %w", err)
	}
	prev, err := hex.DecodeString(j.PrevHash)
	if err != nil {
		return Record{}, fmt.Errorf("prev_hash: %w", err)
	}
	sum, err := hex.DecodeString(j.Hash)
	if err != nil {
		return Record{}, fmt.Errorf("hash: %w", err)
	}
	return Record{
		Seq:          j.Seq,
		Time:         t.UTC(),
		Actor:        Actor{Type: j.Actor.Type, ID: j.Actor.ID, Role: j.Actor.Role},
		Source:       j.Source,
		Action:       j.Action,
		Object:       j.Object,
		Conversation: j.Conversation,
		Channel:      j.Channel,
		Outcome:      j.Outcome,
		Reason:       j.Reason,
		RequestID:    j.RequestID,
		PrevHash:     prev,
		Hash:         sum,
	}, nil
}
