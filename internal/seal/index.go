package seal

import (
	"encoding/hex"
	"strings"
	"sync"
)

// indexBuffers holds scratch space for the HMAC input, which escapes through
// the hash.Hash interface and would otherwise be allocated on every call.
var indexBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 64); return &b }}

// Index returns the blind index of a contact address:
// HMAC-SHA256(index key, kind || 0x00 || normalized), 32 bytes. kind names the
// address space ("sms", "messenger") so that equal strings in two channels do
// not share an index; normalized must already be in canonical form (E.164 for
// a phone number, the page-scoped id for Messenger), since the index of two
// spellings of one number differ. The result depends only on the index key,
// which Rotate does not change, so stored indexes stay valid across rotations.
//
// Index panics if kind is empty or contains a zero byte (either would make the
// input ambiguous) or if the Ring has no keys: both are programming errors,
// not conditions a patient can cause.
func (r *Ring) Index(kind, normalized string) []byte {
	if kind == "" || strings.IndexByte(kind, 0) >= 0 {
		panic("seal: Index kind must be non-empty and contain no zero byte")
	}
	if r.indexKey == nil {
		panic(errNotReady.Error())
	}
	bp := indexBuffers.Get().(*[]byte)
	in := append((*bp)[:0], kind...)
	in = append(in, 0)
	in = append(in, normalized...)

	h := r.mac()
	h.Write(in)
	sum := h.Sum(make([]byte, 0, h.Size()))
	r.macs.Put(h)

	// The buffer held an address; clear it before it goes back to the pool.
	clear(in)
	if cap(in) <= maxPooledAD {
		*bp = in[:0]
		indexBuffers.Put(bp)
	}
	return sum
}

// IndexHex is Index in lower-case hexadecimal, for stores that keep the index
// as text.
func (r *Ring) IndexHex(kind, normalized string) string {
	return hex.EncodeToString(r.Index(kind, normalized))
}
