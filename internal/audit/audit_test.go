package audit

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 14, 9, 26, 53, 589793238, time.UTC)

// newLog returns n chained records whose fields all differ from one record
// to the next, as a store would hand them back.
func newLog(n int) []Record {
	actions := []string{MessageIn, StepChange, LinkIssued, MessageOut, TranscriptView}
	records := make([]Record, n)
	for i := range records {
		r := &records[i]
		*r = Record{
			Time:         t0.Add(time.Duration(i) * time.Second),
			Actor:        Actor{Type: ActorAgent, ID: fmt.Sprintf("user-%d", i%3), Role: "agent"},
			Source:       fmt.Sprintf("192.0.2.%d", i+1),
			Action:       actions[i%len(actions)],
			Object:       fmt.Sprintf("msg-%d", i),
			Conversation: fmt.Sprintf("conv-%d", i%2),
			Channel:      "sms",
			Outcome:      OutcomeOK,
			Reason:       "",
			RequestID:    fmt.Sprintf("req-%d", i),
		}
		var prev *Record
		if i > 0 {
			prev = &records[i-1]
		}
		Chain(prev, r)
	}
	return records
}

func TestChainFirstRecord(t *testing.T) {
	r := Record{Time: time.Date(2025, 1, 2, 3, 4, 5, 6_789_123, time.FixedZone("EST", -5*3600)), Action: Login}
	Chain(nil, &r)
	if r.Seq != 1 {
		t.Errorf("Seq = %d, want 1", r.Seq)
	}
	if !bytes.Equal(r.PrevHash, make([]byte, HashSize)) {
		t.Errorf("PrevHash = %x, want %d zero bytes", r.PrevHash, HashSize)
	}
	wantTime := time.Date(2025, 1, 2, 8, 4, 5, 6_789_000, time.UTC)
	if !r.Time.Equal(wantTime) || r.Time.Location() != time.UTC || r.Time.Nanosecond() != wantTime.Nanosecond() {
		t.Errorf("Time = %v, want %v (UTC, microseconds)", r.Time, wantTime)
	}
	if !bytes.Equal(r.Hash, r.ComputeHash()) || len(r.Hash) != HashSize {
		t.Errorf("Hash = %x, want ComputeHash() = %x", r.Hash, r.ComputeHash())
	}
}

func TestChainLinksToPrevious(t *testing.T) {
	prev := Record{Seq: 41, Hash: bytes.Repeat([]byte{7}, HashSize)}
	r := Record{Action: Logout}
	Chain(&prev, &r)
	if r.Seq != 42 {
		t.Errorf("Seq = %d, want 42", r.Seq)
	}
	if !bytes.Equal(r.PrevHash, prev.Hash) {
		t.Errorf("PrevHash = %x, want previous Hash %x", r.PrevHash, prev.Hash)
	}
	// The record must own its PrevHash: a caller reusing the previous
	// record's buffer must not change an already chained record.
	prev.Hash[0] = 8
	if r.PrevHash[0] != 7 {
		t.Error("PrevHash shares memory with the previous record's Hash")
	}
}

func TestComputeHashIgnoresTimeZoneAndNanoseconds(t *testing.T) {
	a := Record{Seq: 3, Time: time.Date(2025, 1, 2, 3, 4, 5, 6_000, time.UTC)}
	b := a
	b.Time = a.Time.In(time.FixedZone("CET", 3600)).Add(999) // same microsecond
	if !bytes.Equal(a.ComputeHash(), b.ComputeHash()) {
		t.Error("the same microsecond in another zone hashes differently; a SQL round trip would look like an edit")
	}
}

