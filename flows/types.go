package flows

import (
	"reflect"
	"slices"
	"strconv"
	"time"
)

// Input types of ask.type. The engine registers a parser for each; a test in
// the engine fails when one is missing.
const (
	TypeText    = "text"
	TypeNumber  = "number"
	TypeInteger = "integer"
	TypeYesNo   = "yes_no"
	TypeChoice  = "choice"
	TypeDate    = "date"
	TypeTime    = "time"
	TypePhone   = "phone"
	TypeEmail   = "email"
	TypeZip     = "zip"
	TypePattern = "pattern"
)

var (
	stringType = reflect.TypeFor[string]()
	timeType   = reflect.TypeFor[time.Time]()
)

// inputTypes maps each input type to the Go type of the value it saves.
var inputTypes = map[string]reflect.Type{
	TypeText:    stringType,
	TypeNumber:  reflect.TypeFor[float64](),
	TypeInteger: reflect.TypeFor[int](),
	TypeYesNo:   reflect.TypeFor[bool](),
	TypeChoice:  stringType,
	TypeDate:    timeType,
	TypeTime:    stringType,
	TypePhone:   stringType,
	TypeEmail:   stringType,
	TypeZip:     stringType,
	TypePattern: stringType,
}

// InputTypes lists the input types a flow may ask for, sorted.
func InputTypes() []string {
	out := make([]string, 0, len(inputTypes))
	for k := range inputTypes {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// GoTypeOf returns the Go type of the value an input type saves.
func GoTypeOf(inputType string) reflect.Type { return inputTypes[inputType] }

// Contact is what an expression may know about the contact: never the
// address itself.
type Contact struct {
	Channel  string `expr:"channel"`
	Language string `expr:"language"`
}

// Reserved names are provided by the engine and cannot be saved or set.
var reservedNames = map[string]bool{
	"input": true, "contact": true, "link": true, "now": true, "age": true, "days_until": true,
	"days_since": true, "format_date": true, "true": true, "false": true, "nil": true,
}

// Helpers returns the helper functions that expressions may call, bound to
// a clock. The engine passes its own clock; loading uses time.Now.
func Helpers(now func() time.Time) map[string]any {
	return map[string]any{
		"now": now,
		"age": func(born time.Time) int {
			return yearsBetween(born, now().In(born.Location()))
		},
		"days_until":  func(d time.Time) int { return daysBetween(now().In(d.Location()), d) },
		"days_since":  func(d time.Time) int { return daysBetween(d, now().In(d.Location())) },
		"format_date": formatDate,
	}
}

// yearsBetween counts whole years from a to b, as a person's age is counted.
func yearsBetween(a, b time.Time) int {
	years := b.Year() - a.Year()
	if b.Month() < a.Month() || (b.Month() == a.Month() && b.Day() < a.Day()) {
		years--
	}
	return years
}

// daysBetween counts calendar days from a to b, ignoring the time of day.
func daysBetween(a, b time.Time) int {
	ad := time.Date(a.Year(), a.Month(), a.Day(), 0, 0, 0, 0, time.UTC)
	bd := time.Date(b.Year(), b.Month(), b.Day(), 0, 0, 0, 0, time.UTC)
	return int(bd.Sub(ad).Hours() / 24)
}

var (
	weekdaysES = [...]string{"domingo", "lunes", "martes", "miércoles", "jueves", "viernes", "sábado"}
	monthsES   = [...]string{"enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre", "noviembre", "diciembre"}
)

// FormatDate writes a date for a patient: "Monday, March 14" in English,
// "lunes 14 de marzo" in Spanish. It is the helper format_date(d, lang).
func FormatDate(d time.Time, lang string) string {
	if lang == "es" {
		return weekdaysES[d.Weekday()] + " " + strconv.Itoa(d.Day()) + " de " + monthsES[d.Month()-1]
	}
	return d.Format("Monday, January 2")
}

func formatDate(d time.Time, lang ...string) string {
	l := "en"
	if len(lang) > 0 {
		l = lang[0]
	}
	return FormatDate(d, l)
}
