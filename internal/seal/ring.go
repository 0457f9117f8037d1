package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// keySize is the length in bytes of every secret: AES-256 keys and the
// HMAC-SHA256 blind-index key.
const keySize = 32

// maxIDLen bounds key ids. The sealed format allows 255; a lower limit keeps
// ids short in every stored value and readable in the key file.
const maxIDLen = 64

// errNotReady is returned when a method is called on a Ring that was not made
// by Generate, Load or Parse.
var errNotReady = errors.New("seal: ring has no keys (make it with Generate, Load or Parse)")

// A Ring holds the encryption keys, which one is active, and the blind-index
// key. Make one with [Generate], [Load] or [Parse]; the zero Ring has no keys.
//
// A Ring is safe for concurrent use. Seal, Open and Index take no lock: the
// keys live in an immutable snapshot that [Ring.Rotate] replaces atomically.
// A Ring must not be copied after first use.
type Ring struct {
	// mu serialises writers (Rotate); readers only load state.
	mu    sync.Mutex
	state atomic.Pointer[ringState]

	// indexKey never changes for the life of a Ring, so the pool of HMAC
	// states built from it needs no invalidation.
	indexKey []byte
	macs     sync.Pool // of hash.Hash, keyed with indexKey
}

// ringState is one immutable version of the key set.
type ringState struct {
	keys   []*key          // in key file order; Rotate appends
	byID   map[string]*key // same keys, for Open
	active *key
}

// key is one encryption key with its AEAD, built once so that Seal and Open
// do not repeat the AES key schedule and GCM table set-up on every call.
type key struct {
	id      string
	created time.Time
	secret  []byte
	aead    cipher.AEAD
}

// newKey builds a key and its AEAD. The AEAD prepends a fresh random 96-bit
// nonce on Seal and reads it back on Open, which is exactly the
// nonce|ciphertext|tag tail of the sealed format.
func newKey(id string, created time.Time, secret []byte) (*key, error) {
	block, err := aes.NewCipher(secret)
	if err != nil {
		return nil, fmt.Errorf("seal: key %q: %w", id, err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("seal: key %q: %w", id, err)
	}
	return &key{id: id, created: created, secret: secret, aead: aead}, nil
}

// newRing assembles a Ring from checked parts.
func newRing(keys []*key, active *key, indexKey []byte) *Ring {
	r := &Ring{indexKey: indexKey}
	r.macs.New = func() any { return hmac.New(sha256.New, r.indexKey) }
	r.state.Store(newState(keys, active))
	return r
}

func newState(keys []*key, active *key) *ringState {
	byID := make(map[string]*key, len(keys))
	for _, k := range keys {
		byID[k.id] = k
	}
	return &ringState{keys: keys, byID: byID, active: active}
}

// Generate returns a new Ring with one encryption key, "k1", which is active,
// and a new blind-index key, all from crypto/rand.
func Generate() (*Ring, error) {
	secret, err := randomSecret()
	if err != nil {
		return nil, err
	}
	indexKey, err := randomSecret()
	if err != nil {
		return nil, err
	}
	k, err := newKey("k1", now(), secret)
	if err != nil {
		return nil, err
	}
	return newRing([]*key{k}, k, indexKey), nil
}

// Rotate adds a new encryption key from crypto/rand and makes it active, so
// that new values are sealed with it while values under older keys still
// open. It returns the new key's id: "k" followed by one more than the highest
// number among existing ids of that form. The blind-index key is not changed.
// Rotate changes only the Ring in memory; call [Ring.Save] to keep the key.
func (r *Ring) Rotate() (newID string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.state.Load()
	if st == nil {
		return "", errNotReady
	}
	secret, err := randomSecret()
	if err != nil {
		return "", err
	}
	id := nextID(st.keys)
	k, err := newKey(id, now(), secret)
	if err != nil {
		return "", err
	}
	keys := make([]*key, len(st.keys), len(st.keys)+1)
	copy(keys, st.keys)
	keys = append(keys, k)
	r.state.Store(newState(keys, k))
	return id, nil
}

// nextID returns "k<n>" with n one more than the largest such n in use.
func nextID(keys []*key) string {
	highest := 0
	for _, k := range keys {
		digits, ok := strings.CutPrefix(k.id, "k")
		if !ok {
			continue
		}
		if n, err := strconv.Atoi(digits); err == nil && n > highest {
			highest = n
		}
	}
	return "k" + strconv.Itoa(highest+1)
}

// ActiveID returns the id of the key that new values are sealed with, or ""
// for a Ring with no keys.
func (r *Ring) ActiveID() string {
	st := r.state.Load()
	if st == nil {
		return ""
	}
	return st.active.id
}

// KeyIDs returns the ids of all encryption keys in key file order; Rotate
// appends, so a ring managed by Rotate lists them oldest first.
func (r *Ring) KeyIDs() []string {
	st := r.state.Load()
	if st == nil {
		return nil
	}
	ids := make([]string, len(st.keys))
	for i, k := range st.keys {
		ids[i] = k.id
	}
	return ids
}

// String describes the Ring without any key material, so that printing a Ring
// by mistake (in a log line or a %v) cannot leak a secret.
func (r *Ring) String() string {
	st := r.state.Load()
	if st == nil {
		return "seal.Ring(empty)"
	}
	return fmt.Sprintf("seal.Ring(active=%s, keys=%d)", st.active.id, len(st.keys))
}

// GoString is String, so that %#v does not print the secrets either.
func (r *Ring) GoString() string { return r.String() }

// mac returns an HMAC state keyed with the index key, reset and ready to use.
// Give it back with r.macs.Put.
func (r *Ring) mac() hash.Hash {
	h := r.macs.Get().(hash.Hash)
	h.Reset()
	return h
}

func randomSecret() ([]byte, error) {
	b := make([]byte, keySize)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("seal: read random key: %w", err)
	}
	return b, nil
}

// now is the creation time recorded for new keys: UTC, whole seconds, as the
// key file stores it.
func now() time.Time { return time.Now().UTC().Truncate(time.Second) }

// validID reports whether id may be used as a key id. The character set keeps
// ids safe to print in errors and logs and to store in the sealed header.
func validID[T string | []byte](id T) bool {
	if len(id) == 0 || len(id) > maxIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}
