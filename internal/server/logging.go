package server

import (
	"context"
	"log/slog"
	"regexp"
	"slices"
)

// Patterns of values that must never reach a log: phone numbers, e-mail
// addresses, dates (birth dates), US social security numbers. Code never
// logs message text; this is the second line of defence (SECURITY.md #19).
var redactions = []*regexp.Regexp{
	regexp.MustCompile(`[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`),
	regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`),
	regexp.MustCompile(`\b\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}\b`),
	regexp.MustCompile(`\+?\(?\d[\d\s().-]{6,}\d`),
}

// verbatim marks a value the service owns, such as its own listen
// address, that Redact would mangle (an IP address looks like a date).
// Never use it for anything that came from a request.
type verbatim string

// Redact replaces values that look like personal data with [redacted].
func Redact(s string) string {
	for _, re := range redactions {
		s = re.ReplaceAllString(s, "[redacted]")
	}
	return s
}

// redactingHandler passes every record through Redact: the message and
// every string attribute. Attributes given by With are kept as given and
// redacted only when a record is logged: a request's logger carries a few,
// and most requests log nothing.
type redactingHandler struct {
	next slog.Handler
	// attrs came from WithAttrs since the last group, not yet redacted.
	attrs []slog.Attr
}

// NewRedactingHandler wraps a handler so no log line can carry a phone
// number, an e-mail address, a date or an SSN.
func NewRedactingHandler(next slog.Handler) slog.Handler { return redactingHandler{next: next} }

func (h redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Redact(r.Message), r.PC)
	// The logger's own attributes come first, in the same groups as the
	// record's, as WithAttrs would have put them.
	for _, a := range h.attrs {
		out.AddAttrs(redactAttr(a))
	}
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Redact(v.String()))
	case slog.KindGroup:
		attrs := v.Group()
		out := make([]any, len(attrs))
		for i, g := range attrs {
			out[i] = redactAttr(g)
		}
		return slog.Group(a.Key, out...)
	case slog.KindAny:
		if s, ok := v.Any().(verbatim); ok {
			return slog.String(a.Key, string(s))
		}
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, Redact(err.Error()))
		}
		return slog.String(a.Key, Redact(v.String()))
	}
	return a
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	return redactingHandler{next: h.next, attrs: append(slices.Clip(h.attrs), attrs...)}
}

// WithGroup hands the attributes so far to the next handler, redacted,
// before the group opens: they stay outside it.
func (h redactingHandler) WithGroup(name string) slog.Handler {
	next := h.next
	if len(h.attrs) > 0 {
		out := make([]slog.Attr, len(h.attrs))
		for i, a := range h.attrs {
			out[i] = redactAttr(a)
		}
		next = next.WithAttrs(out)
	}
	return redactingHandler{next: next.WithGroup(name)}
}
