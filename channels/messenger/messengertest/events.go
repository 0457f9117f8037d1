package messengertest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"

	"github.com/safeflow/safeflow/channels/messenger"
)

// PageID is the Page in the payloads the builders make.
const PageID = "104356789012345"

// Timestamp is the time, in Unix milliseconds, the builders put on events.
const Timestamp int64 = 1717171717000

// Event is one entry[].messaging[] item of a Messenger webhook, shaped as
// Meta sends it. At most one of the pointer fields is set.
type Event struct {
	Sender    Party     `json:"sender"`
	Recipient Party     `json:"recipient"`
	Timestamp int64     `json:"timestamp"`
	Message   *Message  `json:"message,omitempty"`
	Postback  *Postback `json:"postback,omitempty"`
	Delivery  *Delivery `json:"delivery,omitempty"`
	Read      *Read     `json:"read,omitempty"`
	Reaction  *Reaction `json:"reaction,omitempty"`
}

// Party is a sender or recipient.
type Party struct {
	ID string `json:"id"`
}

// Message is a message event's body.
type Message struct {
	MID         string        `json:"mid"`
	Text        string        `json:"text,omitempty"`
	IsEcho      bool          `json:"is_echo,omitempty"`
	AppID       int64         `json:"app_id,omitempty"`
	QuickReply  *QuickReply   `json:"quick_reply,omitempty"`
	Attachments []Attachment  `json:"attachments,omitempty"`
	ReplyTo     *MessageReply `json:"reply_to,omitempty"`
}

// QuickReply is the quick reply a person tapped.
type QuickReply struct {
	Payload string `json:"payload"`
}

// MessageReply names the message a person replied to.
type MessageReply struct {
	MID string `json:"mid"`
}

// Attachment is a photo, sticker, file, audio, video or location.
type Attachment struct {
	Type    string            `json:"type"`
	Payload map[string]string `json:"payload"`
}

// Postback is a tapped button.
type Postback struct {
	MID     string `json:"mid,omitempty"`
	Title   string `json:"title"`
	Payload string `json:"payload"`
}

// Delivery reports messages delivered to the person.
type Delivery struct {
	MIDs      []string `json:"mids"`
	Watermark int64    `json:"watermark"`
}

// Read reports messages read up to a time.
type Read struct {
	Watermark int64 `json:"watermark"`
}

// Reaction is an emoji reaction to a message.
type Reaction struct {
	MID      string `json:"mid"`
	Action   string `json:"action"`
	Reaction string `json:"reaction"`
	Emoji    string `json:"emoji"`
}

func fromPerson(psid string) Event {
	return Event{Sender: Party{psid}, Recipient: Party{PageID}, Timestamp: Timestamp}
}

// TextMessage is a text message from psid.
func TextMessage(psid, mid, text string) Event {
	e := fromPerson(psid)
	e.Message = &Message{MID: mid, Text: text}
	return e
}

// QuickReplyMessage is a tap on a quick reply: the title as text, the
// payload as quick_reply.payload.
func QuickReplyMessage(psid, mid, title, payload string) Event {
	e := TextMessage(psid, mid, title)
	e.Message.QuickReply = &QuickReply{Payload: payload}
	return e
}

// AttachmentMessage is a message with one attachment and no text; the URL
// points at Meta's CDN and must never be fetched.
func AttachmentMessage(psid, mid, kind string) Event {
	e := fromPerson(psid)
	e.Message = &Message{MID: mid, Attachments: []Attachment{{Type: kind,
		Payload: map[string]string{"url": "https://scontent.xx.fbcdn.net/v/t1.15752-9/attachment.jpg"}}}}
	return e
}

// PostbackEvent is a tap on a button; mid may be empty, as in older
// payloads.
func PostbackEvent(psid, mid, title, payload string) Event {
	e := fromPerson(psid)
	e.Postback = &Postback{MID: mid, Title: title, Payload: payload}
	return e
}

// EchoMessage is the copy Meta sends of a message the Page sent to psid.
func EchoMessage(psid, mid, text string) Event {
	e := Event{Sender: Party{PageID}, Recipient: Party{psid}, Timestamp: Timestamp}
	e.Message = &Message{MID: mid, Text: text, IsEcho: true, AppID: 1517776481860111}
	return e
}

// DeliveryEvent reports mids delivered to psid.
func DeliveryEvent(psid string, mids ...string) Event {
	e := fromPerson(psid)
	e.Delivery = &Delivery{MIDs: mids, Watermark: Timestamp}
	return e
}

// ReadEvent reports that psid read the Page's messages.
func ReadEvent(psid string) Event {
	e := fromPerson(psid)
	e.Read = &Read{Watermark: Timestamp}
	return e
}

// ReactionEvent is psid reacting to message mid.
func ReactionEvent(psid, mid string) Event {
	e := fromPerson(psid)
	e.Reaction = &Reaction{MID: mid, Action: "react", Reaction: "love", Emoji: "\u2764"}
	return e
}

type entry struct {
	ID        string  `json:"id"`
	Time      int64   `json:"time"`
	Messaging []Event `json:"messaging"`
}

type body struct {
	Object string  `json:"object"`
	Entry  []entry `json:"entry"`
}

// Body is a webhook body with one entry per event, the way Meta batches
// events of one Page.
func Body(events ...Event) []byte {
	entries := make([][]Event, len(events))
	for i, e := range events {
		entries[i] = []Event{e}
	}
	return Batch(entries...)
}

// Batch is a webhook body with one entry per argument, each holding
// several events.
func Batch(entries ...[]Event) []byte {
	b := body{Object: "page"}
	for _, evs := range entries {
		b.Entry = append(b.Entry, entry{ID: PageID, Time: Timestamp, Messaging: evs})
	}
	out, err := json.Marshal(b)
	if err != nil {
		panic(err) // the types above always encode
	}
	return out
}

// SignedEvent returns a POST of body to the webhook path, signed the way
// Meta signs it. The HMAC is computed here rather than with
// messenger.Signature, so tests check the handler against a second
// implementation.
func SignedEvent(appSecret string, body []byte) *http.Request {
	mac := hmac.New(sha256.New, []byte(appSecret))
	mac.Write(body)
	r := httptest.NewRequest(http.MethodPost, messenger.Path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set(messenger.SignatureHeader, "sha256="+hex.EncodeToString(mac.Sum(nil)))
	return r
}

// VerificationRequest is Meta's GET to check the callback URL.
func VerificationRequest(mode, token, challenge string) *http.Request {
	q := url.Values{}
	if mode != "" {
		q.Set("hub.mode", mode)
	}
	if token != "" {
		q.Set("hub.verify_token", token)
	}
	if challenge != "" {
		q.Set("hub.challenge", challenge)
	}
	return httptest.NewRequest(http.MethodGet, messenger.Path+"?"+q.Encode(), nil)
}
