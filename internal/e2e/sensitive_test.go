package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/safeflow/safeflow/flows"
)

// secret is a sensitive value given in an e2e conversation: an answer typed
// on the secure page, or the value of a variable a flow marks sensitive.
type secret struct {
	value string
	what  string
}

// minSecretLen is the shortest value the scan looks for. Shorter answers
// ("no", "2") are ordinary words and digits of every message; the scan
// could not tell a leak from a coincidence.
const minSecretLen = 4

// ledger gathers, across every service the package starts, the sensitive
// values given and the messages the providers received, so that each
// value is looked for in every conversation's messages, not only its own.
var ledger struct {
	mu       sync.Mutex
	secrets  []ledgerSecret
	messages []ledgerMessage
}

type ledgerSecret struct {
	secret
	test string
}

type ledgerMessage struct {
	received
	test string
}

// ledgerSecrets records a test's sensitive values.
func ledgerSecrets(test string, secrets []secret) {
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for _, s := range secrets {
		ledger.secrets = append(ledger.secrets, ledgerSecret{s, test})
	}
}

// ledgerMessages records everything a service's providers received.
func ledgerMessages(test string, h *harness) {
	msgs := h.allDelivered()
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	for _, m := range msgs {
		ledger.messages = append(ledger.messages, ledgerMessage{m, test})
	}
}

// finalScan looks, once every test has run, for every sensitive value in
// every message any test's providers received (outages, refusals and
// status tests included), and returns the leaks.
func finalScan() []string {
	ledger.mu.Lock()
	defer ledger.mu.Unlock()
	return leaks(ledger.secrets, ledger.messages)
}

// secretPattern matches a value as a whole word (or words), ignoring case
// and runs of space.
func secretPattern(v string) *regexp.Regexp {
	words := strings.Fields(v)
	for i, w := range words {
		words[i] = regexp.QuoteMeta(w)
	}
	return regexp.MustCompile(`(?i)(?:^|[^\pL\pN])` + strings.Join(words, `\s+`) + `(?:$|[^\pL\pN])`)
}

// scannable reports whether a value is long enough to be looked for.
func scannable(v string) bool { return utf8.RuneCountInString(strings.TrimSpace(v)) >= minSecretLen }

// leaks returns, for each secret found in a message, a line naming both.
func leaks(secrets []ledgerSecret, msgs []ledgerMessage) []string {
	var out []string
	for _, s := range secrets {
		if !scannable(s.value) {
			continue
		}
		re := secretPattern(s.value)
		for _, m := range msgs {
			if re.MatchString(m.Text) || re.MatchString(strings.Join(m.Buttons, "\n")) {
				out = append(out, fmt.Sprintf("%s (%s, given in %s) appears in a %s message of %s: %q",
					quoteSecret(s.value), s.what, s.test, m.Channel, m.test, m.Text))
			}
		}
	}
	return out
}

// quoteSecret shows a leaked value in a failure. It is test data, not a
// patient's; the message must say what leaked to be of use.
func quoteSecret(v string) string { return fmt.Sprintf("%q", v) }

// scanOwn checks one test's messages against its own sensitive values.
func scanOwn(t *testing.T, secrets []secret, h *harness) {
	t.Helper()
	var ls []ledgerSecret
	for _, s := range secrets {
		ls = append(ls, ledgerSecret{s, t.Name()})
	}
	var ms []ledgerMessage
	for _, m := range h.allDelivered() {
		ms = append(ms, ledgerMessage{m, t.Name()})
	}
	for _, l := range leaks(ls, ms) {
		t.Errorf("sensitive value on an insecure channel: %s", l)
	}
}