func TestComputeHashSeparatesFields(t *testing.T) {
	// Without length prefixes these pairs would encode to the same bytes.
	tests := []struct {
		name string
		a, b Record
	}{
		{"ObjectIntoConversation", Record{Object: "ab", Conversation: "c"}, Record{Object: "a", Conversation: "bc"}},
		{"ActorIDIntoRole", Record{Actor: Actor{ID: "x", Role: "admin"}}, Record{Actor: Actor{ID: "xadmin"}}},
		{"ReasonIntoRequestID", Record{Reason: "r", RequestID: ""}, Record{Reason: "", RequestID: "r"}},
		{"EmptyVersusMissingPrevHash", Record{PrevHash: []byte{}}, Record{PrevHash: []byte{0}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.a.ComputeHash(), tt.b.ComputeHash()) {
				t.Error("different records share a hash")
			}
		})
	}
}

// fieldEdits changes one field of a record each; every field but Hash must
// be listed (TestFieldEditsCoverRecord checks) and must change the hash.
var fieldEdits = map[string]func(r *Record){
	"Seq":          func(r *Record) { r.Seq = 99 },
	"Time":         func(r *Record) { r.Time = r.Time.Add(time.Microsecond) },
	"Actor.Type":   func(r *Record) { r.Actor.Type = ActorSystem },
	"Actor.ID":     func(r *Record) { r.Actor.ID = "user-9" },
	"Actor.Role":   func(r *Record) { r.Actor.Role = "admin" },
	"Source":       func(r *Record) { r.Source = "198.51.100.7" },
	"Action":       func(r *Record) { r.Action = Reveal },
	"Object":       func(r *Record) { r.Object = "msg-other" },
	"Conversation": func(r *Record) { r.Conversation = "conv-other" },
	"Channel":      func(r *Record) { r.Channel = "messenger" },
	"Outcome":      func(r *Record) { r.Outcome = OutcomeDenied },
	"Reason":       func(r *Record) { r.Reason = "role not allowed" },
	"RequestID":    func(r *Record) { r.RequestID = "req-other" },
	"PrevHash":     func(r *Record) { r.PrevHash = bytes.Repeat([]byte{1}, HashSize) },
}

func TestFieldEditsCoverRecord(t *testing.T) {
	var names []string
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for f := range typ.Fields() {
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(prefix+f.Name+".", f.Type)
				continue
			}
			names = append(names, prefix+f.Name)
		}
	}
	walk("", reflect.TypeFor[Record]())
	for _, name := range names {
		if _, ok := fieldEdits[name]; !ok && name != "Hash" {
			t.Errorf("Record.%s has no entry in fieldEdits: add one, and make sure ComputeHash covers it", name)
		}
	}
}

func TestVerifyEditedField(t *testing.T) {
	for name, edit := range fieldEdits {
		t.Run(name, func(t *testing.T) {
			records := newLog(6)
			edit(&records[3])
			p := Verify(records)
			if p == nil {
				t.Fatalf("Verify found nothing after %s was changed", name)
			}
			want := Problem{Seq: records[3].Seq, Kind: KindEdited, Detail: "its hash does not match its contents", Index: 3}
			if *p != want {
				t.Errorf("Verify = %+v, want %+v", *p, want)
			}
		})
	}
}

// forge builds a record with a valid hash of its own, as someone with write
// access to the table but without the history could.
func forge(seq int64, prevHash []byte, object string) Record {
	r := Record{
		Seq: seq, Time: t0, Actor: Actor{Type: ActorAgent, ID: "user-x", Role: "admin"},
		Action: Export, Object: object, Outcome: OutcomeOK, PrevHash: prevHash,
	}
	r.Hash = r.ComputeHash()
	return r
}

// move returns records with the record at from moved to position to.
func move(records []Record, from, to int) []Record {
	r := records[from]
	records = append(records[:from:from], records[from+1:]...)
	return insertAt(records, to, r)
}

func insertAt(records []Record, at int, r Record) []Record {
	out := append([]Record(nil), records[:at]...)
	out = append(out, r)
	return append(out, records[at:]...)
}

