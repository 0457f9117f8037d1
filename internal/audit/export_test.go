package audit

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestJSONLRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		records []Record
	}{
		{"Empty", nil},
		{"OneRecord", newLog(1)},
		{"ManyRecords", newLog(25)},
		{"ReasonWithQuotesAndMarkup", func() []Record {
			r := Record{Action: LoginFailed, Outcome: OutcomeDenied, Reason: `bad "password" <3 & more`, Actor: Actor{Type: ActorAgent, ID: "user-1"}}
			Chain(nil, &r)
			return []Record{r}
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteJSONL(&buf, tt.records); err != nil {
				t.Fatalf("WriteJSONL: %v", err)
			}
			if got := strings.Count(buf.String(), "\n"); got != len(tt.records) {
				t.Errorf("export has %d lines, want one per record (%d)", got, len(tt.records))
			}
			got, err := ReadJSONL(&buf)
			if err != nil {
				t.Fatalf("ReadJSONL: %v", err)
			}
			if diff := cmp.Diff(tt.records, got); diff != "" {
				t.Errorf("records changed in the round trip (-wrote +read):\n%s", diff)
			}
			if p := Verify(got); p != nil {
				t.Errorf("Verify of the exported log: %v", p)
			}
		})
	}
}

// TestWriteJSONLFormat pins the export format, which auditors' tools read.
func TestWriteJSONLFormat(t *testing.T) {
	r := Record{
		Time:   t0,
		Actor:  Actor{Type: ActorAgent, ID: "user-1", Role: "auditor"},
		Source: "192.0.2.1", Action: Export, Object: "audit", Conversation: "", Channel: "dashboard",
		Outcome: OutcomeOK, Reason: "", RequestID: "req-9",
	}
	Chain(nil, &r)
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, []Record{r}); err != nil {
		t.Fatal(err)
	}
	want := `{"seq":1,"time":"2025-03-14T09:26:53.589793Z","actor":{"type":"agent","id":"user-1","role":"auditor"},` +
		`"source":"192.0.2.1","action":"export","object":"audit","conversation":"","channel":"dashboard",` +
		`"outcome":"ok","reason":"","request_id":"req-9",` +
		`"prev_hash":"0000000000000000000000000000000000000000000000000000000000000000",` +
		`"hash":"` + hex.EncodeToString(r.Hash) + `"}` + "\n"
	if got := buf.String(); got != want {
		t.Errorf("export line:\n got %s\nwant %s", got, want)
	}
}

func TestReadJSONLSkipsBlankLinesAndNeedsNoFinalNewline(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, newLog(2)); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	input := "\n" + lines[0] + "\n   \n" + lines[1] // no newline at the end
	got, err := ReadJSONL(strings.NewReader(input))
	if err != nil {
		t.Fatalf("ReadJSONL: %v", err)
	}
	if diff := cmp.Diff(newLog(2), got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

func TestReadJSONLErrors(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, newLog(1)); err != nil {
		t.Fatal(err)
	}
	good := strings.TrimSuffix(buf.String(), "\n")
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"NotJSON", good + "\nnot json\n", "read audit export: line 2: invalid character"},
		{"UnknownField", strings.Replace(good, `"seq":1`, `"seq":1,"note":"x"`, 1), `line 1: json: unknown field "note"`},
		{"WrongType", strings.Replace(good, `"seq":1`, `"seq":"1"`, 1), "line 1: json: cannot unmarshal"},
		{"TwoValuesOnALine", good + " {}", "line 1: more than one JSON value on the line"},
		{"BadTime", strings.Replace(good, `"time":"2025-03-14T09:26:53.589793Z"`, `"time":"yesterday"`, 1), "line 1: time: parsing time"},
		{"BadPrevHash", strings.Replace(good, `"prev_hash":"00`, `"prev_hash":"zz`, 1), "line 1: prev_hash: encoding/hex: invalid byte"},
		{"BadHash", strings.Replace(good, `"hash":"`, `"hash":"0`, 1), "line 1: hash: encoding/hex: odd length hex string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadJSONL(strings.NewReader(tt.in))
			if err == nil {
				t.Fatalf("ReadJSONL accepted %q", tt.in)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("disk gone") }

func TestReadJSONLReadError(t *testing.T) {
	_, err := ReadJSONL(failingReader{})
	if err == nil || !strings.Contains(err.Error(), "read audit export: line 1: disk gone") {
		t.Errorf("error = %v, want the read error with its line", err)
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteJSONLWriteError(t *testing.T) {
	err := WriteJSONL(failingWriter{}, newLog(3))
	if err == nil || !strings.Contains(err.Error(), "write audit export: disk full") {
		t.Errorf("error = %v, want the write error", err)
	}
}
