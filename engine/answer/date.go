package answer

import (
	"strings"
	"time"

	"github.com/olebedev/when"
	"github.com/olebedev/when/rules"
	"github.com/olebedev/when/rules/en"
)

func init() {
	Register(Date, parseDate)
}

// Dates are read in two stages. The forms patients type most (numeric
// dates, month names, today/tomorrow/hoy/mañana, weekdays, "in 3 days")
// are read here by table lookups, which is exact and takes well under a
// microsecond. Other English relative phrases ("this past Friday", "within
// 2 weeks", "tmr") go to olebedev/when, which costs 5 to 20µs. when finds
// a date anywhere in a sentence, so its match must cover the whole answer:
// "not tomorrow" must not become tomorrow.

// whenParser keeps only when's date rules: a time of day is read by the
// time kind, and its month arithmetic ("in 2 months") wraps around the
// year, so months and years are handled here instead.
var whenParser = func() *when.Parser {
	p := when.New(&rules.Options{Distance: 5, MatchByOrder: true})
	p.Add(
		en.CasualDate(rules.Override),
		en.Weekday(rules.Override),
		en.Deadline(rules.Override),
		en.PastTime(rules.Override),
	)
	return p
}()

// minYear is the earliest year accepted; a birth date before it is a typo.
const minYear = 1900

// casualDays are folded phrases for days relative to today.
var casualDays = map[string]int{
	"today": 0, "tonight": 0, "now": 0, "this morning": 0, "this afternoon": 0,
	"this evening": 0, "hoy": 0, "esta noche": 0, "esta tarde": 0,
	"tomorrow": 1, "tmrw": 1, "tmr": 1, "tomorow": 1, "tommorow": 1,
	"tommorrow": 1, "2morrow": 1, "manana": 1,
	"day after tomorrow": 2, "pasado manana": 2,
	"yesterday": -1, "last night": -1, "ayer": -1, "anoche": -1,
	"day before yesterday": -2, "anteayer": -2, "antier": -2,
}

// connectives are dropped before a date is read: "the 3rd of March",
// "3 de marzo de 2027", "on Tuesday", "el martes".
var connectives = map[string]bool{"the": true, "of": true, "on": true, "de": true, "del": true, "el": true}

// partsOfDay may follow a day: "tomorrow morning".
var partsOfDay = map[string]bool{"morning": true, "afternoon": true, "evening": true, "night": true}

var monthNames = func() map[string]int {
	m := map[string]int{
		"enero": 1, "ene": 1, "febrero": 2, "marzo": 3, "abril": 4, "abr": 4,
		"mayo": 5, "junio": 6, "julio": 7, "agosto": 8, "septiembre": 9,
		"setiembre": 9, "octubre": 10, "noviembre": 11, "diciembre": 12, "dic": 12,
	}
	for k, v := range en.MONTH_OFFSET {
		m[strings.TrimSuffix(k, ".")] = v
	}
	return m
}()

var weekdayNames = func() map[string]time.Weekday {
	m := map[string]time.Weekday{
		"tues": time.Tuesday, "weds": time.Wednesday, "thurs": time.Thursday,
		"domingo": time.Sunday, "lunes": time.Monday, "martes": time.Tuesday,
		"miercoles": time.Wednesday, "jueves": time.Thursday, "viernes": time.Friday,
		"sabado": time.Saturday, "dom": time.Sunday, "lun": time.Monday,
		"mie": time.Wednesday, "jue": time.Thursday, "vie": time.Friday, "sab": time.Saturday,
	}
	for k, v := range en.WEEKDAY_OFFSET {
		m[k] = time.Weekday(v)
	}
	return m
}()

// direction says which occurrence of a weekday is meant.
type direction int

const (
	after     direction = iota + 1 // the first one after today: "Tuesday", "next Tuesday"
	onOrAfter                      // today if it is that day: "this Tuesday"
	before                         // the last one before today: "last Tuesday"
)

