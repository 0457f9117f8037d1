package seal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
)

const (
	// formatVersion is the first byte of every sealed value.
	formatVersion = 1
	nonceSize     = 12
	tagSize       = 16
)

// ErrUnknownKey is returned (wrapped) by Open and Reseal when a value names a
// key id that is not in the Ring, for example because the key was removed from
// the key file before every value under it was re-sealed.
var ErrUnknownKey = errors.New("seal: unknown key")

// ErrOpen is returned (wrapped) by Open, Reseal and KeyIDOf when a value is
// not a well-formed sealed value, or does not authenticate: it was changed, or
// it was copied from another table, column or row.
var ErrOpen = errors.New("seal: cannot open value")

// An AD says where a sealed value is stored. It is bound into the GCM
// additional data, so a value opens only with the same Table, Column and Row
// it was sealed with; a ciphertext copied elsewhere fails with [ErrOpen].
// All three fields must be set: an empty field would quietly weaken the
// binding. Row is usually the row's primary key, so the store must know it
// before it seals (client-generated ids, not database sequences).
type AD struct {
	Table  string
	Column string
	Row    string
}

func (ad AD) check() error {
	switch {
	case ad.Table == "":
		return errors.New("seal: additional data has no table")
	case ad.Column == "":
		return errors.New("seal: additional data has no column")
	case ad.Row == "":
		return errors.New("seal: additional data has no row")
	}
	return nil
}

// appendAD appends the GCM additional data for a value with the given header.
// Binding the header too means the version byte and key id cannot be altered
// even in ways that would still select a working key.
func appendAD(dst, header []byte, ad AD) []byte {
	dst = append(dst, header...)
	for _, s := range [...]string{ad.Table, ad.Column, ad.Row} {
		dst = binary.AppendUvarint(dst, uint64(len(s)))
		dst = append(dst, s...)
	}
	return dst
}

// adBuffers holds scratch space for additional data. It cannot live on the
// stack because it is passed through the cipher.AEAD interface.
var adBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 128); return &b }}

// maxPooledAD stops one unusually long AD from pinning a large buffer in the
// pool.
const maxPooledAD = 1 << 10

// getAD returns a pooled buffer holding the additional data for header and ad.
// Hand it back with putAD once the AEAD call has returned.
func getAD(header []byte, ad AD) (*[]byte, []byte) {
	bp := adBuffers.Get().(*[]byte)
	return bp, appendAD((*bp)[:0], header, ad)
}

func putAD(bp *[]byte, a []byte) {
	if cap(a) <= maxPooledAD {
		*bp = a[:0]
		adBuffers.Put(bp)
	}
}

// Seal encrypts plaintext with the active key and binds it to ad. The result
// holds the key id and a fresh random nonce; see the package documentation for
// its layout. Seal fails only when ad is incomplete or the Ring has no keys.
func (r *Ring) Seal(plaintext []byte, ad AD) ([]byte, error) {
	st := r.state.Load()
	if st == nil {
		return nil, errNotReady
	}
	if err := ad.check(); err != nil {
		return nil, err
	}
	return sealWith(st.active, plaintext, ad), nil
}

func sealWith(k *key, plaintext []byte, ad AD) []byte {
	hdr := 2 + len(k.id)
	// One allocation: header, then the AEAD appends nonce, ciphertext and tag.
	out := make([]byte, hdr, hdr+nonceSize+len(plaintext)+tagSize)
	out[0] = formatVersion
	out[1] = byte(len(k.id))
	copy(out[2:], k.id)
	bp, a := getAD(out, ad)
	out = k.aead.Seal(out, nil, plaintext, a)
	putAD(bp, a)
	return out
}

// SealString is Seal for a string.
func (r *Ring) SealString(s string, ad AD) ([]byte, error) {
	return r.Seal([]byte(s), ad)
}

