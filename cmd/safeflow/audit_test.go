package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/safeflow/safeflow/internal/audit"
)

// chain returns n chained records, numbered from 1.
func chain(n int) []audit.Record {
	out := make([]audit.Record, n)
	var prev *audit.Record
	for i := range out {
		out[i] = audit.Record{Time: time.Date(2026, 11, 1, 8, 0, i, 0, time.UTC), Actor: audit.Actor{Type: audit.ActorSystem},
			Action: audit.FlowReload, Outcome: audit.OutcomeOK}
		audit.Chain(prev, &out[i])
		prev = &out[i]
	}
	return out
}

// TestCheckExport checks exports, including those made with --since that
// start after record 1.
func TestCheckExport(t *testing.T) {
	tests := []struct {
		name     string
		records  func() []audit.Record
		wantSeq  int64
		wantKind string // "" for intact
	}{
		{"WholeLogIntact", func() []audit.Record { return chain(5) }, 0, ""},
		{"EmptyIntact", func() []audit.Record { return nil }, 0, ""},
		{"PartialIntact", func() []audit.Record { return chain(6)[2:] }, 0, ""},
		{"PartialEdited", func() []audit.Record {
			r := chain(6)[2:]
			r[1].Reason = "changed"
			return r
		}, 4, audit.KindEdited},
		{"PartialEditedAndRehashed", func() []audit.Record {
			r := chain(6)[2:]
			r[1].Reason = "changed"
			r[1].Hash = r[1].ComputeHash()
			return r
		}, 4, audit.KindEdited},
		{"PartialOneDeleted", func() []audit.Record {
			r := chain(6)[2:]
			return append(r[:1:1], r[2:]...)
		}, 4, audit.KindDeleted},
		{"PartialSeveralDeleted", func() []audit.Record {
			r := chain(8)[2:]
			return append(r[:1:1], r[4:]...)
		}, 4, audit.KindDeleted},
		{"PartialDuplicated", func() []audit.Record {
			r := chain(6)[2:]
			return append(r[:2:2], r[1:]...)
		}, 4, audit.KindInserted},
		{"PartialGapBeforeAnEditedRecord", func() []audit.Record {
			// An edited record is named first, as audit.Verify does, even
			// after a gap.
			r := chain(8)[2:]
			r = append(r[:1:1], r[2:]...)
			r[3].Reason = "changed"
			return r
		}, 7, audit.KindEdited},
		{"WholeLogEditedAfterAGap", func() []audit.Record {
			r := chain(8)
			r = append(r[:2:2], r[3:]...)
			r[5].Reason = "changed"
			return r
		}, 7, audit.KindEdited},
		{"WholeLogUsesAuditVerify", func() []audit.Record {
			r := chain(5)
			return append(r[:2:2], r[3:]...)
		}, 3, audit.KindDeleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var export bytes.Buffer
			if err := audit.WriteJSONL(&export, tt.records()); err != nil {
				t.Fatal(err)
			}
			p, sum, err := checkExport(bytes.NewReader(export.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if records := tt.records(); p == nil && (sum.n != len(records) || len(records) > 0 &&
				(sum.first != records[0].Seq || sum.last != records[len(records)-1].Seq)) {
				t.Errorf("summary %+v for %d records", sum, len(records))
			}
			switch {
			case tt.wantKind == "" && p != nil:
				t.Fatalf("checkExport = %v, want intact", p)
			case tt.wantKind == "":
			case p == nil:
				t.Fatalf("checkExport found nothing, want record %d %s", tt.wantSeq, tt.wantKind)
			case p.Seq != tt.wantSeq || p.Kind != tt.wantKind:
				t.Fatalf("checkExport = record %d %s (%v), want record %d %s", p.Seq, p.Kind, p, tt.wantSeq, tt.wantKind)
			}
		})
	}
}

func TestParseSince(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Time
		wantErr bool
	}{
		{"", time.Time{}, false},
		{"2026-11-01", time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), false},
		{"2026-11-01T08:30:00Z", time.Date(2026, 11, 1, 8, 30, 0, 0, time.UTC), false},
		{"2026-11-01T08:30:00+02:00", time.Date(2026, 11, 1, 6, 30, 0, 0, time.UTC), false},
		{"2026-11-01 08:30", time.Time{}, true},
		{"yesterday", time.Time{}, true},
		{"2026-02-30", time.Time{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseSince(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseSince(%q) error = %v, want error: %v", tt.in, err, tt.wantErr)
			}
			if !got.Equal(tt.want) {
				t.Errorf("parseSince(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