// weekdayWords may stand next to a weekday. A bare weekday means the next
// one after today, as in when: on a Monday, "Monday" is a week away,
// because the patient would have said "today".
var weekdayWords = map[string]direction{
	"next": after, "coming": after, "proximo": after, "proxima": after,
	"que": after, "viene": after,
	"this": onOrAfter, "este": onOrAfter, "esta": onOrAfter,
	"last": before, "past": before, "pasado": before, "pasada": before,
}

// vague words make when guess ("in a few days" is three days); a clinic
// should ask again instead.
var vague = []string{"few", "couple", "half", "hour", "minute", "second", "month", "year", "mes", "ano", "week"}

type token struct {
	s  string
	at int // byte offset in the folded answer
}

const maxTokens = 12

// dateReader reads one folded answer relative to today.
type dateReader struct {
	today time.Time // midnight in the clinic's zone
	order DateOrder
}

// parseDate returns midnight of the answered day in o.Now's location.
func parseDate(text string, o *Options) (any, error) {
	o = orDefault(o)
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fail(Date, "no answer given")
	}
	if len(s) > 128 {
		return nil, fail(Date, "not a date")
	}
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	y, m, d := now.Date()
	r := dateReader{today: time.Date(y, m, d, 0, 0, 0, 0, now.Location()), order: o.DateOrder}
	t, reason := r.read(strings.Trim(fold(s, "/-.:"), "/-.: "))
	if reason != "" {
		return nil, fail(Date, reason)
	}
	if t.Year() < minYear || t.Year() > r.today.Year()+100 {
		return nil, fail(Date, "the year is out of range")
	}
	return t, nil
}

// read returns the date, or a reason it is not one.
func (r *dateReader) read(f string) (time.Time, string) {
	var buf [maxTokens]token
	toks, ok := tokenize(f, &buf)
	if !ok || len(toks) == 0 {
		return time.Time{}, "not a date"
	}
	toks = dropTime(f, toks)
	kept := toks[:0]
	for _, t := range toks {
		if !connectives[t.s] {
			kept = append(kept, t)
		}
	}
	toks = kept
	if len(toks) == 0 {
		return time.Time{}, "not a date"
	}

	var pbuf [64]byte
	if n, ok := casualDays[string(joinTokens(toks, pbuf[:0]))]; ok {
		return r.addDays(n), ""
	}
	// "tomorrow morning", "Friday afternoon": the part of the day is for
	// the time question, not this one.
	if len(toks) > 1 && partsOfDay[toks[len(toks)-1].s] {
		toks = toks[:len(toks)-1]
		if n, ok := casualDays[string(joinTokens(toks, pbuf[:0]))]; ok {
			return r.addDays(n), ""
		}
	}
	if t, ok, reason := r.weekdayPhrase(toks); ok {
		return t, reason
	}
	if t, ok, reason := r.offsetPhrase(toks); ok {
		return t, reason
	}

	// A leading weekday may name the date that follows ("Tue 12/1",
	// "martes 1 de diciembre"); it must then agree with it.
	wd, named := time.Weekday(0), false
	rest := toks
	if len(toks) > 1 {
		if w, ok := weekdayNames[toks[0].s]; ok {
			wd, named, rest = w, true, toks[1:]
		}
	}
	t, ok, reason := r.exactDate(rest)
	if ok {
		if reason == "" && named && t.Weekday() != wd {
			return time.Time{}, "the weekday does not match the date"
		}
		return t, reason
	}
	return r.viaWhen(f)
}

// exactDate reads a numeric date, a date with a month name or an ordinal
// day ("the 14th"). ok is false when toks are none of these.
func (r *dateReader) exactDate(toks []token) (t time.Time, ok bool, reason string) {
	if len(toks) == 1 {
		if t, ok, reason := r.numericDate(toks[0].s); ok {
			return t, ok, reason
		}
		if d, ok := ordinalDay(toks[0].s); ok {
			if t, ok := r.nextDayOfMonth(d); ok {
				return t, true, ""
			}
			return time.Time{}, true, "not a valid date"
		}
	}
	return r.monthDate(toks)
}