// Open decrypts a value made by Seal with the same ad. It uses the key named
// in the value, so values sealed before a rotation still open. It returns an
// error wrapping [ErrUnknownKey] when that key is not in the Ring, and one
// wrapping [ErrOpen] when the value is malformed, was changed, or was sealed
// for another table, column or row. The plaintext of an empty value is an
// empty, non-nil slice.
func (r *Ring) Open(sealed []byte, ad AD) ([]byte, error) {
	st := r.state.Load()
	if st == nil {
		return nil, errNotReady
	}
	if err := ad.check(); err != nil {
		return nil, err
	}
	_, pt, err := st.open(sealed, ad)
	return pt, err
}

// OpenString is Open for a value sealed from a string.
func (r *Ring) OpenString(sealed []byte, ad AD) (string, error) {
	pt, err := r.Open(sealed, ad)
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// open finds the value's key in st and decrypts it.
func (st *ringState) open(sealed []byte, ad AD) (*key, []byte, error) {
	id, err := parseHeader(sealed)
	if err != nil {
		return nil, nil, err
	}
	k := st.byID[string(id)] // this conversion does not allocate
	if k == nil {
		return nil, nil, fmt.Errorf("%w %q: the value was sealed with a key that is not in the key file", ErrUnknownKey, id)
	}
	hdr := 2 + len(id)
	bp, a := getAD(sealed[:hdr], ad)
	pt, err := k.aead.Open(nil, nil, sealed[hdr:], a)
	putAD(bp, a)
	if err != nil {
		// Name the place, never the content: table and column are schema
		// names; the row id is left out in case a caller uses a natural key.
		return nil, nil, fmt.Errorf("%w: value in %s.%s under key %q does not authenticate (changed, or copied from another row, column or table)",
			ErrOpen, ad.Table, ad.Column, k.id)
	}
	if pt == nil {
		pt = []byte{}
	}
	return k, pt, nil
}

// parseHeader checks the version and length of a sealed value and returns the
// key id bytes (a sub-slice of sealed).
func parseHeader(sealed []byte) ([]byte, error) {
	if len(sealed) < 2 {
		return nil, fmt.Errorf("%w: value is too short (%d bytes)", ErrOpen, len(sealed))
	}
	if sealed[0] != formatVersion {
		return nil, fmt.Errorf("%w: format version %d is not supported (want %d)", ErrOpen, sealed[0], formatVersion)
	}
	n := int(sealed[1])
	if len(sealed) < 2+n+nonceSize+tagSize {
		return nil, fmt.Errorf("%w: value is too short (%d bytes)", ErrOpen, len(sealed))
	}
	id := sealed[2 : 2+n]
	if !validID(id) {
		// Do not echo the bytes: they are not a key id we made.
		return nil, fmt.Errorf("%w: key id in value is malformed", ErrOpen)
	}
	return id, nil
}

// KeyIDOf returns the id of the key a sealed value was made with, without
// decrypting it and whether or not that key is in the Ring. A re-seal job uses
// it to find values not under [Ring.ActiveID]. It returns an error wrapping
// [ErrOpen] when the value is not well formed.
func (r *Ring) KeyIDOf(sealed []byte) (string, error) {
	id, err := parseHeader(sealed)
	if err != nil {
		return "", err
	}
	return string(id), nil
}

// Reseal opens a value and, when it is not under the active key, seals its
// plaintext again under the active key with the same ad. It returns the value
// to store and whether it changed; an unchanged value is returned as is. The
// value is always authenticated first, so a re-seal job never launders a
// changed or misplaced value into a valid one. Errors are those of Open.
func (r *Ring) Reseal(sealed []byte, ad AD) ([]byte, bool, error) {
	st := r.state.Load()
	if st == nil {
		return nil, false, errNotReady
	}
	if err := ad.check(); err != nil {
		return nil, false, err
	}
	k, pt, err := st.open(sealed, ad)
	if err != nil {
		return nil, false, err
	}
	if k == st.active {
		return sealed, false, nil
	}
	out := sealWith(st.active, pt, ad)
	clear(pt)
	return out, true, nil
}
