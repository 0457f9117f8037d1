package answer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Folding makes answers comparable the way a person reads them: "Sí!",
// "si" and "SI." are the same answer. A folded string is lower case, without
// accents, with every run of spaces, punctuation and symbols turned into one
// space and no space at either end. ASCII bytes listed in keep survive as
// they are, so the date parser can keep "3/14" together.

// folder walks a string and yields its folded runes without allocating.
type folder struct {
	s       string
	keep    string
	i       int
	sep     bool // a separator is pending
	started bool // a rune has been yielded
}

// next returns the next folded rune, or false at the end. A pending
// separator is only yielded when a rune follows it, which trims the end.
func (f *folder) next() (rune, bool) {
	for f.i < len(f.s) {
		r, size := foldRune(f.s, f.i, f.keep)
		f.i += size
		switch {
		case r == ' ':
			f.sep = true
		case r >= 0:
			if f.sep && f.started {
				f.sep = false
				f.i -= size // yield the space now and this rune next time
				return ' ', true
			}
			f.sep = false
			f.started = true
			return r, true
		}
	}
	return 0, false
}

// foldRune folds the rune at s[i:]. It returns ' ' for a separator and -1
// for a rune that disappears (a combining accent).
func foldRune(s string, i int, keep string) (rune, int) {
	c := s[i]
	if c < utf8.RuneSelf {
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			return rune(c), 1
		case 'A' <= c && c <= 'Z':
			return rune(c + 'a' - 'A'), 1
		case strings.IndexByte(keep, c) >= 0:
			return rune(c), 1
		}
		return ' ', 1
	}
	r, size := utf8.DecodeRuneInString(s[i:])
	switch {
	case unicode.IsMark(r):
		return -1, size
	case unicode.IsLetter(r):
		// The first rune of the canonical decomposition is the base letter:
		// "ñ" is "n" followed by a combining tilde.
		if d := norm.NFD.PropertiesString(s[i : i+size]).Decomposition(); len(d) > 0 {
			r, _ = utf8.DecodeRune(d)
		}
		return unicode.ToLower(r), size
	case unicode.IsDigit(r):
		return r, size
	}
	return ' ', size
}

// fold returns the folded form of s, keeping the ASCII bytes in keep. It
// returns s itself, without allocating, when s is already folded.
func fold(s, keep string) string {
	if isFolded(s, keep) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	f := folder{s: s, keep: keep}
	for r, ok := f.next(); ok; r, ok = f.next() {
		b.WriteRune(r)
	}
	return b.String()
}

func isFolded(s, keep string) bool {
	if s == "" {
		return true
	}
	if s[0] == ' ' || s[len(s)-1] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == ' ':
			if s[i-1] == ' ' {
				return false
			}
		case c < utf8.RuneSelf && strings.IndexByte(keep, c) >= 0:
		default:
			return false
		}
	}
	return true
}

// foldEqual reports whether a and b fold to the same non-empty string.
func foldEqual(a, b string) bool {
	fa, fb := folder{s: a}, folder{s: b}
	n := 0
	for {
		ra, oka := fa.next()
		rb, okb := fb.next()
		if oka != okb || ra != rb {
			return false
		}
		if !oka {
			return n > 0
		}
		n++
	}
}