func TestVerify(t *testing.T) {
	other := bytes.Repeat([]byte{0xab}, HashSize)
	tests := []struct {
		name   string
		n      int
		tamper func(rs []Record) []Record
		upTo   int64 // when > 0, VerifyUpTo is used
		want   *Problem
	}{
		{name: "WholeEmpty", n: 0},
		{name: "WholeOneRecord", n: 1},
		{name: "WholeTenRecords", n: 10},
		{name: "WholeUpToLast", n: 10, upTo: 10},
		{name: "WholeWhenLogGrewPastUpTo", n: 10, upTo: 4},

		{
			name: "EditedHashItself", n: 10,
			tamper: func(rs []Record) []Record { rs[4].Hash[0] ^= 1; return rs },
			want:   &Problem{Seq: 5, Kind: KindEdited, Detail: "its hash does not match its contents", Index: 4},
		},
		{
			name: "EditedHashTruncated", n: 10,
			tamper: func(rs []Record) []Record { rs[4].Hash = rs[4].Hash[:16]; return rs },
			want:   &Problem{Seq: 5, Kind: KindEdited, Detail: "its hash does not match its contents", Index: 4},
		},
		{
			name: "EditedFirstOfTwoReportedFirst", n: 10,
			tamper: func(rs []Record) []Record { rs[7].Reason = "x"; rs[2].Reason = "y"; return rs },
			want:   &Problem{Seq: 3, Kind: KindEdited, Detail: "its hash does not match its contents", Index: 2},
		},
		{
			name: "EditedAndHashRecomputed", n: 10,
			tamper: func(rs []Record) []Record {
				rs[4].Outcome = OutcomeDenied
				rs[4].Hash = rs[4].ComputeHash()
				return rs
			},
			want: &Problem{Seq: 5, Kind: KindEdited, Detail: "record 6 does not point to it, so it was changed and its hash computed again", Index: 4},
		},
		{
			name: "EditedLastButOneAndHashRecomputed", n: 3,
			tamper: func(rs []Record) []Record {
				rs[1].Actor.Role = "admin"
				rs[1].Hash = rs[1].ComputeHash()
				return rs
			},
			want: &Problem{Seq: 2, Kind: KindEdited, Detail: "record 3 does not point to it, so it was changed and its hash computed again", Index: 1},
		},

		{
			name: "DeletedFirst", n: 10,
			tamper: func(rs []Record) []Record { return rs[1:] },
			want:   &Problem{Seq: 1, Kind: KindDeleted, Detail: "record 2 points to a record that is missing", Index: 0},
		},
		{
			name: "DeletedMiddle", n: 10,
			tamper: func(rs []Record) []Record { return append(rs[:4:4], rs[5:]...) },
			want:   &Problem{Seq: 5, Kind: KindDeleted, Detail: "record 6 points to a record that is missing", Index: 4},
		},
		{
			name: "DeletedSeveralInMiddle", n: 10,
			tamper: func(rs []Record) []Record { return append(rs[:3:3], rs[6:]...) },
			want:   &Problem{Seq: 4, Kind: KindDeleted, Detail: "records 4 to 6 are missing before record 7", Index: 3},
		},
		{
			name: "DeletedLastGoesUnseenWithoutUpTo", n: 10,
			tamper: func(rs []Record) []Record { return rs[:9] },
		},
		{
			name: "DeletedLast", n: 10, upTo: 10,
			tamper: func(rs []Record) []Record { return rs[:9] },
			want:   &Problem{Seq: 10, Kind: KindDeleted, Detail: "the log should reach record 10 but ends at record 9", Index: 9},
		},
		{
			name: "DeletedEverything", n: 3, upTo: 3,
			tamper: func(rs []Record) []Record { return nil },
			want:   &Problem{Seq: 1, Kind: KindDeleted, Detail: "the log should reach record 3 but is empty", Index: 0},
		},

		{
			name: "InsertedCopy", n: 10,
			tamper: func(rs []Record) []Record { return insertAt(rs, 3, rs[2]) },
			want:   &Problem{Seq: 3, Kind: KindInserted, Detail: "it is a second copy of record 3", Index: 3},
		},
		{
			name: "InsertedSameSeqAfterGenuine", n: 10,
			tamper: func(rs []Record) []Record { return insertAt(rs, 5, forge(5, rs[3].Hash, "forged")) },
			want:   &Problem{Seq: 5, Kind: KindInserted, Detail: "another record 5 holds the same place and the chain goes on from that one", Index: 5},
		},
		{
			name: "InsertedSameSeqBeforeGenuine", n: 10,
			tamper: func(rs []Record) []Record { return insertAt(rs, 4, forge(5, rs[3].Hash, "forged")) },
			want:   &Problem{Seq: 5, Kind: KindInserted, Detail: "another record 5 holds the same place and the chain goes on from that one", Index: 4},
		},
		{
			// Nothing after the two records says which is genuine; the one
			// stored first is taken, as an append-only table stores it first.
			name: "InsertedSameSeqAtEnd", n: 10,
			tamper: func(rs []Record) []Record { return append(rs, forge(10, rs[8].Hash, "forged")) },
			want:   &Problem{Seq: 10, Kind: KindInserted, Detail: "another record 10 holds the same place and the chain goes on from that one", Index: 10},
		},
		{
			name: "InsertedSameSeqWithWrongPrevious", n: 10,
			tamper: func(rs []Record) []Record { return insertAt(rs, 4, forge(5, other, "forged")) },
			want:   &Problem{Seq: 5, Kind: KindInserted, Detail: "another record 5 is in the chain and this one does not point to the record before it", Index: 4},
		},
		{
			name: "InsertedWithNewSeqInMiddle", n: 10,
			tamper: func(rs []Record) []Record { return insertAt(rs, 4, forge(1000, rs[3].Hash, "forged")) },
			want:   &Problem{Seq: 1000, Kind: KindInserted, Detail: "it is not part of the chain, which goes on past it to record 10", Index: 4},
		},
		{
			name: "InsertedBeforeFirst", n: 10,
			tamper: func(rs []Record) []Record { return insertAt(rs, 0, forge(1, other, "forged")) },
			want:   &Problem{Seq: 1, Kind: KindInserted, Detail: "another record 1 is in the chain and this one does not point to the record before it", Index: 0},
		},
		{
			name: "InsertedAsOnlyRecord", n: 0,
			tamper: func(rs []Record) []Record { return []Record{forge(1, other, "forged")} },
			want:   &Problem{Seq: 1, Kind: KindInserted, Detail: "it claims to be the first record but points to an earlier one", Index: 0},
		},
		{
			name: "InsertedWithSeqZero", n: 10,
			tamper: func(rs []Record) []Record { return insertAt(rs, 6, forge(0, rs[5].Hash, "forged")) },
			want:   &Problem{Seq: 0, Kind: KindInserted, Detail: "sequence numbers start at 1", Index: 6},
		},
		{
			// A record appended with a correct link is indistinguishable from
			// a genuine one; only an anchor kept outside the log catches it.
			name: "AppendedWithValidLinkGoesUnseen", n: 10,
			tamper: func(rs []Record) []Record {
				r := Record{Action: Export}
				Chain(&rs[9], &r)
				return append(rs, r)
			},
		},

		{
			name: "ReorderedAdjacentSwap", n: 10,
			tamper: func(rs []Record) []Record { rs[2], rs[3] = rs[3], rs[2]; return rs },
			want:   &Problem{Seq: 4, Kind: KindReordered, Detail: "it is stored before record 3", Index: 2},
		},
		{
			name: "ReorderedMovedForward", n: 10,
			tamper: func(rs []Record) []Record { return move(rs, 8, 2) },
			want:   &Problem{Seq: 9, Kind: KindReordered, Detail: "it is stored before record 8", Index: 2},
		},
		{
			name: "ReorderedFirstAndLastSwapped", n: 10,
			tamper: func(rs []Record) []Record { rs[0], rs[9] = rs[9], rs[0]; return rs },
			want:   &Problem{Seq: 10, Kind: KindReordered, Detail: "it is stored before record 9", Index: 0},
		},
		{
			name: "ReorderedBeforeLaterDeletion", n: 10,
			tamper: func(rs []Record) []Record {
				rs[1], rs[2] = rs[2], rs[1]
				return append(rs[:6:6], rs[7:]...)
			},
			want: &Problem{Seq: 3, Kind: KindReordered, Detail: "it is stored before record 2", Index: 1},
		},
		{
			name: "DeletionBeforeLaterReordering", n: 10,
			tamper: func(rs []Record) []Record {
				rs[7], rs[8] = rs[8], rs[7]
				return append(rs[:1:1], rs[2:]...)
			},
			want: &Problem{Seq: 2, Kind: KindDeleted, Detail: "record 3 points to a record that is missing", Index: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			records := newLog(tt.n)
			if tt.tamper != nil {
				records = tt.tamper(records)
			}
			var got *Problem
			if tt.upTo > 0 {
				got = VerifyUpTo(records, tt.upTo)
			} else {
				got = Verify(records)
			}
			switch {
			case got == nil && tt.want == nil:
			case got == nil:
				t.Errorf("Verify = nil, want %+v", *tt.want)
			case tt.want == nil:
				t.Errorf("Verify = %+v (%v), want nil", *got, got)
			case *got != *tt.want:
				t.Errorf("Verify = %+v\n                want %+v", *got, *tt.want)
			}
		})
	}
}

