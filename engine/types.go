// Package engine runs conversations: it applies each inbound message to its
// conversation's flow, evaluates guards, routes sensitive steps to the secure
// channel, and produces addressed outbound messages, all in one store
// transaction per message. It knows nothing of HTTP, SQL or providers.
package engine

import (
	"time"
)

// Channel is where a message travels.
type Channel string

// The channels. SMS and Messenger are origin channels: the carrier or
// Facebook can read them. Secure is safeflow's own web chat.
const (
	SMS       Channel = "sms"
	Messenger Channel = "messenger"
	Secure    Channel = "secure"
)

// IsOrigin reports whether c is a channel a conversation can start on.
func (c Channel) IsOrigin() bool { return c == SMS || c == Messenger }

// Inbound is one message from a contact, as a channel adapter hands it over.
type Inbound struct {
	Channel Channel
	// Address is the contact's E.164 number or Messenger PSID; empty on the
	// secure channel, where ConversationID names the conversation instead.
	Address        string
	ConversationID string
	Text           string
	// Payload is a quick-reply or button payload: the chosen value.
	Payload string
	// ProviderID is the provider's message id (MessageSid, mid); a message
	// whose id was handled before is ignored.
	ProviderID string
	// Source is the sender's network address, for the audit log.
	Source    string
	RequestID string
}

// Outbound is one message to a contact, addressed to a channel.
type Outbound struct {
	ID             int64
	ConversationID string
	ContactID      string
	Channel        Channel
	// Address is the recipient on SMS and Messenger; empty on Secure.
	Address string
	Text    string
	// Choices are offered as quick replies on Messenger and buttons on the
	// secure page; on SMS they are already written into Text.
	Choices []OutChoice
	// Input is the answer type the message asks for ("date", "number"...),
	// so the secure page can show a fitting input.
	Input string
	// Link is true for the message that carries a secure link.
	Link bool
	// Sensitive is true for anything sent in a sensitive step.
	Sensitive bool
	// System marks messages safeflow itself writes (opt-out, link pointers).
	System bool
}

// OutChoice is one offered answer.
type OutChoice struct {
	Title   string
	Payload string
}

// Status is where a conversation stands.
type Status string

// The statuses.
const (
	Active    Status = "active"  // waiting for an answer, or moving on
	Waiting   Status = "waiting" // paused by a `wait:` step until its timer
	HandedOff Status = "handoff" // an agent has it; the bot stays quiet
	Ended     Status = "ended"
)

// SecureState says whether the secure channel is in use.
type SecureState string

// The secure states.
const (
	SecureNone    SecureState = ""        // not in a sensitive segment
	SecurePending SecureState = "pending" // link sent, page not opened yet
	SecureOpen    SecureState = "open"    // the patient is on the secure page
)

// Contact is a person the clinic talks to on one channel.
type Contact struct {
	ID       string
	Channel  Channel
	Address  string
	Language string
	OptedOut bool
}

// Conversation is one run of one flow with one contact.
type Conversation struct {
	ID        string
	ContactID string
	FlowID    string
	// FlowHash pins the flow version, so a conversation in flight keeps a
	// consistent definition across reloads and nodes.
	FlowHash string
	Step     string
	Status   Status
	// Vars holds saved answers and set values, typed per the flow.
	Vars   map[string]any
	Origin Channel
	// Address is the contact's address on the origin channel.
	Address  string
	Language string
	// Attempts counts failed answers to the current question.
	Attempts int
	Secure   SecureState
	// StaySecure keeps the conversation on the secure page until it ends
	// (an agent moved it there, or the flow says `return: stay`).
	StaySecure bool
	// PromptSent is false while a sensitive step waits for the secure page
	// to open before it asks.
	PromptSent bool
	// LinkSentAt and LinkResends rate-limit re-sending the link.
	LinkSentAt  time.Time
	LinkResends int
	Queue       string
	// TimerDue is when the earliest pending timer fires; zero when none.
	TimerDue time.Time
	Created  time.Time
	Updated  time.Time
}

// TranscriptLine is one message of a conversation's transcript.
type TranscriptLine struct {
	ConversationID string
	At             time.Time
	// Inbound is true for the contact's messages.
	Inbound   bool
	Channel   Channel
	Text      string
	Step      string
	Sensitive bool
}

// Event is an action worth recording in the audit log. It never holds
// message content, tokens or session ids.
type Event struct {
	// Actor is who acted: "contact", "agent" or "system"; ActorID names them.
	Actor          string
	ActorID        string
	Action         string
	Object         string
	ConversationID string
	Channel        Channel
	Outcome        string
	Reason         string
	Source         string
	RequestID      string
	At             time.Time
}

// Event actions the engine records.
const (
	EventMessageIn    = "message.in"
	EventMessageOut   = "message.out"
	EventStepChange   = "step.change"
	EventLinkIssued   = "link.issued"
	EventRefused      = "message.refused"
	EventExprError    = "expr.error"
	EventHandoff      = "handoff"
	EventHandBack     = "conversation.handback"
	EventEnded        = "conversation.ended"
	EventOptOut       = "contact.optout"
	EventOptIn        = "contact.optin"
	EventSwitchSecure = "secure.switch"
	EventGaveUp       = "ask.gave_up"
	EventTimeout      = "ask.timeout"
)

// TimerKind says what a timer does when due.
type TimerKind string

// The timer kinds.
const (
	TimerReminder TimerKind = "reminder"
	TimerTimeout  TimerKind = "timeout"
	TimerWait     TimerKind = "wait"
)

// Timer wakes a conversation at a time. A timer whose Step no longer matches
// the conversation is stale and does nothing.
type Timer struct {
	ID             int64
	ConversationID string
	Kind           TimerKind
	Step           string
	Due            time.Time
}

// SecureLink is an issued one-time link; only the token's hash is kept.
type SecureLink struct {
	TokenHash      []byte
	ConversationID string
	ContactID      string
	Created        time.Time
	Expires        time.Time
}