// scanLedger checks every message received so far against every sensitive
// value given so far, and that the scan had something to scan.
func scanLedger(t *testing.T, set *flows.Set) {
	t.Helper()
	ledger.mu.Lock()
	secrets := append([]ledgerSecret(nil), ledger.secrets...)
	msgs := append([]ledgerMessage(nil), ledger.messages...)
	ledger.mu.Unlock()
	n := 0
	for _, s := range secrets {
		if scannable(s.value) {
			n++
		}
	}
	// The example tests type dozens of answers on the secure page; a scan
	// of a handful would mean the secure part was never reached.
	if n < 20 || len(msgs) < 100 {
		t.Errorf("the sensitive scan saw only %d sensitive values and %d messages; the conversations did not reach their secure parts", n, len(msgs))
	}
	for _, l := range leaks(secrets, msgs) {
		t.Errorf("sensitive value on an insecure channel: %s", l)
	}
	// A message that carries a secure link is some flow's link message,
	// with nothing but the link filled in.
	links := 0
	for _, m := range msgs {
		if !strings.Contains(m.Text, publicURL+"/s/") {
			continue
		}
		links++
		ok := false
		for _, fl := range set.Flows {
			ok = ok || linkMessage(fl).MatchString(m.Text)
		}
		if !ok {
			t.Errorf("a %s message of %s carries a secure link but is not a flow's link message: %q", m.Channel, m.test, m.Text)
		}
	}
	if links == 0 {
		t.Errorf("no SMS or Messenger message carried a secure link; the link check checked nothing")
	}
	t.Logf("link check: %d messages with a secure link", links)
	t.Logf("sensitive scan: %d values (%d long enough to scan) against %d SMS and Messenger messages", len(secrets), n, len(msgs))
}

func TestSecretPattern(t *testing.T) {
	tests := []struct {
		Label         string
		Secret, Text  string
		ExpectedMatch bool
	}{
		{Label: "Exact", Secret: "sore throat", Text: "sore throat", ExpectedMatch: true},
		{Label: "Inside A Sentence", Secret: "sore throat", Text: "You said: Sore  throat. OK?", ExpectedMatch: true},
		{Label: "Date", Secret: "03/14/1985", Text: "born 03/14/1985", ExpectedMatch: true},
		{Label: "Part Of A Longer Word", Secret: "pain", Text: "Spain is sunny", ExpectedMatch: false},
		{Label: "Different Words", Secret: "sore throat", Text: "a sore foot", ExpectedMatch: false},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			if got := secretPattern(tc.Secret).MatchString(tc.Text); got != tc.ExpectedMatch {
				t.Errorf("secretPattern(%q).MatchString(%q) = %v, want %v", tc.Secret, tc.Text, got, tc.ExpectedMatch)
			}
		})
	}
}

func TestLeaks(t *testing.T) {
	msg := func(text string, buttons ...string) ledgerMessage {
		return ledgerMessage{received{Channel: "sms", To: "+12015550100", Text: text, Buttons: buttons}, "T"}
	}
	tests := []struct {
		Label         string
		Secret        string
		Messages      []ledgerMessage
		ExpectedLeaks int
	}{
		{Label: "Found In Text", Secret: "lisinopril", Messages: []ledgerMessage{msg("ok"), msg("Refill of Lisinopril sent")}, ExpectedLeaks: 1},
		{Label: "Found In Quick Replies", Secret: "a sore knee", Messages: []ledgerMessage{msg("Pick one", "A sore knee", "Other")}, ExpectedLeaks: 1},
		{Label: "Found Twice", Secret: "102.5", Messages: []ledgerMessage{msg("102.5"), msg("you said 102.5 F")}, ExpectedLeaks: 2},
		{Label: "Too Short To Scan", Secret: "no", Messages: []ledgerMessage{msg("no")}, ExpectedLeaks: 0},
		{Label: "Absent", Secret: "metformin", Messages: []ledgerMessage{msg("Thanks!")}, ExpectedLeaks: 0},
	}
	for _, tc := range tests {
		t.Run(tc.Label, func(t *testing.T) {
			got := leaks([]ledgerSecret{{secret{tc.Secret, "an answer"}, "T"}}, tc.Messages)
			if len(got) != tc.ExpectedLeaks {
				t.Errorf("leaks found %d: %q, want %d", len(got), got, tc.ExpectedLeaks)
			}
		})
	}
}
