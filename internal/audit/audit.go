// Package audit holds the logic of safeflow's append-only, hash-chained audit
// log: what a record contains, how it is hashed and chained to the one before
// it, how a stored log is checked for edited, inserted, deleted or reordered
// records, and how it is exported. It knows nothing of storage; the stores
// persist records and hand them back in storage order for Verify.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"time"
)

// Actor types say who did something.
const (
	ActorSystem   = "system"   // the engine itself: timers, reloads, start-up
	ActorContact  = "contact"  // a patient writing on a channel or the secure page
	ActorAgent    = "agent"    // a clinic user of the dashboard
	ActorProvider = "provider" // an outside provider such as Twilio or Meta calling back
)

// Outcomes say how an action ended.
const (
	OutcomeOK     = "ok"
	OutcomeDenied = "denied"
	OutcomeFailed = "failed"
)

// Actions name what happened. They are stable strings: exports and the
// verification of old logs depend on them, so never rename one.
const (
	MessageIn      = "message.in"
	MessageOut     = "message.out"
	StepChange     = "step.change"
	LinkIssued     = "link.issued"
	LinkOpened     = "link.opened"
	LinkRedeemed   = "link.redeemed"
	LinkFailed     = "link.failed"
	LinkExpired    = "link.expired"
	LinkLocked     = "link.locked"
	Login          = "login"
	LoginFailed    = "login.failed"
	Logout         = "logout"
	TranscriptView = "transcript.view"
	Reveal         = "value.reveal"
	SwitchSecure   = "secure.switch"
	Takeover       = "takeover"
	Handoff        = "handoff"
	Export         = "export"
	RoleChange     = "role.change"
	FlowReload     = "flow.reload"
	KeyRotation    = "key.rotation"
	Reseal         = "key.reseal"
	AuditVerify    = "audit.verify"
)

// HashSize is the length in bytes of Record.Hash and Record.PrevHash.
const HashSize = sha256.Size

// Actor identifies who did something: its Type is one of the Actor* constants,
// ID is the user, conversation or provider id (never a phone number, PSID or
// other contact address), and Role is the dashboard role of an agent.
type Actor struct {
	Type string
	ID   string
	Role string
}

// A Record is one entry of the audit log.
//
// A Record describes an event, never its content: it must not hold message
// text, variable values, contact addresses, secure-link tokens, session ids,
// passwords or keys. Object and Conversation hold ids, Reason holds a short
// explanation written by the code (for example "token expired"), never text
// that came from a patient or an agent.
type Record struct {
	Seq          int64     // position in the log, from 1, without gaps
	Time         time.Time // UTC, truncated to microseconds so it survives a round trip through SQL
	Actor        Actor
	Source       string // IP address the request came from, or "" for internal events
	Action       string // one of the action constants, such as MessageIn
	Object       string // id of what was acted on: a message, link, user, flow or key id
	Conversation string // conversation id, or ""
	Channel      string // sms, messenger, secure, dashboard or ""
	Outcome      string // OutcomeOK, OutcomeDenied or OutcomeFailed
	Reason       string // why it was denied or failed, in a few words
	RequestID    string
	PrevHash     []byte // Hash of the record before, or HashSize zero bytes for the first
	Hash         []byte // ComputeHash of this record
}

// hashDomain is written first so that a record hash can never be confused
// with a SHA-256 computed for another purpose; its version changes if the
// encoding ever does.
const hashDomain = "safeflow/audit/v1"

// ComputeHash returns the SHA-256 of a canonical encoding of every field of r
// except Hash. Each field is written in a fixed order with its length in front,
// so moving bytes from one field into the next changes the hash. Time counts
// in whole microseconds in UTC, which is what storage keeps.
func (r *Record) ComputeHash() []byte {
	// Records are small: encoding into a stack buffer keeps hashing free of
	// allocations but the result.
	var buf [512]byte
	b := appendString(buf[:0], hashDomain)
	b = binary.BigEndian.AppendUint64(b, uint64(r.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(r.Time.UnixMicro()))
	for _, s := range [...]string{
		r.Actor.Type, r.Actor.ID, r.Actor.Role, r.Source, r.Action, r.Object,
		r.Conversation, r.Channel, r.Outcome, r.Reason, r.RequestID,
	} {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(len(r.PrevHash)))
	b = append(b, r.PrevHash...)
	sum := sha256.Sum256(b)
	return sum[:]
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// Chain links r after prev: it sets r.Seq to prev.Seq+1 (1 when prev is nil,
// meaning r starts the log), r.PrevHash to prev.Hash (HashSize zero bytes when
// prev is nil), normalises r.Time to UTC microseconds, and sets r.Hash. The
// caller fills in every other field first and must not change r afterwards.
func Chain(prev *Record, r *Record) {
	if prev == nil {
		r.Seq = 1
		r.PrevHash = make([]byte, HashSize)
	} else {
		r.Seq = prev.Seq + 1
		r.PrevHash = append([]byte(nil), prev.Hash...)
	}
	r.Time = r.Time.UTC().Truncate(time.Microsecond)
	r.Hash = r.ComputeHash()
}
