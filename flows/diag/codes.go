package diag

import "slices"

// Code is the stable identifier of one kind of finding, such as SF012. Codes
// are never reused or renumbered: clinic runbooks and CI filters refer to them.
type Code string

// CodeInfo describes a code for the docs and for tests driven by the registry.
type CodeInfo struct {
	Code     Code
	Severity Severity
	Title    string
}

var codes = map[Code]CodeInfo{}

func register(code Code, sev Severity, title string) Code {
	if _, dup := codes[code]; dup {
		panic("diag: duplicate code " + string(code))
	}
	codes[code] = CodeInfo{code, sev, title}
	return code
}

// Severity returns the code's default severity.
func (c Code) Severity() Severity { return codes[c].Severity }

// Codes lists every registered code in order.
func Codes() []CodeInfo {
	out := make([]CodeInfo, 0, len(codes))
	for _, c := range codes {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b CodeInfo) int {
		if a.Code < b.Code {
			return -1
		}
		if a.Code > b.Code {
			return 1
		}
		return 0
	})
	return out
}

// The codes. Append new ones at the end; never renumber.
var (
	YAMLSyntax        = register("SF001", Error, "the file is not valid YAML")
	UnknownKey        = register("SF002", Error, "unknown key")
	WrongType         = register("SF003", Error, "a field has the wrong kind of value")
	MissingField      = register("SF004", Error, "a required field is missing")
	BadValue          = register("SF005", Error, "a field has a value that is not allowed")
	MissingStep       = register("SF006", Error, "a goto names a step that does not exist")
	Unreachable       = register("SF007", Warning, "a step can never be reached")
	DeadEnd           = register("SF008", Error, "a step has no way on")
	NoDefaultRoute    = register("SF009", Error, "next has no default route")
	EndlessLoop       = register("SF010", Error, "a loop with no question in it")
	MaybeUnset        = register("SF011", Error, "a variable may be used before it is saved")
	ExprSyntax        = register("SF012", Error, "an expression cannot be read")
	ExprType          = register("SF013", Error, "an expression has the wrong type")
	SensitiveLeak     = register("SF014", Error, "a sensitive value would be sent on SMS or Messenger")
	ChoiceCollision   = register("SF015", Error, "two choices can be answered the same way")
	TooLongSMS        = register("SF016", Error, "a message is too long for SMS")
	TooLongMessenger  = register("SF017", Error, "a message is too long for Messenger")
	QuickReplyTooLong = register("SF018", Warning, "a choice label is too long for a Messenger button")
	KeywordCollision  = register("SF019", Error, "a keyword is used twice")
	DuplicateKey      = register("SF020", Error, "a key is written twice")
	FileTooLarge      = register("SF021", Error, "the flow file is too large")
	LinkMessage       = register("SF022", Error, "the secure link message is unsafe or has no link")
	MissingLanguage   = register("SF023", Warning, "a message is missing a language")
	ReservedName      = register("SF024", Error, "a variable uses a reserved name")
	DuplicateFlow     = register("SF025", Error, "two files define the same flow")
	ConflictingFields = register("SF026", Error, "a step has fields that cannot go together")
	TooManyChoices    = register("SF027", Warning, "too many choices for Messenger buttons")
)
