package answer

import (
	"strconv"
	"strings"
)

func init() {
	Register(Choice, parseChoice)
}

// parseChoice returns the Value of the option the answer picks: by its
// number in the list ("2", "2.", "#2", "(2)"), or by its value, label or a
// synonym, ignoring case, accents and punctuation. An answer that picks two
// different options is refused rather than guessed.
func parseChoice(text string, o *Options) (any, error) {
	o = orDefault(o)
	if len(o.Choices) == 0 {
		return nil, fail(Choice, "the question has no choices")
	}
	s := strings.TrimSpace(text)
	if s == "" {
		return nil, fail(Choice, "no answer given")
	}
	if len(s) > maxAnswer {
		return nil, fail(Choice, "not one of the choices")
	}
	picked := -1
	pick := func(i int) bool {
		if picked >= 0 && picked != i {
			return false
		}
		picked = i
		return true
	}
	if n, ok := choiceNumber(s); ok && n >= 1 && n <= len(o.Choices) {
		pick(n - 1)
	}
	for i, opt := range o.Choices {
		if !matchesOption(s, opt) {
			continue
		}
		if !pick(i) {
			return nil, fail(Choice, "matches more than one choice")
		}
	}
	if picked < 0 {
		return nil, fail(Choice, "not one of the choices")
	}
	return o.Choices[picked].Value, nil
}

// choiceNumber reads an answer made of one number and punctuation only.
func choiceNumber(s string) (int, bool) {
	start, end := -1, -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			if end >= 0 {
				return 0, false // "1 2": two numbers
			}
			if start < 0 {
				start = i
			}
		case c == '#' || c == '.' || c == ')' || c == '(' || c == ' ' || c == '!':
			if start >= 0 && end < 0 {
				end = i
			}
		default:
			return 0, false
		}
	}
	if start < 0 {
		return 0, false
	}
	if end < 0 {
		end = len(s)
	}
	if end-start > 3 {
		return 0, false
	}
	n, err := strconv.Atoi(s[start:end])
	return n, err == nil
}

func matchesOption(s string, opt Option) bool {
	if foldEqual(s, opt.Value) || foldEqual(s, opt.Label) {
		return true
	}
	for _, syn := range opt.Synonyms {
		if foldEqual(s, syn) {
			return true
		}
	}
	return false
}