// numericDate reads "3/14", "3/14/27", "3-14-2027", "14.3.2027" in the
// clinic's order and "2027-03-14" in any.
func (r *dateReader) numericDate(w string) (time.Time, bool, string) {
	sep := strings.IndexAny(w, "/-.")
	if sep <= 0 {
		return time.Time{}, false, ""
	}
	var parts [3]string
	n := 0
	for p := range strings.SplitSeq(w, w[sep:sep+1]) {
		if n == len(parts) || p == "" || len(p) > 4 || !allDigits(p) {
			return time.Time{}, false, ""
		}
		parts[n] = p
		n++
	}
	if n < 2 {
		return time.Time{}, false, ""
	}
	if len(parts[0]) == 4 { // ISO 8601: year first
		if n != 3 || len(parts[1]) > 2 || len(parts[2]) > 2 {
			return time.Time{}, true, "no day given"
		}
		if t, ok := r.date(atoi(parts[0]), atoi(parts[1]), atoi(parts[2])); ok {
			return t, true, ""
		}
		return time.Time{}, true, "not a valid date"
	}
	if len(parts[0]) > 2 || len(parts[1]) > 2 {
		return time.Time{}, true, "not a date"
	}
	month, day := atoi(parts[0]), atoi(parts[1])
	if r.order == DMY {
		month, day = day, month
	}
	if month > 12 && day <= 12 {
		// Unambiguous, but a sign the patient writes dates the other way
		// round, so "3/4" from them would be misread: ask again instead.
		if r.order == DMY {
			return time.Time{}, true, "not a valid date in day/month order"
		}
		return time.Time{}, true, "not a valid date in month/day order"
	}
	if n == 2 {
		if t, ok := r.nextMonthDay(month, day); ok {
			return t, true, ""
		}
		return time.Time{}, true, "not a valid date"
	}
	year := atoi(parts[2])
	switch len(parts[2]) {
	case 2:
		// Two-digit years up to ten years ahead are this century, older
		// ones the last ("85" in a birth date is 1985).
		year += 2000
		if year > r.today.Year()+10 {
			year -= 100
		}
	case 4:
	default:
		return time.Time{}, true, "not a valid date"
	}
	if t, ok := r.date(year, month, day); ok {
		return t, true, ""
	}
	return time.Time{}, true, "not a valid date"
}

// monthDate reads a day and a month name in either order with an optional
// four-digit year after them: "March 14", "14 March 2027", "14th of
// March", "3 de marzo de 2027" (connectives are already gone).
func (r *dateReader) monthDate(toks []token) (time.Time, bool, string) {
	mi := -1
	for i, t := range toks {
		if _, ok := monthNames[t.s]; ok {
			if mi >= 0 {
				return time.Time{}, true, "not a date"
			}
			mi = i
		}
	}
	if mi < 0 || len(toks) > 3 {
		return time.Time{}, false, ""
	}
	month := monthNames[toks[mi].s]
	day, year := -1, -1
	switch {
	case len(toks) == 1:
		return time.Time{}, true, "no day given"
	case mi == 0: // March 14 [2027], March 2027
		if d, ok := dayOfMonth(toks[1].s); ok {
			day = d
		} else if len(toks) == 2 && len(toks[1].s) == 4 && allDigits(toks[1].s) {
			return time.Time{}, true, "no day given"
		} else {
			return time.Time{}, false, ""
		}
		if len(toks) == 3 {
			if len(toks[2].s) != 4 || !allDigits(toks[2].s) {
				return time.Time{}, false, ""
			}
			year = atoi(toks[2].s)
		}
	case mi == 1: // 14 March [2027]
		d, ok := dayOfMonth(toks[0].s)
		if !ok {
			return time.Time{}, false, ""
		}
		day = d
		if len(toks) == 3 {
			if len(toks[2].s) != 4 || !allDigits(toks[2].s) {
				return time.Time{}, false, ""
			}
			year = atoi(toks[2].s)
		}
	default:
		return time.Time{}, false, ""
	}
	if year < 0 {
		if t, ok := r.nextMonthDay(month, day); ok {
			return t, true, ""
		}
		return time.Time{}, true, "not a valid date"
	}
	if t, ok := r.date(year, month, day); ok {
		return t, true, ""
	}
	return time.Time{}, true, "not a valid date"
}