func TestProblemError(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{Seq: 17, Kind: KindEdited, Detail: "its hash does not match its contents"}, "audit record 17 was edited: its hash does not match its contents"},
		{Problem{Seq: 5, Kind: KindDeleted, Detail: "record 6 points to a record that is missing"}, "audit record 5 was deleted: record 6 points to a record that is missing"},
		{Problem{Seq: 3, Kind: KindInserted, Detail: "it is a second copy of record 3"}, "audit record 3 was inserted: it is a second copy of record 3"},
		{Problem{Seq: 4, Kind: KindReordered, Detail: "it is stored before record 3"}, "audit record 4 is out of order: it is stored before record 3"},
	}
	for _, tt := range tests {
		t.Run(tt.p.Kind, func(t *testing.T) {
			var err error = &tt.p
			if got := err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
		})
	}
}

func BenchmarkChain(b *testing.B) {
	prev := newLog(1)[0]
	r := Record{
		Time: t0, Actor: Actor{Type: ActorAgent, ID: "user-1", Role: "agent"}, Source: "192.0.2.1",
		Action: TranscriptView, Object: "conv-1", Conversation: "conv-1", Channel: "dashboard",
		Outcome: OutcomeOK, RequestID: "req-1",
	}
	b.ReportAllocs()
	for b.Loop() {
		Chain(&prev, &r)
	}
}

