package answer

import (
	"strconv"
	"strings"
)

// RenderChoices renders choices for SMS, where patients answer by number:
// "Reply 1 for Monday, 2 for Tuesday or 3 for Wednesday." When lang is
// Spanish ("es", "es-MX") it says "Responda 1 para Lunes, 2 para Martes o 3
// para Miércoles."; any other lang gets English. An option without a Label
// shows its Value. It returns "" for no options.
func RenderChoices(opts []Option, lang string) string {
	if len(opts) == 0 {
		return ""
	}
	reply, forWord, or := "Reply", " for ", " or "
	spanish := lang == "es" || strings.HasPrefix(lang, "es-") || strings.HasPrefix(lang, "es_")
	if spanish {
		reply, forWord, or = "Responda", " para ", " o "
	}
	var b strings.Builder
	b.WriteString(reply)
	for i, opt := range opts {
		n := i + 1
		switch {
		case i == 0:
			b.WriteByte(' ')
		case n < len(opts):
			b.WriteString(", ")
		case spanish && soundsLikeO(n):
			// Spanish writes "u" for "o" before an o sound: "7 u 8".
			b.WriteString(" u ")
		default:
			b.WriteString(or)
		}
		b.WriteString(strconv.Itoa(n))
		b.WriteString(forWord)
		label := opt.Label
		if label == "" {
			label = opt.Value
		}
		b.WriteString(label)
	}
	if out := b.String(); !strings.HasSuffix(out, ".") && !strings.HasSuffix(out, "?") && !strings.HasSuffix(out, "!") {
		b.WriteByte('.')
	}
	return b.String()
}

// soundsLikeO reports whether n is read aloud in Spanish starting with an o
// sound: ocho, ochenta, ochocientos..., and once.
func soundsLikeO(n int) bool {
	return n == 11 || strconv.Itoa(n)[0] == '8'
}
