package seal_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/safeflow/safeflow/internal/seal"
)

func newRing(t testing.TB) *seal.Ring {
	t.Helper()
	r, err := seal.Generate()
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return r
}

// ringSecrets returns every secret in r, read back from a saved key file.
func ringSecrets(t testing.TB, r *seal.Ring) [][]byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keys.json")
	if err := r.Save(path); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		Keys []struct {
			Secret []byte `json:"secret"`
		} `json:"keys"`
		IndexKey []byte `json:"index_key"`
	}
	if err := json.Unmarshal(data, &kf); err != nil {
		t.Fatal(err)
	}
	out := [][]byte{kf.IndexKey}
	for _, k := range kf.Keys {
		out = append(out, k.Secret)
	}
	return out
}

var adMsg = seal.AD{Table: "messages", Column: "body", Row: "0b6c1f1e-row"}

func TestGenerate(t *testing.T) {
	a, b := newRing(t), newRing(t)
	if a.ActiveID() != "k1" || !slices.Equal(a.KeyIDs(), []string{"k1"}) {
		t.Errorf("Generate: active %q, ids %q; want k1, [k1]", a.ActiveID(), a.KeyIDs())
	}
	sa, sb := ringSecrets(t, a), ringSecrets(t, b)
	if len(sa) != 2 {
		t.Fatalf("generated ring has %d secrets, want an index key and one encryption key", len(sa))
	}
	if bytes.Equal(sa[0], sa[1]) {
		t.Error("index key equals the encryption key")
	}
	for i := range sa {
		if len(sa[i]) != 32 || bytes.Equal(sa[i], sb[i]) || bytes.Equal(sa[i], make([]byte, 32)) {
			t.Errorf("secret %d is not 32 fresh random bytes", i)
		}
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := newRing(t)
	tests := []struct {
		name      string
		plaintext []byte
	}{
		{"Empty", []byte{}},
		{"Short", []byte("yes")},
		{"Body200", bytes.Repeat([]byte("I have a rash on my arm. "), 8)},
		{"BinaryWithZeros", []byte{0, 1, 0, 255, 0}},
		{"Unicode", []byte("Dolor de cabeza — 頭痛 🤕")},
		{"Large", bytes.Repeat([]byte{0xab}, 1<<20)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := r.Seal(tt.plaintext, adMsg)
			if err != nil {
				t.Fatalf("Seal: %v", err)
			}
			// Layout: version, id length, id, 12-byte nonce, ciphertext, 16-byte tag.
			if want := 2 + 2 + 12 + len(tt.plaintext) + 16; len(sealed) != want {
				t.Errorf("sealed length = %d, want %d", len(sealed), want)
			}
			if sealed[0] != 1 || sealed[1] != 2 || string(sealed[2:4]) != "k1" {
				t.Errorf("sealed header = % x, want 01 02 'k1'", sealed[:4])
			}
			if len(tt.plaintext) >= 3 && bytes.Contains(sealed, tt.plaintext) {
				t.Error("sealed value contains the plaintext")
			}
			got, err := r.Open(sealed, adMsg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if got == nil || !bytes.Equal(got, tt.plaintext) {
				t.Errorf("Open = %q (nil=%t), want %q", got, got == nil, tt.plaintext)
			}
			again, err := r.Seal(tt.plaintext, adMsg)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(sealed[4:16], again[4:16]) {
				t.Error("two Seals used the same nonce")
			}
		})
	}
}

func TestSealStringOpenString(t *testing.T) {
	r := newRing(t)
	sealed, err := r.SealString("+15551234567", seal.AD{Table: "contacts", Column: "address", Row: "c-1"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.OpenString(sealed, seal.AD{Table: "contacts", Column: "address", Row: "c-1"})
	if err != nil || got != "+15551234567" {
		t.Errorf("OpenString = %q, %v", got, err)
	}
	if _, err := r.OpenString(sealed, seal.AD{Table: "contacts", Column: "address", Row: "c-2"}); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("OpenString in another row: err = %v, want ErrOpen", err)
	}
}

// TestOpenKnownAnswer opens a value made by an independent implementation
// (Python's cryptography AESGCM, with the documented header and additional
// data), which pins the sealed format and the AD encoding.
func TestOpenKnownAnswer(t *testing.T) {
	r, err := seal.Parse([]byte(`{"version":1,"keys":[{"id":"k1","created":"2025-01-02T03:04:05Z",
		"secret":"ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4Q="}],"active":"k1",
		"index_key":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}`))
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := hex.DecodeString("01026b310102030405060708090a0b0cb6bb65acff05971499eeaaed9a2a711c4e430215d0ff0ae1fdb49162f6d312d61d4a68b9ac")
	got, err := r.OpenString(sealed, adMsg)
	if err != nil || got != "Hello from the clinic" {
		t.Errorf("Open(known value) = %q, %v; want %q", got, err, "Hello from the clinic")
	}
}

func TestOpenFailsElsewhere(t *testing.T) {
	r := newRing(t)
	const secret = "my HIV test result"
	sealed, err := r.SealString(secret, adMsg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ad   seal.AD
	}{
		{"OtherRow", seal.AD{Table: "messages", Column: "body", Row: "another-row"}},
		{"OtherColumn", seal.AD{Table: "messages", Column: "subject", Row: adMsg.Row}},
		{"OtherTable", seal.AD{Table: "variables", Column: "body", Row: adMsg.Row}},
		// Same concatenation, other boundaries: only length prefixes tell them apart.
		{"ShiftedTableColumn", seal.AD{Table: "messagesb", Column: "ody", Row: adMsg.Row}},
		{"ShiftedColumnRow", seal.AD{Table: "messages", Column: "body0", Row: "b6c1f1e-row"}},
		{"RowCase", seal.AD{Table: "messages", Column: "body", Row: strings.ToUpper(adMsg.Row)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Open(sealed, tt.ad)
			if !errors.Is(err, seal.ErrOpen) {
				t.Fatalf("Open with %+v = %q, %v; want ErrOpen", tt.ad, got, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q contains the plaintext", err)
			}
		})
	}
}

func TestOpenFailsWhenTampered(t *testing.T) {
	r := newRing(t)
	const secret = "date of birth 1980-02-03"
	sealed, err := r.SealString(secret, adMsg)
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, what string, v []byte) {
		t.Helper()
		got, err := r.Open(v, adMsg)
		if err == nil {
			t.Fatalf("%s: Open succeeded with %q", what, got)
		}
		if !errors.Is(err, seal.ErrOpen) && !errors.Is(err, seal.ErrUnknownKey) {
			t.Errorf("%s: err = %v, want ErrOpen or ErrUnknownKey", what, err)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q contains the plaintext", what, err)
		}
	}
	t.Run("EveryByteFlipped", func(t *testing.T) {
		for i := range sealed {
			for _, mask := range []byte{0x01, 0x80} {
				v := slices.Clone(sealed)
				v[i] ^= mask
				check(t, fmt.Sprintf("byte %d ^ %#x", i, mask), v)
			}
		}
	})
	t.Run("Truncated", func(t *testing.T) {
		for n := range len(sealed) {
			check(t, fmt.Sprintf("first %d bytes", n), sealed[:n:n])
		}
	})
	t.Run("Extended", func(t *testing.T) {
		check(t, "one byte appended", append(slices.Clone(sealed), 0))
	})
	t.Run("Untouched", func(t *testing.T) {
		if got, err := r.OpenString(sealed, adMsg); err != nil || got != secret {
			t.Errorf("Open of the original value = %q, %v", got, err)
		}
	})
}

func TestOpenMalformed(t *testing.T) {
	r := newRing(t)
	tail := make([]byte, 12+16)
	tests := []struct {
		name  string
		value []byte
		want  string
	}{
		{"Nil", nil, "value is too short (0 bytes)"},
		{"OneByte", []byte{1}, "value is too short (1 bytes)"},
		{"VersionZero", append([]byte{0, 2, 'k', '1'}, tail...), "format version 0 is not supported"},
		{"VersionTwo", append([]byte{2, 2, 'k', '1'}, tail...), "format version 2 is not supported"},
		{"IDLongerThanValue", append([]byte{1, 200, 'k', '1'}, tail...), "value is too short"},
		{"NoRoomForTag", append([]byte{1, 2, 'k', '1'}, tail[:27]...), "value is too short"},
		{"EmptyID", append([]byte{1, 0}, tail...), "key id in value is malformed"},
		{"BinaryID", append([]byte{1, 2, 0xff, 0x00}, tail...), "key id in value is malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Open(tt.value, adMsg)
			if !errors.Is(err, seal.ErrOpen) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: err = %v, want ErrOpen containing %q", err, tt.want)
			}
			if _, err := r.KeyIDOf(tt.value); !errors.Is(err, seal.ErrOpen) {
				t.Errorf("KeyIDOf: err = %v, want ErrOpen", err)
			}
			if _, _, err := r.Reseal(tt.value, adMsg); !errors.Is(err, seal.ErrOpen) {
				t.Errorf("Reseal: err = %v, want ErrOpen", err)
			}
		})
	}
}

