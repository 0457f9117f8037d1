package answer

import (
	"strings"
	"unicode/utf8"
)

func init() {
	Register(YesNo, parseYesNo)
}

// yesNoWords are folded answers. "1" and "2" answer a prompt that says
// "Reply 1 for yes, 2 for no".
var yesNoWords = map[string]bool{
	"yes": true, "y": true, "yeah": true, "yea": true, "ya": true, "yep": true,
	"yup": true, "sure": true, "ok": true, "okay": true, "k": true, "1": true,
	"correct": true, "true": true, "right": true, "affirmative": true,
	"absolutely": true, "definitely": true, "of course": true,
	"yes please": true, "yes thanks": true, "yes thank you": true,
	"that s right": true, "thats right": true, "i do": true, "i am": true,
	"si": true, "claro": true, "claro que si": true, "si claro": true,
	"por supuesto": true, "si por favor": true, "correcto": true, "vale": true,

	"no": false, "n": false, "nope": false, "nah": false, "2": false,
	"false": false, "not really": false, "incorrect": false, "wrong": false,
	"negative": false, "no thanks": false, "no thank you": false,
	"i don t": false, "i dont": false, "i m not": false, "im not": false,
	"no gracias": false, "para nada": false, "incorrecto": false,
}

// Thumbs and check marks are answers too. Skin tones and the emoji
// variation selector change how they look, not what they mean.
const (
	emojiYes = "\U0001F44D\u2705\u2714\u2611" // 👍 ✅ ✔ ☑
	emojiNo  = "\U0001F44E\u274C\u2716\u274E" // 👎 ❌ ✖ ❎
)

func parseYesNo(text string, _ *Options) (any, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fail(YesNo, "no answer given")
	}
	if len(s) > maxAnswer {
		return nil, fail(YesNo, "not a yes or no")
	}
	vote := emojiVote(s)
	if vote == conflict {
		return nil, fail(YesNo, "both yes and no")
	}
	f := fold(s, "")
	if f == "" {
		if vote == none {
			return nil, fail(YesNo, "not a yes or no")
		}
		return vote == yes, nil
	}
	v, ok := yesNoWords[f]
	if !ok {
		// "yesss", "noooo", "siii": patients stretch their answers.
		v, ok = yesNoWords[squeeze(f)]
	}
	if !ok {
		return nil, fail(YesNo, "not a yes or no")
	}
	if (vote == yes && !v) || (vote == no && v) {
		return nil, fail(YesNo, "both yes and no")
	}
	return v, nil
}

type emojiAnswer int

const (
	none emojiAnswer = iota
	yes
	no
	conflict
)

func emojiVote(s string) emojiAnswer {
	vote := none
	for i := 0; i < len(s); i++ {
		if s[i] < utf8.RuneSelf {
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size - 1
		var v emojiAnswer
		switch {
		case strings.ContainsRune(emojiYes, r):
			v = yes
		case strings.ContainsRune(emojiNo, r):
			v = no
		default:
			continue
		}
		if vote != none && vote != v {
			return conflict
		}
		vote = v
	}
	return vote
}

// squeeze collapses runs of one repeated letter, "yesss" to "yes". Digits
// are left alone so that "22" never becomes the "2" that means no. It
// allocates only when something is squeezed.
func squeeze(s string) string {
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1] && 'a' <= s[i] && s[i] <= 'z' {
			b := make([]byte, 0, len(s))
			b = append(b, s[:i]...)
			for j := i; j < len(s); j++ {
				if !(s[j] == s[j-1] && 'a' <= s[j] && s[j] <= 'z') {
					b = append(b, s[j])
				}
			}
			return string(b)
		}
	}
	return s
}
