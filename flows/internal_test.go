package flows

import (
	"regexp"
	"strings"
	"testing"
	"unicode"
)

// TestIsNameAndIsLang checks the hand-written matchers against the
// regexps they replace in hot paths.
func TestIsNameAndIsLang(t *testing.T) {
	nameRe := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	langRe := regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z]{2,4})?$`)
	inputs := []string{"", "a", "_", "9", "a9", "_9", "first_name", "first-name", "naïve", "a b", "A_B_c",
		"en", "es", "haw", "pt-BR", "zh-Hant", "e", "engl", "EN", "en-", "en-B", "en-Latin", "en_US", "en-1A", "en-ÉS", "x-yz", "-lead", "ask-name", "9-a", "a--b"}
	for _, s := range inputs {
		if got, want := isName(s), nameRe.MatchString(s); got != want {
			t.Errorf("isName(%q) = %v, want %v", s, got, want)
		}
		if got, want := isLang(s), langRe.MatchString(s); got != want {
			t.Errorf("isLang(%q) = %v, want %v", s, got, want)
		}
		if got, want := isStepName(s), nameRe.MatchString(strings.ReplaceAll(s, "-", "_")); got != want {
			t.Errorf("isStepName(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzIsName holds the matchers to the regexps on any input.
func FuzzIsName(f *testing.F) {
	nameRe := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	langRe := regexp.MustCompile(`^[a-z]{2,3}(-[A-Za-z]{2,4})?$`)
	for _, s := range []string{"first_name", "pt-BR", "en", "a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if isName(s) != nameRe.MatchString(s) || isLang(s) != langRe.MatchString(s) ||
			isStepName(s) != nameRe.MatchString(strings.ReplaceAll(s, "-", "_")) {
			t.Errorf("matchers disagree with the regexps on %q", s)
		}
	})
}

// TestScalarPos checks that positions inside scalars of every YAML style
// land on the character itself.
func TestScalarPos(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the text that must start at the position of `x`
	}{
		{"plain", "en: a b {{ x }}\n", "x }}"},
		{"double quoted with escapes", `en: "\"q\" \t \u00e9 \x41 {{ x }}"` + "\n", "x }}"},
		{"single quoted with doubled quotes", "en: 'it''s {{ x }}'\n", "x }}"},
		{"double quoted over two lines", "en: \"first line\n  second {{ x }}\"\n", "x }}"},
		{"escaped line break", "en: \"first \\\n  second {{ x }}\"\n", "x }}"},
		{"plain over lines with a blank line", "en: first\n\n  second {{ x }}\n", "x }}"},
		{"literal", "en: |\n  one\n  two {{ x }}\n", "x }}"},
		{"literal after blank lines", "en: |\n\n\n  one {{ x }}\n", "x }}"},
		{"literal with deeper lines", "en: |\n  one\n    two {{ x }}\n", "x }}"},
		{"folded", "en: >\n  one\n  two\n  three {{ x }}\n", "x }}"},
		{"folded with a blank line", "en: >\n  one\n\n  three {{ x }}\n", "x }}"},
		{"folded with a deeper line", "en: >\n  one\n    deeper\n  back {{ x }}\n", "x }}"},
		{"tagged", "en: !!str \"a {{ x }}\"\n", "x }}"},
		{"multi-byte before", "en: \"é😀 {{ x }}\"\n", "x }}"},
		{"crlf", "en: |\r\n  one\r\n  two {{ x }}\r\n", "x }}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, _ := Parse("t.yaml", []byte("flow: t\nsteps:\n  s:\n    say:\n      "+indentAll(tt.src)+"    end: true\n"))
			if f == nil || len(f.Steps) == 0 || len(f.Steps[0].Say) == 0 {
				t.Fatal("flow did not load")
			}
			var e *Expr
			for _, p := range f.Steps[0].Say[0].Text["en"].Parts {
				if p.Expr != nil {
					e = p.Expr
				}
			}
			if e == nil {
				t.Fatal("no expression")
			}
			r := &reader{src: f.Source}
			line, _ := r.line(e.Pos.Line)
			i := byteIndex(line, e.Pos.Col-1)
			if i < 0 || len(line[i:]) < len(tt.want) || line[i:i+len(tt.want)] != tt.want {
				t.Errorf("position %d:%d points at %q in %q", e.Pos.Line, e.Pos.Col, safeSlice(line, i), line)
			}
		})
	}
}

// indentAll indents every line but the first by six spaces, to sit under
// `say:` as a language map with the key en.
func indentAll(s string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '\n' && i+1 < len(s) {
			out = append(out, "      "...)
		}
	}
	return string(out)
}

func safeSlice(s string, i int) string {
	if i < 0 || i > len(s) {
		return "<out of line>"
	}
	return s[i:]
}

// TestNormChoice holds normChoice to the simple definition it replaced:
// lower-case, then words of letters and digits joined by one space.
func TestNormChoice(t *testing.T) {
	old := func(s string) string {
		return strings.Join(strings.FieldsFunc(strings.ToLower(s), func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r)
		}), " ")
	}
	for _, s := range []string{"", "Monday", "monday", "  Mon.  ", "a.m.", "Early!", "İstanbul", "Ça va?", "1", "x-ray 2",
		"--", "ÉTÉ", "sí", "3pm–5pm", "ǅ", "K"} {
		if got, want := normChoice(s), old(s); got != want {
			t.Errorf("normChoice(%q) = %q, want %q", s, got, want)
		}
	}
}