func TestOpenUnknownKey(t *testing.T) {
	writer := newRing(t)
	if _, err := writer.Rotate(); err != nil {
		t.Fatal(err)
	}
	sealed, err := writer.SealString("under k2", adMsg)
	if err != nil {
		t.Fatal(err)
	}
	reader := newRing(t) // has only its own k1
	_, err = reader.Open(sealed, adMsg)
	if !errors.Is(err, seal.ErrUnknownKey) || !strings.Contains(err.Error(), `"k2"`) {
		t.Errorf("Open: err = %v, want ErrUnknownKey naming k2", err)
	}
	if _, _, err := reader.Reseal(sealed, adMsg); !errors.Is(err, seal.ErrUnknownKey) {
		t.Errorf("Reseal: err = %v, want ErrUnknownKey", err)
	}
	if id, err := reader.KeyIDOf(sealed); err != nil || id != "k2" {
		t.Errorf("KeyIDOf = %q, %v; want k2 even though the ring lacks it", id, err)
	}

	// A key with the right id but another secret does not open it either.
	other := newRing(t)
	old, err := other.SealString("under another k1", adMsg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reader.Open(old, adMsg); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Open with a different k1: err = %v, want ErrOpen", err)
	}
}

func TestADRequired(t *testing.T) {
	r := newRing(t)
	good, err := r.Seal([]byte("x"), adMsg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ad   seal.AD
		want string
	}{
		{"NoTable", seal.AD{Column: "body", Row: "r"}, "no table"},
		{"NoColumn", seal.AD{Table: "messages", Row: "r"}, "no column"},
		{"NoRow", seal.AD{Table: "messages", Column: "body"}, "no row"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := r.Seal([]byte("x"), tt.ad); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Seal: err = %v, want %q", err, tt.want)
			}
			if _, err := r.Open(good, tt.ad); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Open: err = %v, want %q", err, tt.want)
			}
			if _, _, err := r.Reseal(good, tt.ad); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Reseal: err = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRotateAndReseal(t *testing.T) {
	r := newRing(t)
	old, err := r.SealString("before rotation", adMsg)
	if err != nil {
		t.Fatal(err)
	}

	id, err := r.Rotate()
	if err != nil || id != "k2" {
		t.Fatalf("Rotate = %q, %v; want k2", id, err)
	}
	if r.ActiveID() != "k2" || !slices.Equal(r.KeyIDs(), []string{"k1", "k2"}) {
		t.Fatalf("after Rotate: active %q, ids %q", r.ActiveID(), r.KeyIDs())
	}

	if got, err := r.OpenString(old, adMsg); err != nil || got != "before rotation" {
		t.Errorf("old value after Rotate = %q, %v", got, err)
	}
	fresh, err := r.SealString("after rotation", adMsg)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := r.KeyIDOf(fresh); err != nil || id != "k2" {
		t.Errorf("KeyIDOf(new value) = %q, %v; want k2", id, err)
	}
	if id, err := r.KeyIDOf(old); err != nil || id != "k1" {
		t.Errorf("KeyIDOf(old value) = %q, %v; want k1", id, err)
	}

	moved, changed, err := r.Reseal(old, adMsg)
	if err != nil || !changed {
		t.Fatalf("Reseal(old) changed=%t, err=%v; want changed", changed, err)
	}
	if id, _ := r.KeyIDOf(moved); id != "k2" {
		t.Errorf("resealed value is under %q, want k2", id)
	}
	if got, err := r.OpenString(moved, adMsg); err != nil || got != "before rotation" {
		t.Errorf("resealed value opens as %q, %v", got, err)
	}
	if _, err := r.Open(moved, seal.AD{Table: "messages", Column: "body", Row: "other"}); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("resealed value opened in another row: err = %v", err)
	}

	same, changed, err := r.Reseal(fresh, adMsg)
	if err != nil || changed || !bytes.Equal(same, fresh) {
		t.Errorf("Reseal(value under active key) changed=%t err=%v, want it returned unchanged", changed, err)
	}

	// Reseal authenticates before moving: a value from another row is refused.
	if _, _, err := r.Reseal(old, seal.AD{Table: "messages", Column: "body", Row: "other"}); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Reseal in another row: err = %v, want ErrOpen", err)
	}
	tampered := slices.Clone(fresh)
	tampered[len(tampered)-1] ^= 1
	if _, _, err := r.Reseal(tampered, adMsg); !errors.Is(err, seal.ErrOpen) {
		t.Errorf("Reseal of a changed value under the active key: err = %v, want ErrOpen", err)
	}

	if id, err := r.Rotate(); err != nil || id != "k3" {
		t.Errorf("second Rotate = %q, %v; want k3", id, err)
	}
	if got, err := r.OpenString(old, adMsg); err != nil || got != "before rotation" {
		t.Errorf("k1 value after two rotations = %q, %v", got, err)
	}
}

