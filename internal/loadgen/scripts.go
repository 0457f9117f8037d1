package loadgen

import (
	"fmt"
	"slices"
	"strings"
)

// A Script is one conversation a simulated contact has with an example flow,
// from its first message to the flow's end, on SMS only. Sensitive steps
// are answered on the secure page, which a load generator cannot reach by
// SMS, so the scripts follow paths without them.
type Script struct {
	// Name identifies the script on the command line.
	Name string
	// Flow is the id of the flow the conversation runs.
	Flow string
	// Start is set when the clinic starts the flow (a reminder or a
	// survey) rather than the contact's first message.
	Start *Start
	// Turns are the contact's messages, in order.
	Turns []Turn
	// Final is a piece of the last reply; the conversation reached its
	// planned end when the last reply holds it.
	Final string
}

// Start is how the clinic starts a conversation.
type Start struct {
	// Step is where the flow starts; empty means the flow's start step.
	Step string
	// Vars are the values the clinic fills in, as a clinic writes them
	// ("2030-12-03", "2:30 pm"); they are read as the flow declares them.
	Vars map[string]string
	// Replies is how many messages the start sends the contact.
	Replies int
}

// Turn is one message from the contact.
type Turn struct {
	Text string
	// Replies is how many messages the flow sends back to this one.
	Replies int
}

// Messages returns how many webhooks one run of the script sends.
func (s Script) Messages() int { return len(s.Turns) }

// Replies returns how many messages the flow sends the contact over one
// run of the script, the clinic's start included.
func (s Script) Replies() int {
	n := 0
	if s.Start != nil {
		n = s.Start.Replies
	}
	for _, t := range s.Turns {
		n += t.Replies
	}
	return n
}

// ExampleScripts returns conversations with the flows in examples/ that go
// through several questions to an end or a handoff without a sensitive
// step.
func ExampleScripts() []Script {
	return []Script{
		{
			// Five questions, the date read and an age computed from it.
			Name: "intake-minor",
			Flow: "new-patient-intake",
			Turns: []Turn{
				{"INTAKE", 2}, {"yes", 1}, {"Sam", 1}, {"Lee", 1}, {"6/1/2012", 1},
			},
			Final: "Patients under 18",
		},
		{
			// Three unreadable dates: retries, then a person takes over.
			Name: "intake-callback",
			Flow: "new-patient-intake",
			Turns: []Turn{
				{"NEW", 2}, {"y", 1}, {"Ana", 1}, {"Lee", 1}, {"soon", 1}, {"the 45th", 1}, {"no idea", 1},
			},
			Final: "front desk will call you",
		},
		{
			// A reminder the clinic sends; the patient keeps the visit.
			Name: "appointment-kept",
			Flow: "appointment-confirmation",
			Start: &Start{
				Vars: map[string]string{
					"appt_date": "2030-12-03", "appt_time": "2:30 pm",
					"doctor": "Dr. Lee", "clinic_phone": "201-555-0100",
				},
				Replies: 1,
			},
			Turns: []Turn{{"1", 1}, {"x", 1}, {"no", 1}},
			Final: "stays booked",
		},
		{
			// The survey after its two-hour pause: rating, recommendation,
			// no comment, a request for a review.
			Name:  "survey-review",
			Flow:  "post-visit-survey",
			Start: &Start{Step: "ask-rating", Replies: 2},
			Turns: []Turn{{"5", 1}, {"yes", 1}, {"no", 1}},
			Final: "a review helps",
		},
	}
}

// SelectScripts returns the scripts of all named in names, in the order
// given; no names selects all of them.
func SelectScripts(all []Script, names []string) ([]Script, error) {
	if len(names) == 0 {
		return all, nil
	}
	out := make([]Script, 0, len(names))
	for _, name := range names {
		i := slices.IndexFunc(all, func(s Script) bool { return s.Name == name })
		if i < 0 {
			known := make([]string, len(all))
			for j, s := range all {
				known[j] = s.Name
			}
			return nil, fmt.Errorf("no script %q: choose from %s", name, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}
