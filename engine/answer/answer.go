// Package answer parses patients' free-text answers to a flow step's question
// into typed values: numbers, yes/no, choices, dates, times, phone numbers,
// email addresses, ZIP codes and text.
//
// Everything runs in-process: no answer is ever sent to an outside NLP
// service (SECURITY.md, requirement 20). Parsers are registered by kind, the
// value of a step's ask.type, so the flow loader can check that a kind exists
// and tests can be driven from the registry.
package answer

import (
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"
)

// Kind names an input type of a flow step's ask.type.
const (
	Text    = "text"
	Number  = "number"
	Integer = "integer"
	YesNo   = "yes_no"
	Choice  = "choice"
	Date    = "date"
	Time    = "time"
	Phone   = "phone"
	Email   = "email"
	Zip     = "zip"
	Pattern = "pattern"
)

// A DateOrder says how a numeric date such as "3/4" is read.
type DateOrder int

// Date orders. MDY, the zero value, is the US reading.
const (
	MDY DateOrder = iota // 3/4 is March 4
	DMY                  // 3/4 is April 3
)

// String returns "MDY" or "DMY".
func (d DateOrder) String() string {
	if d == DMY {
		return "DMY"
	}
	return "MDY"
}

// Option is one choice of a choice question. Value is what the flow saves;
// Label is what the patient is shown (Value when empty); Synonyms are other
// answers that select it.
type Option struct {
	Value    string
	Label    string
	Synonyms []string
}

// Options configure one parse. The zero value is usable: Now defaults to the
// current time, DateOrder to MDY and Region to "US".
type Options struct {
	// Now is the reference time for relative dates ("tomorrow"); its Location
	// is the clinic's zone, and dates are returned at midnight in it.
	Now       time.Time
	DateOrder DateOrder
	// Region is the default phone region (ISO 3166-1 alpha-2, e.g. "US") for
	// numbers written without a country code.
	Region string
	// Min and Max are inclusive bounds: of the value for number and integer,
	// of the length in runes for text.
	Min, Max *float64
	// Pattern must match the whole answer of a pattern question.
	Pattern *regexp.Regexp
	// Choices are the options of a choice question, in the order shown.
	Choices []Option
}

// Parser parses one answer of its kind. It returns an *Error when the answer
// does not fit, and must not panic on any input. o may be nil.
type Parser func(text string, o *Options) (any, error)

// Error is returned for an answer that does not fit its kind. Reason is a
// short plain-English sentence for clinic staff and logs; it never contains
// the patient's text, so an Error is safe to log.
type Error struct {
	Kind   string
	Reason string
}

// Error returns "kind answer: reason".
func (e *Error) Error() string { return e.Kind + " answer: " + e.Reason }

func fail(kind, reason string) error { return &Error{Kind: kind, Reason: reason} }

var registry = struct {
	sync.RWMutex
	parsers map[string]Parser
}{parsers: map[string]Parser{}}

// Register makes a parser available under kind. It is meant for init
// functions and panics when kind is empty, p is nil or kind is already
// registered, because two parsers for one kind is a programming error.
func Register(kind string, p Parser) {
	if kind == "" || p == nil {
		panic("answer: Register needs a kind and a parser")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.parsers[kind]; dup {
		panic(fmt.Sprintf("answer: kind %q registered twice", kind))
	}
	registry.parsers[kind] = p
}

// Lookup returns the parser registered for kind.
func Lookup(kind string) (Parser, bool) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.parsers[kind]
	return p, ok
}

// Kinds returns the registered kinds, sorted.
func Kinds() []string {
	registry.RLock()
	defer registry.RUnlock()
	kinds := make([]string, 0, len(registry.parsers))
	for k := range registry.parsers {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// Parse parses text as an answer of the given kind. It returns an *Error for
// an unknown kind or an answer that does not fit. A parser that panics, which
// would be a bug, is reported as an *Error instead, so one odd message can
// never take the engine down.
func Parse(kind, text string, o *Options) (v any, err error) {
	p, ok := Lookup(kind)
	if !ok {
		return nil, fail(kind, "unknown answer type")
	}
	defer func() {
		if recover() != nil {
			v, err = nil, fail(kind, "could not be read")
		}
	}()
	return p(text, o)
}

// maxAnswer bounds the answers of every kind but text: nothing shorter than
// this is a date or a phone number, and it keeps the work per message small.
const maxAnswer = 256

// noOptions stands in for a nil *Options.
var noOptions = &Options{}

func orDefault(o *Options) *Options {
	if o == nil {
		return noOptions
	}
	return o
}