// FuzzVerify tampers with a log in ways a chain must reveal (deleting,
// swapping, copying, editing without recomputing hashes, forging records that
// point nowhere) and checks that Verify never panics and only passes a log
// that is still a prefix of the original: cutting the tail is the one change
// a chain cannot show on its own.
func FuzzVerify(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 3})
	f.Add([]byte{1, 2, 3})
	f.Add([]byte{2, 4, 4, 3, 1, 5, 4, 0, 9})
	f.Add([]byte{0, 11, 0, 10, 0, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const n = 12
		original := newLog(n)
		records := newLog(n)
		next := func() int {
			if len(ops) == 0 {
				return 0
			}
			b := int(ops[0])
			ops = ops[1:]
			return b
		}
		for len(ops) > 0 {
			op, a, b := next()%5, next(), next()
			if len(records) == 0 {
				break
			}
			i, j := a%len(records), b%len(records)
			switch op {
			case 0: // delete
				records = append(records[:i:i], records[i+1:]...)
			case 1: // swap
				records[i], records[j] = records[j], records[i]
			case 2: // copy record i to position j
				records = insertAt(records, j, records[i])
			case 3: // edit without recomputing the hash
				r := records[i]
				r.Reason += "x"
				records[i] = r
			case 4: // forge a record that points to nothing in the log
				records = insertAt(records, j, forge(int64(a%(n+2)), bytes.Repeat([]byte{byte(b) | 1}, HashSize), "forged"))
			}
		}
		p := Verify(records)
		for _, lastSeq := range []int64{0, n} {
			want := VerifyUpTo(records, lastSeq)
			if got := scanUpTo(records, lastSeq); !reflect.DeepEqual(got, want) {
				t.Fatalf("a Scan up to %d found %+v; VerifyUpTo found %+v", lastSeq, got, want)
			}
		}
		if p != nil {
			if p.Error() == "" || p.Index < 0 || p.Index > len(records) {
				t.Errorf("malformed problem %+v", *p)
			}
			return
		}
		for i := range records {
			if i >= n || !bytes.Equal(records[i].Hash, original[i].Hash) {
				t.Fatalf("Verify passed a log that is not a prefix of the original: record at %d has seq %d", i, records[i].Seq)
			}
		}
	})
}