func TestRotateIDsSkipForeignNames(t *testing.T) {
	f := validFile()
	keyAt(f, 0)["id"] = "k7"
	keyAt(f, 1)["id"] = "prod-2025"
	f["active"] = "prod-2025"
	r, err := seal.Parse(encode(t, f))
	if err != nil {
		t.Fatal(err)
	}
	if id, err := r.Rotate(); err != nil || id != "k8" {
		t.Errorf("Rotate = %q, %v; want k8 (one past the highest kN)", id, err)
	}
}

// TestConcurrentSealOpenRotate runs under -race to show Seal, Open and Index
// need no lock against Rotate.
func TestConcurrentSealOpenRotate(t *testing.T) {
	r := newRing(t)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			ad := seal.AD{Table: "messages", Column: "body", Row: fmt.Sprint("row-", g)}
			for i := range 200 {
				want := fmt.Sprint("message ", i)
				v, err := r.SealString(want, ad)
				if err != nil {
					t.Error(err)
					return
				}
				if got, err := r.OpenString(v, ad); err != nil || got != want {
					t.Errorf("OpenString = %q, %v; want %q", got, err, want)
					return
				}
				r.Index("sms", want)
			}
		})
	}
	for range 20 {
		if _, err := r.Rotate(); err != nil {
			t.Fatal(err)
		}
		_ = r.KeyIDs()
	}
	wg.Wait()
	if got := len(r.KeyIDs()); got != 21 {
		t.Errorf("ring has %d keys after 20 rotations, want 21", got)
	}
}

