// Package flows is the flow format: the typed model of a flow file, its
// loader (with a position on every node), the compiler of its expressions,
// the static checks that run before a flow goes live, and the registry that
// serves the current set of flows.
package flows

import (
	"reflect"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/safeflow/safeflow/flows/diag"
)

// Pos is a place in a flow file.
type Pos = diag.Pos

// Flow is one loaded, compiled and checked flow file.
type Flow struct {
	ID          string
	Title       string
	Description string
	// Language is the language used when a contact's language has no text.
	Language string
	// Languages lists every language the flow's messages are written in.
	Languages []string
	Start     string
	Trigger   Trigger
	Vars      []*VarDecl
	Secure    Secure
	Keywords  []*Keyword
	// Steps are in file order.
	Steps []*Step
	// Variables holds every variable the flow saves, sets or declares.
	Variables map[string]*Variable

	File string
	// Hash is the hex SHA-256 of Source: the flow version's identity.
	Hash   string
	Source []byte
	Pos    Pos

	byID     map[string]*Step
	startPos Pos
}

// Step returns the step with the given id, or nil.
func (f *Flow) Step(id string) *Step { return f.byID[id] }

// StartStep returns the step a new conversation begins at.
func (f *Flow) StartStep() *Step { return f.byID[f.Start] }

// Trigger says which inbound messages start the flow.
type Trigger struct {
	// Keywords start the flow when a whole inbound message equals one of them
	// (case-insensitive). They are stored upper-case.
	Keywords []string
	// Default starts the flow for a contact who has no conversation and sent
	// no keyword.
	Default bool
	Pos     Pos

	// wordPos places each keyword in the file, for collision reports.
	wordPos []Pos
}

// VarDecl is a variable the clinic supplies when it starts the flow itself
// (for example the appointment time in a confirmation flow).
type VarDecl struct {
	Name      string
	Type      string
	Sensitive bool
	Pos       Pos
}

// Secure configures the secure web chat for the flow's sensitive steps.
type Secure struct {
	LinkMessage *Message
	LinkTTL     time.Duration
	Verify      *Verify
	// Return is "origin" (default): after a sensitive segment the chat goes
	// back to SMS or Messenger; or "stay": it stays on the secure page.
	Return string
	Pos    Pos
}

// Verify is the knowledge check on the secure page before any content.
type Verify struct {
	Prompt *Message
	// Equals is compared with the typed answer; the check passes when equal.
	Equals *Expr
	// Type is the input type of the answer, derived from Equals.
	Type string
	Pos  Pos
}

// Keyword is a flow-wide word that acts before any step routing.
type Keyword struct {
	// Word is upper-case.
	Word    string
	Say     []*Message
	Goto    string
	Handoff string
	End     bool
	Pos     Pos

	gotoPos Pos
}

// Step is one state of the flow.
type Step struct {
	ID        string
	Say       []*Message
	Ask       *Ask
	Set       []*Assign
	Next      []*Route
	Sensitive bool
	// Handoff names the agent queue the chat is handed to; the bot stays
	// quiet until an agent hands it back.
	Handoff string
	// Wait pauses the flow before it moves on.
	Wait time.Duration
	End  bool
	Pos  Pos
	// Index is the step's position in the file, from 0.
	Index int
}

// Pauses reports whether the flow stops at this step to wait for someone.
func (s *Step) Pauses() bool { return s.Ask != nil || s.Wait > 0 || s.Handoff != "" || s.End }

// Ask is the question a step asks.
type Ask struct {
	Prompt   *Message
	Type     string
	Save     string
	Choices  []*Choice
	Pattern  *regexp.Regexp
	Min, Max *float64
	Retry    *Message
	// Attempts is how many answers are tried before OnFail; at least 1.
	Attempts int
	OnFail   string
	// OnFailPos and OnTimeoutPos place the two targets in the file.
	OnFailPos, OnTimeoutPos Pos
	Timeout                 time.Duration
	Reminder                *Message
	// RemindAfter is when the reminder is sent; half the timeout by default.
	RemindAfter time.Duration
	OnTimeout   string
	Pos         Pos

	// savePos places the `save:` value: where the variable is declared.
	savePos Pos
}

// DefaultAttempts caps re-asking so that no patient is stuck in a loop.
const DefaultAttempts = 3

// Choice is one answer a choice question offers.
type Choice struct {
	Value    string
	Label    *Message
	Synonyms []string
	Pos      Pos
}

// Assign sets a variable from an expression.
type Assign struct {
	Var  string
	Expr *Expr
	Pos  Pos
}

// Route is one way on from a step; a Route without When is the default.
type Route struct {
	When *Expr
	Goto string
	Pos  Pos

	gotoPos Pos
}

// Message is a text in one or more languages.
type Message struct {
	// Text maps a language code to its template.
	Text map[string]*Template
	Pos  Pos
}

// Template is message text with {{ expr }} parts.
type Template struct {
	Source string
	Parts  []Part
	Pos    Pos
}

// literalLen counts the characters of Literal without building it.
func (t *Template) literalLen() int {
	n := 0
	for _, p := range t.Parts {
		n += utf8.RuneCountInString(p.Lit)
	}
	return n
}

// Part is a literal run of text or an expression of a template.
type Part struct {
	Lit  string
	Expr *Expr
}

// Literal returns the template's text without its expressions.
func (t *Template) Literal() string {
	n := 0
	for _, p := range t.Parts {
		n += len(p.Lit)
	}
	b := make([]byte, 0, n)
	for _, p := range t.Parts {
		b = append(b, p.Lit...)
	}
	return string(b)
}

// Expr is a compiled expr-lang expression.
type Expr struct {
	Source string
	Pos    Pos
	// Program is nil when Ident is set: a lone variable name needs no VM.
	Program *vm.Program
	Ident   string
	// Vars lists the flow variables the expression reads.
	Vars []string
	// UsesInput is true when the expression reads `input`.
	UsesInput bool
	Type      reflect.Type

	// node and off place the expression in its YAML scalar, for positions.
	node *yaml.Node
	off  int
}

// Variable is a flow variable with its type and where it comes from.
type Variable struct {
	Name string
	// Type is the input type of the answer that fills it ("text", "date"...),
	// or "value" for one computed by set.
	Type   string
	GoType reflect.Type
	// Sensitive is true for a value collected in a sensitive step, declared
	// sensitive, or computed from one.
	Sensitive bool
	Pos       Pos
}
