package answer

import "strings"

func init() {
	Register(Time, parseTime)
}

// namedTimes are the times of day that have a name. "Morning" is not one:
// it is a span, and a clinic needs a time.
var namedTimes = map[string]int{ // minutes after midnight
	"noon": 12 * 60, "12 noon": 12 * 60, "midday": 12 * 60, "mediodia": 12 * 60,
	"medio dia": 12 * 60, "midnight": 0, "12 midnight": 0, "medianoche": 0,
}

// dayParts turn a bare hour into am or pm, in English and Spanish.
var dayParts = []struct {
	suffix string
	pm     bool
}{
	{" in the morning", false}, {" in the afternoon", true}, {" in the evening", true},
	{" at night", true}, {" tonight", true}, {" de la manana", false},
	{" de la madrugada", false}, {" de la tarde", true}, {" de la noche", true},
}

// parseTime returns a time of day as "15:04": "3pm", "3:30 PM", "15:30",
// "noon", "3 de la tarde". A bare "3" or "9:30" is refused because the
// patient may mean morning or afternoon; "09:30" and "21:30" are clear.
func parseTime(text string, _ *Options) (any, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fail(Time, "no answer given")
	}
	if len(s) > 64 {
		return nil, fail(Time, "not a time")
	}
	m, _, reason := readClock(fold(s, ":."))
	if reason != "" {
		return nil, fail(Time, reason)
	}
	b := [5]byte{byte('0' + m/600), byte('0' + m/60%10), ':', byte('0' + m%60/10), byte('0' + m%10)}
	return string(b[:]), nil
}

// readClock reads a folded time and returns minutes after midnight.
// explicit says that the text could only be a time (it has a colon, am/pm
// or a name), which the date parser needs before it drops a trailing
// "at 3pm" from "tomorrow at 3pm". reason is "" on success.
func readClock(f string) (minutes int, explicit bool, reason string) {
	f = strings.TrimRight(f, ".")
	for _, p := range [...]string{"at ", "a las ", "a la ", "@ "} {
		f = strings.TrimPrefix(f, p)
	}
	if m, ok := namedTimes[f]; ok {
		return m, true, ""
	}
	meridiem := 0 // 0 none, 1 am, 2 pm
	for _, d := range dayParts {
		if rest, ok := strings.CutSuffix(f, d.suffix); ok {
			f, meridiem = rest, 1
			if d.pm {
				meridiem = 2
			}
			break
		}
	}
	// "8 o'clock pm": o'clock adds nothing to the hour.
	f = strings.Replace(strings.Replace(f, " o clock", "", 1), " oclock", "", 1)

	// Collect the characters that matter, dropping spaces and the dots of
	// "p.m.", but reading a dot between digits as a colon ("3.30pm").
	var c [16]byte
	n := 0
	for i := 0; i < len(f); i++ {
		ch := f[i]
		switch {
		case ch == ' ':
			continue
		case ch == '.':
			if i == 0 || i+1 == len(f) || !isDigit(f[i-1]) || !isDigit(f[i+1]) {
				continue
			}
			ch = ':'
		case ch == 'h' && i > 0 && i+1 < len(f) && isDigit(f[i-1]) && isDigit(f[i+1]):
			ch = ':' // "15h30"
		}
		if n == len(c) {
			return 0, false, "not a time"
		}
		c[n] = ch
		n++
	}
	t := string(c[:n]) // short; the compiler keeps it on the stack

	digits := 0
	for digits < len(t) && isDigit(t[digits]) {
		digits++
	}
	if digits == 0 {
		return 0, false, "not a time"
	}
	hour, minute, hasMinutes := 0, 0, false
	rest := t[digits:]
	switch {
	case strings.HasPrefix(rest, ":"):
		if digits > 2 || len(rest) < 3 || !isDigit(rest[1]) || !isDigit(rest[2]) {
			return 0, false, "not a time"
		}
		hour, minute, hasMinutes = atoi(t[:digits]), atoi(rest[1:3]), true
		rest = rest[3:]
	case digits <= 2:
		hour = atoi(t[:digits])
	case digits <= 4: // "330pm", "1530"
		hour, minute, hasMinutes = atoi(t[:digits-2]), atoi(t[digits-2:digits]), true
	default:
		return 0, false, "not a time"
	}
	if meridiem == 0 {
		switch rest {
		case "am", "a":
			meridiem = 1
		case "pm", "p":
			meridiem = 2
		case "":
		default:
			return 0, false, "not a time"
		}
	} else if rest != "" {
		return 0, false, "not a time"
	}
	if minute > 59 {
		return 0, false, "not a time"
	}
	if meridiem != 0 {
		if hour < 1 || hour > 12 {
			return 0, false, "not a time"
		}
		hour %= 12
		if meridiem == 2 {
			hour += 12
		}
		return hour*60 + minute, true, ""
	}
	if hour > 23 {
		return 0, false, "not a time"
	}
	// Without am or pm only a 24-hour reading is clear: "15:30", "09:30",
	// "0:15", "12:30". "9:30" and "3" could be either.
	padded := digits == 2 && t[0] == '0' || digits == 4 && t[0] == '0'
	if !hasMinutes && hour > 12 {
		return 0, false, "needs minutes"
	}
	if !hasMinutes || (hour >= 1 && hour <= 11 && !padded) {
		return 0, false, "needs am or pm"
	}
	return hour*60 + minute, strings.Contains(t, ":"), ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// atoi reads a short run of ASCII digits that the caller has checked.
func atoi(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}