func TestIndex(t *testing.T) {
	r, err := seal.Parse([]byte(`{"version":1,"keys":[{"id":"k1","created":"2025-01-02T03:04:05Z",
		"secret":"ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGCg4Q="}],"active":"k1",
		"index_key":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="}`))
	if err != nil {
		t.Fatal(err)
	}
	// Expected values from Python: hmac.new(bytes(range(1, 33)), kind + b"\0" + value, sha256).
	known := []struct{ kind, value, want string }{
		{"sms", "+15551234567", "b718884b21fcc1852c45bbc0befed44041db50d34aed47ac75717f92c2bef870"},
		{"messenger", "1234567890123456", "b613d26cd543fd8aa0d5ba0c68e2dbb9d021119ddd6f69fb2bbe236935990e47"},
	}
	for _, k := range known {
		if got := r.IndexHex(k.kind, k.value); got != k.want {
			t.Errorf("IndexHex(%q, value) = %s, want %s", k.kind, got, k.want)
		}
		if got := hex.EncodeToString(r.Index(k.kind, k.value)); got != k.want {
			t.Errorf("Index(%q, value) = %s, want %s", k.kind, got, k.want)
		}
	}

	const phone = "+15551234567"
	first := r.Index("sms", phone)
	if len(first) != 32 {
		t.Fatalf("Index length = %d, want 32", len(first))
	}
	if !bytes.Equal(r.Index("sms", phone), first) {
		t.Error("Index is not stable across calls")
	}
	if _, err := r.Rotate(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(r.Index("sms", phone), first) {
		t.Error("Index changed after Rotate; stored indexes would stop matching")
	}
	if bytes.Equal(r.Index("messenger", phone), first) {
		t.Error("Index is the same for two kinds")
	}
	if bytes.Equal(r.Index("sms", "+15551234568"), first) {
		t.Error("Index is the same for two numbers")
	}
	if bytes.Equal(r.Index("sms"+"+", "15551234567"), first) {
		t.Error("Index does not separate kind from value")
	}
	if bytes.Equal(newRing(t).Index("sms", phone), first) {
		t.Error("Index is the same under two index keys")
	}
	// The index must not be a function of the encryption keys either.
	for _, s := range ringSecrets(t, r)[1:] {
		if bytes.Contains(first, s[:8]) {
			t.Error("index shares bytes with an encryption key")
		}
	}
}

func TestIndexPanicsOnBadKind(t *testing.T) {
	r := newRing(t)
	for _, kind := range []string{"", "sms\x00x"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Index(%q, ...) did not panic", kind)
				}
			}()
			r.Index(kind, "+15551234567")
		}()
	}
}

