package diag

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
)

func sources(files map[string]string) Sources {
	return func(name string) []byte {
		if s, ok := files[name]; ok {
			return []byte(s)
		}
		return nil
	}
}

func TestWriteTextCaret(t *testing.T) {
	src := sources(map[string]string{
		"tabs.yaml":  "steps:\n\tsay:\t\"hi {{ x }}\"\n",
		"utf8.yaml":  "say: \"Café «déjà» {{ naïve }}\"\n",
		"crlf.yaml":  "flow: a\r\nsteps: b\r\n",
		"last.yaml":  "flow: a\nsteps: b",
		"short.yaml": "ab\n",
	})
	tests := []struct {
		name string
		pos  Pos
		want string
	}{
		{"tabs are copied so the caret lines up", Pos{"tabs.yaml", 2, 7}, "    \tsay:\t\"hi {{ x }}\"\n    \t    \t^\n"},
		{"multi-byte characters count as one column", Pos{"utf8.yaml", 1, 22}, "    say: \"Café «déjà» {{ naïve }}\"\n" + "    " + strings.Repeat(" ", 21) + "^\n"},
		{"carriage returns are dropped", Pos{"crlf.yaml", 2, 8}, "    steps: b\n           ^\n"},
		{"last line without a newline", Pos{"last.yaml", 2, 1}, "    steps: b\n    ^\n"},
		{"column past the end of the line", Pos{"short.yaml", 1, 5}, "    ab\n        ^\n"},
		{"line past the end of the file", Pos{"short.yaml", 9, 1}, ""},
		{"whole file", Pos{"short.yaml", 0, 0}, ""},
		{"unknown file", Pos{"other.yaml", 1, 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			WriteText(&b, List{{Pos: tt.pos, Code: DeadEnd, Message: "m"}}, src, 0)
			got := b.String()
			head, rest, _ := strings.Cut(got, "\n")
			if want := tt.pos.String() + ": error SF008: m"; head != want {
				t.Errorf("first line = %q, want %q", head, want)
			}
			if rest != tt.want {
				t.Errorf("source and caret:\n%q\nwant\n%q", rest, tt.want)
			}
		})
	}
}

func TestWriteTextHintAndNilSources(t *testing.T) {
	var b strings.Builder
	l := List{{Pos: Pos{"a.yaml", 3, 4}, Severity: Warning, Code: Unreachable, Message: "never reached", Hint: "Remove it."}}
	WriteText(&b, l, nil, 0)
	want := "a.yaml:3:4: warning SF007: never reached\n  hint: Remove it.\n"
	if b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
}

func TestWriteTextAndNMore(t *testing.T) {
	var l List
	for i := 1; i <= 5; i++ {
		l.Add(Pos{"a.yaml", i, 1}, DeadEnd, "", "problem %d", i)
	}
	tests := []struct {
		max   int
		lines int
		tail  string
	}{
		{0, 5, "problem 5"},
		{2, 3, "(and 3 more)"},
		{4, 5, "(and 1 more)"},
		{5, 5, "problem 5"},
		{9, 5, "problem 5"},
	}
	for _, tt := range tests {
		var b strings.Builder
		WriteText(&b, l, nil, tt.max)
		lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
		if len(lines) != tt.lines || !strings.HasSuffix(lines[len(lines)-1], tt.tail) {
			t.Errorf("max %d: got %q, want %d lines ending in %q", tt.max, lines, tt.lines, tt.tail)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	l := List{
		{Pos: Pos{"a.yaml", 2, 5}, Severity: Error, Code: UnknownKey, Message: "`sensitve` is not a key", Hint: "Write `sensitive:` instead."},
		{Pos: Pos{File: "b.yaml"}, Severity: Warning, Code: MissingLanguage, Message: "no es text"},
	}
	var b strings.Builder
	if err := WriteJSON(&b, l); err != nil {
		t.Fatal(err)
	}
	var raw []map[string]any
	if err := json.Unmarshal([]byte(b.String()), &raw); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, b.String())
	}
	want := []map[string]any{
		{"file": "a.yaml", "line": 2.0, "col": 5.0, "severity": "error", "code": "SF002", "message": "`sensitve` is not a key", "hint": "Write `sensitive:` instead."},
		{"file": "b.yaml", "line": 0.0, "col": 0.0, "severity": "warning", "code": "SF023", "message": "no es text", "hint": ""},
	}
	if len(raw) != len(want) {
		t.Fatalf("got %d objects, want %d", len(raw), len(want))
	}
	for i := range want {
		if len(raw[i]) != 7 {
			t.Errorf("object %d has %d fields, want 7: %v", i, len(raw[i]), raw[i])
		}
		for k, v := range want[i] {
			if raw[i][k] != v {
				t.Errorf("object %d: %s = %v, want %v", i, k, raw[i][k], v)
			}
		}
	}
	b.Reset()
	if err := WriteJSON(&b, nil); err != nil || strings.TrimSpace(b.String()) != "[]" {
		t.Errorf("an empty list must print [], got %q (%v)", b.String(), err)
	}
}