// scanUpTo checks records as a reader of a long log does: a Scan, and the
// links followed when the log is not whole.
func scanUpTo(records []Record, lastSeq int64) *Problem {
	var s Scan
	for i := range records {
		if p := s.Add(&records[i]); p != nil {
			return p
		}
	}
	if s.Len() != len(records) {
		panic("Scan lost count")
	}
	if s.Whole() {
		return s.UpTo(lastSeq)
	}
	links := make([]Link, len(records))
	for i := range records {
		links[i] = records[i].Link()
	}
	return FollowUpTo(links, lastSeq)
}

// TestScanAgreesWithVerify runs the cases of TestVerify's kind through a
// Scan: whole logs finish in the Scan, damaged ones are followed, and every
// answer is Verify's.
func TestScanAgreesWithVerify(t *testing.T) {
	whole := newLog(6)
	edited := newLog(6)
	edited[3].Reason = "changed"
	cut := newLog(6)[:4]
	gap := append(newLog(6)[:2:2], newLog(6)[3:]...)
	swapped := newLog(6)
	swapped[1], swapped[2] = swapped[2], swapped[1]
	cases := []struct {
		name      string
		records   []Record
		lastSeq   int64
		wantWhole bool
		wantNil   bool
	}{
		{"Empty", nil, 0, true, true},
		{"Whole", whole, 6, true, true},
		{"WholeWithMoreThanKnown", whole, 4, true, true},
		{"EditedStopsTheScan", edited, 6, true, false},
		{"CutShort", cut, 6, true, false},
		{"Gap", gap, 6, false, false},
		{"Swapped", swapped, 6, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s Scan
			var stopped *Problem
			for i := range c.records {
				if stopped = s.Add(&c.records[i]); stopped != nil {
					break
				}
			}
			if stopped == nil && s.Whole() != c.wantWhole {
				t.Errorf("Whole = %v, want %v", s.Whole(), c.wantWhole)
			}
			got, want := scanUpTo(c.records, c.lastSeq), VerifyUpTo(c.records, c.lastSeq)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("scan found %+v, VerifyUpTo %+v", got, want)
			}
			if (got == nil) != c.wantNil {
				t.Errorf("problem %v, want one: %v", got, !c.wantNil)
			}
		})
	}
}

func TestScanUpToPanicsWhenNotWhole(t *testing.T) {
	records := newLog(3)
	records[1], records[2] = records[2], records[1]
	var s Scan
	for i := range records {
		s.Add(&records[i])
	}
	defer func() {
		if recover() == nil {
			t.Error("UpTo on a broken log did not panic")
		}
	}()
	s.UpTo(3)
}