func TestZeroRing(t *testing.T) {
	var r seal.Ring
	if _, err := r.Seal([]byte("x"), adMsg); err == nil {
		t.Error("Seal on a zero Ring succeeded")
	}
	if _, err := r.Open([]byte("x"), adMsg); err == nil {
		t.Error("Open on a zero Ring succeeded")
	}
	if _, _, err := r.Reseal([]byte("x"), adMsg); err == nil {
		t.Error("Reseal on a zero Ring succeeded")
	}
	if _, err := r.Rotate(); err == nil {
		t.Error("Rotate on a zero Ring succeeded")
	}
	if err := r.Save(filepath.Join(t.TempDir(), "k.json")); err == nil {
		t.Error("Save on a zero Ring succeeded")
	}
	if got := r.String(); got != "seal.Ring(empty)" {
		t.Errorf("zero Ring String = %q", got)
	}
	if r.ActiveID() != "" || r.KeyIDs() != nil {
		t.Errorf("zero Ring: ActiveID %q, KeyIDs %q; want empty", r.ActiveID(), r.KeyIDs())
	}
	defer func() {
		if recover() == nil {
			t.Error("Index on a zero Ring did not panic")
		}
	}()
	r.Index("sms", "+15551234567")
}

func TestRingPrintsNoSecrets(t *testing.T) {
	r := newRing(t)
	if _, err := r.Rotate(); err != nil {
		t.Fatal(err)
	}
	secrets := ringSecrets(t, r)
	for _, format := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		for _, v := range []any{r} {
			out := fmt.Sprintf(format, v)
			assertNoKeyMaterial(t, out, secrets...)
		}
	}
	if got := r.String(); got != "seal.Ring(active=k2, keys=2)" {
		t.Errorf("String = %q", got)
	}
}

func benchmarkBody() []byte {
	return bytes.Repeat([]byte("0123456789"), 20) // 200 bytes
}

func BenchmarkSeal(b *testing.B) {
	r := newRing(b)
	body := benchmarkBody()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Seal(body, adMsg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpen(b *testing.B) {
	r := newRing(b)
	body := benchmarkBody()
	sealed, err := r.Seal(body, adMsg)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(sealed, adMsg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIndex(b *testing.B) {
	r := newRing(b)
	b.ReportAllocs()
	for b.Loop() {
		r.Index("sms", "+15551234567")
	}
}

func FuzzOpen(f *testing.F) {
	r := newRing(f)
	ad := seal.AD{Table: "t", Column: "c", Row: "r"}
	var genuine [][]byte
	for _, p := range []string{"", "x", strings.Repeat("body ", 40)} {
		v, err := r.SealString(p, ad)
		if err != nil {
			f.Fatal(err)
		}
		genuine = append(genuine, v)
		f.Add(v)
		f.Add(v[:len(v)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 255})
	f.Add([]byte{1, 2, 'k', '9'})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = r.KeyIDOf(data)
		_, openErr := r.Open(data, ad)
		_, _, resealErr := r.Reseal(data, ad)
		if openErr == nil {
			// Only a value this ring sealed may open.
			if !slices.ContainsFunc(genuine, func(g []byte) bool { return bytes.Equal(g, data) }) {
				t.Fatalf("Open accepted a value the ring never sealed: %x", data)
			}
			if resealErr != nil {
				t.Fatalf("Open succeeded but Reseal failed: %v", resealErr)
			}
			return
		}
		if !errors.Is(openErr, seal.ErrOpen) && !errors.Is(openErr, seal.ErrUnknownKey) {
			t.Fatalf("Open error %v is neither ErrOpen nor ErrUnknownKey", openErr)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(encode(f, validFile()))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"version":1,"keys":[{"id":"k1"}]}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := seal.Parse(data)
		if err != nil {
			return
		}
		// Whatever Parse accepts, Save writes back in a form Parse accepts.
		path := filepath.Join(t.TempDir(), "keys.json")
		if err := r.Save(path); err != nil {
			t.Fatal(err)
		}
		again, err := seal.Load(path)
		if err != nil {
			t.Fatalf("Load(Save(Parse(data))): %v", err)
		}
		if !slices.Equal(again.KeyIDs(), r.KeyIDs()) || again.ActiveID() != r.ActiveID() {
			t.Fatalf("round trip changed ids: %q/%q vs %q/%q", again.KeyIDs(), again.ActiveID(), r.KeyIDs(), r.ActiveID())
		}
	})
}
