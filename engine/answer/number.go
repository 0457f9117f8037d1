package answer

import (
	"math"
	"strconv"
	"strings"
)

func init() {
	Register(Number, parseNumber)
	Register(Integer, parseInteger)
}

// numberWords are the spelled-out numbers patients type, in English and
// Spanish, folded (so "dieciséis" is listed without its accent).
var numberWords = map[string]float64{
	"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
	"seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
	"thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
	"seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
	"none": 0,

	"cero": 0, "uno": 1, "una": 1, "un": 1, "dos": 2, "tres": 3, "cuatro": 4,
	"cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9, "diez": 10,
	"once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15,
	"dieciseis": 16, "diecisiete": 17, "dieciocho": 18, "diecinueve": 19,
	"veinte": 20, "ninguno": 0, "ninguna": 0,
}

// maxExactInt bounds integer answers: above it a float64 no longer holds
// every integer, and an answer would be silently rounded.
const maxExactInt = 1 << 53

func parseNumber(text string, o *Options) (any, error) {
	v, err := readNumber(Number, text)
	if err != nil {
		return nil, err
	}
	if err := checkBounds(Number, v, orDefault(o)); err != nil {
		return nil, err
	}
	return v, nil
}

func parseInteger(text string, o *Options) (any, error) {
	v, err := readNumber(Integer, text)
	if err != nil {
		return nil, err
	}
	if v != math.Trunc(v) {
		return nil, fail(Integer, "not a whole number")
	}
	if math.Abs(v) >= maxExactInt { // 2^53+1 reads as 2^53, so 2^53 itself is suspect
		return nil, fail(Integer, "too large")
	}
	if err := checkBounds(Integer, v, orDefault(o)); err != nil {
		return nil, err
	}
	return int(v), nil
}

// readNumber reads "12", "-3", "12.5", ".5", "1,200" or a number word.
// A comma is only a thousands separator: "1,5" is refused rather than
// guessed, since in Spanish it means one and a half.
func readNumber(kind, text string) (float64, error) {
	s := strings.TrimSpace(text)
	if s == "" {
		return 0, fail(kind, "no answer given")
	}
	if len(s) > maxAnswer {
		return 0, fail(kind, "not a number")
	}
	// "12." and "5!" end a sentence; the mark is not part of the number.
	s = strings.TrimRight(s, ".! ")
	if s == "" {
		return 0, fail(kind, "not a number")
	}
	commas, ok, reason := scanNumber(s)
	if !ok {
		if v, ok := numberWords[fold(s, "")]; ok {
			return v, nil
		}
		return 0, fail(kind, reason)
	}
	if commas {
		s = strings.ReplaceAll(s, ",", "")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fail(kind, "too large")
	}
	return v, nil
}

// scanNumber checks s against [+-]digits[,ddd...][.digits]. It reports
// whether s has thousands separators, and why not when s is not a number.
func scanNumber(s string) (commas, ok bool, reason string) {
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	intDigits, group := 0, -1 // group: digits since the last comma, -1 before any
digits:
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case '0' <= c && c <= '9':
			intDigits++
			if group >= 0 {
				group++
			}
		case c == ',':
			if intDigits == 0 || (group < 0 && intDigits > 3) || (group >= 0 && group != 3) {
				return false, false, "has a comma that is not a thousands separator"
			}
			commas, group = true, 0
		default:
			break digits
		}
	}
	if group >= 0 && group != 3 {
		return false, false, "has a comma that is not a thousands separator"
	}
	fracDigits := 0
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
			fracDigits++
		}
		if fracDigits == 0 {
			return false, false, "not a number"
		}
	}
	if i != len(s) || intDigits+fracDigits == 0 {
		return false, false, "not a number"
	}
	return commas, true, ""
}

func checkBounds(kind string, v float64, o *Options) error {
	if o.Min != nil && v < *o.Min {
		return fail(kind, "below the minimum of "+formatBound(*o.Min))
	}
	if o.Max != nil && v > *o.Max {
		return fail(kind, "above the maximum of "+formatBound(*o.Max))
	}
	return nil
}
