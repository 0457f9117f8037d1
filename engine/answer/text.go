package answer

import (
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
	"weak"
)

func init() {
	Register(Text, parseText)
	Register(Pattern, parsePattern)
}

// parseText returns the trimmed answer. Invalid UTF-8 becomes U+FFFD and NUL
// bytes are dropped, because PostgreSQL rejects both in text columns and a
// stored answer must never fail to save.
func parseText(text string, o *Options) (any, error) {
	o = orDefault(o)
	s := clean(text)
	if s == "" {
		return nil, fail(Text, "no answer given")
	}
	n := float64(utf8.RuneCountInString(s))
	if o.Min != nil && n < *o.Min {
		return nil, fail(Text, "shorter than the minimum of "+formatBound(*o.Min)+" characters")
	}
	if o.Max != nil && n > *o.Max {
		return nil, fail(Text, "longer than the maximum of "+formatBound(*o.Max)+" characters")
	}
	return s, nil
}

// clean trims s and makes it safe to store.
func clean(s string) string {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.TrimSpace(strings.ReplaceAll(s, "\x00", ""))
	}
	return s
}

// parsePattern returns the trimmed answer when o.Pattern matches all of it.
func parsePattern(text string, o *Options) (any, error) {
	o = orDefault(o)
	if o.Pattern == nil {
		return nil, fail(Pattern, "the question has no pattern")
	}
	s := clean(text)
	if s == "" {
		return nil, fail(Pattern, "no answer given")
	}
	if !matchWhole(o.Pattern, s) {
		return nil, fail(Pattern, "does not match the expected format")
	}
	return s, nil
}

// matchWhole reports whether re matches all of s. A leftmost-first match
// can stop short ("a|ab" finds "a" in "ab") even when a whole match exists,
// so a short match is checked again with an anchored copy of the pattern.
func matchWhole(re *regexp.Regexp, s string) bool {
	loc := re.FindStringIndex(s)
	if loc == nil {
		return false
	}
	if loc[0] == 0 && loc[1] == len(s) {
		return true
	}
	a := anchored(re)
	return a != nil && a.MatchString(s)
}

// anchoredCache maps a flow's pattern to its anchored copy. Keys are weak
// so a flow that is reloaded away does not keep its patterns alive here;
// a cleanup removes the entry once the pattern is collected.
var anchoredCache sync.Map // weak.Pointer[regexp.Regexp] -> *regexp.Regexp

func anchored(re *regexp.Regexp) *regexp.Regexp {
	key := weak.Make(re)
	if a, ok := anchoredCache.Load(key); ok {
		return a.(*regexp.Regexp)
	}
	// \A and \z, not ^ and $, so a (?m) flag in the pattern cannot turn
	// them into line anchors.
	a, err := regexp.Compile(`\A(?:` + re.String() + `)\z`)
	if err != nil {
		return nil // cannot happen for a compiled pattern; fail closed
	}
	if _, loaded := anchoredCache.LoadOrStore(key, a); !loaded {
		runtime.AddCleanup(re, func(k weak.Pointer[regexp.Regexp]) { anchoredCache.Delete(k) }, key)
	}
	return a
}

func formatBound(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