// weekdayPhrase reads a weekday with the words that say which one:
// "Tuesday", "next Tuesday", "this Friday", "last Monday", "el próximo
// martes", "el martes que viene", "el lunes pasado".
func (r *dateReader) weekdayPhrase(toks []token) (time.Time, bool, string) {
	wd, found := time.Weekday(0), false
	dir := direction(0)
	for _, t := range toks {
		if w, ok := weekdayNames[t.s]; ok {
			if found {
				return time.Time{}, false, ""
			}
			wd, found = w, true
			continue
		}
		d, ok := weekdayWords[t.s]
		if !ok {
			return time.Time{}, false, ""
		}
		switch {
		case dir == 0 || dir == d:
			dir = d
		case dir == onOrAfter && d == before, dir == before && d == onOrAfter:
			dir = before // "this past Friday"
		default:
			return time.Time{}, true, "not a date" // "next last Friday"
		}
	}
	if !found {
		return time.Time{}, false, ""
	}
	diff := int(wd - r.today.Weekday())
	switch dir {
	case before:
		if diff >= 0 {
			diff -= 7
		}
	case onOrAfter:
		if diff < 0 {
			diff += 7
		}
	default:
		if diff <= 0 {
			diff += 7
		}
	}
	return r.addDays(diff), true, ""
}

// offsetPhrase reads "in 3 days", "2 weeks ago", "in a month", "3 days from
// now", "en 2 semanas", "dentro de 3 días", "hace 2 días".
func (r *dateReader) offsetPhrase(toks []token) (time.Time, bool, string) {
	if len(toks) < 2 || len(toks) > 4 {
		return time.Time{}, false, ""
	}
	sign, i := 0, 0
	switch toks[0].s {
	case "in", "en", "dentro":
		sign, i = 1, 1
	case "hace":
		sign, i = -1, 1
	}
	if len(toks) < i+2 {
		return time.Time{}, false, ""
	}
	n, ok := countWord(toks[i].s)
	if !ok {
		return time.Time{}, false, ""
	}
	unit := toks[i+1].s
	switch tail := toks[i+2:]; {
	case len(tail) == 0 && sign != 0:
	case len(tail) == 1 && sign == 0 && tail[0].s == "ago":
		sign = -1
	case len(tail) == 2 && sign == 0 && tail[0].s == "from" && (tail[1].s == "now" || tail[1].s == "today"):
		sign = 1
	default:
		return time.Time{}, false, ""
	}
	n *= sign
	switch unit {
	case "day", "days", "dia", "dias":
		return r.addDays(n), true, ""
	case "week", "weeks", "semana", "semanas":
		return r.addDays(7 * n), true, ""
	case "month", "months", "mes", "meses":
		return r.addMonths(n), true, ""
	case "year", "years", "ano", "anos":
		return r.addMonths(12 * n), true, ""
	}
	return time.Time{}, false, ""
}

// viaWhen asks olebedev/when, and accepts its answer only when the phrase
// it read is the whole answer.
func (r *dateReader) viaWhen(f string) (time.Time, string) {
	if !hasLetter(f) {
		return time.Time{}, "not a date"
	}
	var tbuf [maxTokens]token
	words, _ := tokenize(f, &tbuf)
	for _, t := range words {
		for _, v := range vague {
			if strings.HasPrefix(t.s, v) {
				return time.Time{}, "too vague for a date"
			}
		}
	}
	y, m, d := r.today.Date()
	// Noon, so that when's 24-hour steps land on the right day across a
	// daylight saving change.
	noon := time.Date(y, m, d, 12, 0, 0, 0, r.today.Location())
	res, err := whenParser.Parse(f, noon)
	if err != nil || res == nil {
		return time.Time{}, "not a date"
	}
	var buf [maxTokens]token
	toks, _ := tokenize(f[:res.Index]+" "+f[res.Index+len(res.Text):], &buf)
	for _, t := range toks {
		if !connectives[t.s] {
			return time.Time{}, "not a date"
		}
	}
	y, m, d = res.Time.In(r.today.Location()).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, r.today.Location()), ""
}