func TestWriteGitHub(t *testing.T) {
	l := List{
		{Pos: Pos{"flows/a,b:c.yaml", 3, 7}, Severity: Error, Code: SensitiveLeak, Message: "100% sure\r\nline two", Hint: "Fix it: now, please."},
		{Pos: Pos{"a.yaml", 1, 1}, Severity: Warning, Code: Unreachable, Message: "plain"},
	}
	var b strings.Builder
	WriteGitHub(&b, l)
	want := "::error file=flows/a%2Cb%3Ac.yaml,line=3,col=7,title=SF014::100%25 sure%0D%0Aline two Hint: Fix it: now, please.\n" +
		"::warning file=a.yaml,line=1,col=1,title=SF007::plain\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestListSortAndCounts(t *testing.T) {
	l := List{
		{Pos: Pos{"b.yaml", 1, 1}, Severity: Error, Code: DeadEnd, Message: "x"},
		{Pos: Pos{"a.yaml", 2, 1}, Severity: Warning, Code: Unreachable, Message: "y"},
		{Pos: Pos{"a.yaml", 1, 9}, Severity: Error, Code: MaybeUnset, Message: "z"},
		{Pos: Pos{"a.yaml", 1, 9}, Severity: Error, Code: ExprType, Message: "z"},
		{Pos: Pos{"a.yaml", 2, 1}, Severity: Warning, Code: Unreachable, Message: "y"},
	}
	got := l.Sort()
	var order []string
	for _, d := range got {
		order = append(order, d.Pos.String()+" "+string(d.Code))
	}
	want := []string{"a.yaml:1:9 SF011", "a.yaml:1:9 SF013", "a.yaml:2:1 SF007", "b.yaml:1:1 SF008"}
	if !slices.Equal(order, want) {
		t.Errorf("sorted = %v, want %v (duplicates dropped)", order, want)
	}
	if got.Errors() != 3 || got.Warnings() != 1 {
		t.Errorf("Errors() = %d, Warnings() = %d", got.Errors(), got.Warnings())
	}
}

func TestListErr(t *testing.T) {
	var l List
	if l.Err() != nil {
		t.Errorf("an empty list is not an error")
	}
	l.Add(Pos{"a.yaml", 1, 1}, Unreachable, "", "warning only")
	if l.Err() != nil {
		t.Errorf("warnings alone are not an error")
	}
	l.Add(Pos{"a.yaml", 4, 2}, DeadEnd, "", "step `%s` is stuck", "x")
	l.Add(Pos{"a.yaml", 5, 2}, ExprType, "", "bad")
	err := l.Err()
	var le *ListError
	if !errors.As(err, &le) || len(le.List) != 3 {
		t.Fatalf("Err() = %v", err)
	}
	if want := "a.yaml:4:2: error SF008: step `x` is stuck (and 1 more)"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	one := List{{Pos: Pos{"a.yaml", 1, 2}, Code: DeadEnd, Message: "m"}}
	if got := one.Err().Error(); got != "a.yaml:1:2: error SF008: m" {
		t.Errorf("single error: %q", got)
	}
}

func TestPos(t *testing.T) {
	p := Pos{"a.yaml", 3, 5}
	tests := []struct {
		got, want string
	}{
		{p.String(), "a.yaml:3:5"},
		{Pos{File: "a.yaml"}.String(), "a.yaml"},
		{p.Shift(0, 4).String(), "a.yaml:3:9"},
		{p.Shift(2, 7).String(), "a.yaml:5:7"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

func TestSeverity(t *testing.T) {
	b, err := json.Marshal([]Severity{Error, Warning})
	if err != nil || string(b) != `["error","warning"]` {
		t.Errorf("MarshalJSON = %s, %v", b, err)
	}
	if DeadEnd.Severity() != Error || Unreachable.Severity() != Warning || Code("SF999").Severity() != Error {
		t.Errorf("code severities are wrong")
	}
}

// TestCodesAreStable pins every code to its meaning: clinic runbooks and CI
// filters refer to them, so a renumbered code must fail here.
func TestCodesAreStable(t *testing.T) {
	want := []Code{YAMLSyntax, UnknownKey, WrongType, MissingField, BadValue, MissingStep, Unreachable, DeadEnd,
		NoDefaultRoute, EndlessLoop, MaybeUnset, ExprSyntax, ExprType, SensitiveLeak, ChoiceCollision, TooLongSMS,
		TooLongMessenger, QuickReplyTooLong, KeywordCollision, DuplicateKey, FileTooLarge, LinkMessage,
		MissingLanguage, ReservedName, DuplicateFlow, ConflictingFields, TooManyChoices}
	codes := Codes()
	if len(codes) < len(want) {
		t.Fatalf("Codes() has %d codes, want at least %d", len(codes), len(want))
	}
	for i, c := range want {
		if codes[i].Code != c {
			t.Errorf("code %d is %s, want %s", i+1, codes[i].Code, c)
		}
		if wantName := Code("SF0" + string(rune('0'+(i+1)/10)) + string(rune('0'+(i+1)%10))); c != wantName {
			t.Errorf("code %d is %s, want %s", i+1, c, wantName)
		}
	}
	for i, c := range codes {
		if c.Title == "" || strings.HasSuffix(c.Title, ".") {
			t.Errorf("%s: title %q should be a short phrase", c.Code, c.Title)
		}
		if i > 0 && codes[i-1].Code >= c.Code {
			t.Errorf("Codes() is not sorted at %s", c.Code)
		}
	}
}

func TestRegisterDuplicatePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Errorf("registering SF001 twice did not panic")
		}
	}()
	register("SF001", Error, "again")
}