// dropTime removes a time of day at the end ("tomorrow at 3pm"): the
// question asked for a day. A bare "1530" is only taken for a time after
// "at", since it might be a year.
func dropTime(f string, toks []token) []token {
	for k := 1; k <= 4 && k < len(toks); k++ {
		i := len(toks) - k
		_, explicit, reason := readClock(f[toks[i].at:])
		if reason != "" {
			continue
		}
		if prev := toks[i-1].s; !explicit && prev != "at" && prev != "las" {
			continue
		}
		toks = toks[:i]
		for len(toks) > 1 {
			switch toks[len(toks)-1].s {
			case "at", "a", "las", "la", "around":
				toks = toks[:len(toks)-1]
				continue
			}
			break
		}
		return toks
	}
	return toks
}

func (r *dateReader) date(y, m, d int) (time.Time, bool) {
	if m < 1 || m > 12 || d < 1 || d > daysIn(y, time.Month(m)) {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(m), d, 0, 0, 0, 0, r.today.Location()), true
}

// nextMonthDay returns the first m/d on or after today; a February 29th
// may be up to eight years away.
func (r *dateReader) nextMonthDay(m, d int) (time.Time, bool) {
	for y := r.today.Year(); y <= r.today.Year()+8; y++ {
		if t, ok := r.date(y, m, d); ok && !t.Before(r.today) {
			return t, true
		}
	}
	return time.Time{}, false
}

// nextDayOfMonth returns the first date on or after today whose day is d.
func (r *dateReader) nextDayOfMonth(d int) (time.Time, bool) {
	y, m, _ := r.today.Date()
	for i := range 13 {
		first := time.Date(y, m+time.Month(i), 1, 0, 0, 0, 0, time.UTC)
		if t, ok := r.date(first.Year(), int(first.Month()), d); ok && !t.Before(r.today) {
			return t, true
		}
	}
	return time.Time{}, false
}

func (r *dateReader) addDays(n int) time.Time {
	y, m, d := r.today.Date()
	return time.Date(y, m, d+n, 0, 0, 0, 0, r.today.Location())
}

// addMonths moves by whole months and keeps to the last day of a short
// month: a month after January 31st is February 28th, not March 3rd.
func (r *dateReader) addMonths(n int) time.Time {
	y, m, d := r.today.Date()
	first := time.Date(y, m+time.Month(n), 1, 0, 0, 0, 0, r.today.Location())
	if last := daysIn(first.Year(), first.Month()); d > last {
		d = last
	}
	return first.AddDate(0, 0, d-1)
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// dayOfMonth reads "14", "14th", "first", "primero".
func dayOfMonth(w string) (int, bool) {
	if len(w) <= 2 && allDigits(w) {
		d := atoi(w)
		return d, d >= 1 && d <= 31
	}
	return ordinalDay(w)
}

// ordinalDay reads "14th", "first", "twenty-first", "primero".
func ordinalDay(w string) (int, bool) {
	if w == "primero" {
		return 1, true
	}
	d, ok := en.ORDINAL_WORDS[w]
	return d, ok
}

// countWord reads the number in "in 3 days": digits, a number word, or
// "a" as in "in a week".
func countWord(w string) (int, bool) {
	switch w {
	case "a", "an", "un", "una":
		return 1, true
	}
	if len(w) <= 3 && allDigits(w) {
		return atoi(w), true
	}
	if v, ok := numberWords[w]; ok {
		return int(v), true
	}
	return 0, false
}

// tokenize splits a folded answer into words, dropping the trailing dots
// and colons of "Tue." and "Jan:".
func tokenize(f string, dst *[maxTokens]token) ([]token, bool) {
	out := dst[:0]
	at := 0
	for at < len(f) {
		w, _, _ := strings.Cut(f[at:], " ")
		if t := strings.TrimRight(w, ".:"); t != "" {
			if len(out) == len(dst) {
				return nil, false
			}
			out = append(out, token{s: t, at: at})
		}
		at += len(w) + 1
	}
	return out, true
}

// joinTokens writes the words joined by spaces into dst; the caller uses
// the result as a map key without allocating.
func joinTokens(toks []token, dst []byte) []byte {
	for i, t := range toks {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, t.s...)
	}
	return dst
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func hasLetter(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			return true
		}
	}
	return false
}
