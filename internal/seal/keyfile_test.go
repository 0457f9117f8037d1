package seal_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/safeflow/safeflow/internal/seal"
)

// Fixed secrets for key file tests: distinct, non-zero, 32 bytes each.
var (
	secret1  = bytes.Repeat([]byte{0x11, 0xa1}, 16)
	secret2  = bytes.Repeat([]byte{0x22, 0xb2}, 16)
	indexKey = bytes.Repeat([]byte{0x33, 0xc3}, 16)
	b64      = base64.StdEncoding.EncodeToString
)

// validFile returns a correct key file as a generic JSON value, for tests to
// break one field at a time.
func validFile() map[string]any {
	return map[string]any{
		"version": 1,
		"keys": []any{
			map[string]any{"id": "k1", "created": "2025-01-02T03:04:05Z", "secret": b64(secret1)},
			map[string]any{"id": "k2", "created": "2025-07-01T00:00:00+02:00", "secret": b64(secret2)},
		},
		"active":    "k2",
		"index_key": b64(indexKey),
	}
}

func keyAt(f map[string]any, i int) map[string]any {
	return f["keys"].([]any)[i].(map[string]any)
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestParseValidFile(t *testing.T) {
	r, err := seal.Parse(encode(t, validFile()))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := r.ActiveID(); got != "k2" {
		t.Errorf("ActiveID = %q, want k2", got)
	}
	if got := r.KeyIDs(); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("KeyIDs = %q, want [k1 k2] in file order", got)
	}
	// Rotate continues the kN numbering.
	id, err := r.Rotate()
	if err != nil || id != "k3" {
		t.Errorf("Rotate = %q, %v; want k3", id, err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		data func() []byte // nil: edit validFile with mod
		mod  func(f map[string]any)
		want string // substring of the error
	}{
		{name: "EmptyInput", data: func() []byte { return nil }, want: "file is empty"},
		{name: "BadJSON", data: func() []byte { return []byte("{\n  \"version\": 1,\n  \"keys\": [}") }, want: "line 3, column 12: not valid JSON"},
		{name: "Truncated", data: func() []byte { return []byte(`{"version": 1, "keys": [`) }, want: "ends in the middle"},
		{name: "TrailingData", data: func() []byte { return append(encode(t, validFile()), []byte(" {}")...) }, want: "extra data after the JSON object"},
		{name: "NotAnObject", data: func() []byte { return []byte(`[1, 2]`) }, want: "the file must be an object, not a JSON array"},
		{name: "VersionMissing", mod: func(f map[string]any) { delete(f, "version") }, want: `"version" is missing; want 1`},
		{name: "VersionTwo", mod: func(f map[string]any) { f["version"] = 2 }, want: "version 2 is not supported; want 1"},
		{name: "VersionOutOfRange", data: func() []byte { return []byte(`{"version": 1e999}`) }, want: "version is out of range"},
		{name: "VersionString", mod: func(f map[string]any) { f["version"] = "1" }, want: "version must be a number, not a JSON string"},
		{name: "UnknownTopField", mod: func(f map[string]any) { f["index-key"] = "x"; delete(f, "index_key") }, want: `field "index-key" is not part of the format`},
		{name: "UnknownKeyField", mod: func(f map[string]any) { keyAt(f, 1)["secrets"] = "x" }, want: `keys[1]: field "secrets" is not part of the format`},
		{name: "KeysMissing", mod: func(f map[string]any) { delete(f, "keys") }, want: `"keys" is empty`},
		{name: "KeysEmpty", mod: func(f map[string]any) { f["keys"] = []any{} }, want: `"keys" is empty`},
		{name: "KeysNotList", mod: func(f map[string]any) { f["keys"] = "k1" }, want: "keys must be a list, not a JSON string"},
		{name: "IDMissing", mod: func(f map[string]any) { delete(keyAt(f, 0), "id") }, want: "keys[0]: id must be 1 to 64 characters"},
		{name: "IDWithSpace", mod: func(f map[string]any) { keyAt(f, 0)["id"] = "key one" }, want: "keys[0]: id must be 1 to 64 characters"},
		{name: "IDTooLong", mod: func(f map[string]any) { keyAt(f, 0)["id"] = strings.Repeat("k", 65) }, want: "keys[0]: id must be 1 to 64 characters"},
		{name: "DuplicateID", mod: func(f map[string]any) { keyAt(f, 1)["id"] = "k1"; f["active"] = "k1" }, want: `keys[1] (id "k1"): id is also used by keys[0]`},
		{name: "CreatedMissing", mod: func(f map[string]any) { delete(keyAt(f, 0), "created") }, want: `keys[0] (id "k1"): created is missing`},
		{name: "CreatedNotRFC3339", mod: func(f map[string]any) { keyAt(f, 0)["created"] = "2025-01-02" }, want: `keys[0] (id "k1"): created is not an RFC 3339 time`},
		{name: "SecretMissing", mod: func(f map[string]any) { delete(keyAt(f, 1), "secret") }, want: `keys[1] (id "k2"): secret is missing`},
		{name: "SecretNotBase64", mod: func(f map[string]any) { keyAt(f, 1)["secret"] = "not base64!" + b64(secret2) }, want: `keys[1] (id "k2"): secret is not valid standard base64`},
		{name: "SecretShort", mod: func(f map[string]any) { keyAt(f, 1)["secret"] = b64(secret2[:16]) }, want: `keys[1] (id "k2"): secret is 16 bytes; it must be exactly 32`},
		{name: "SecretLong", mod: func(f map[string]any) { keyAt(f, 1)["secret"] = b64(append(slices.Clone(secret2), 1)) }, want: `secret is 33 bytes; it must be exactly 32`},
		{name: "SecretAllZero", mod: func(f map[string]any) { keyAt(f, 1)["secret"] = b64(make([]byte, 32)) }, want: `keys[1] (id "k2"): secret is all zero bytes`},
		{name: "SecretNotString", mod: func(f map[string]any) { keyAt(f, 1)["secret"] = 12345 }, want: "secret must be a string, not a JSON number"},
		{name: "DuplicateSecret", mod: func(f map[string]any) { keyAt(f, 1)["secret"] = b64(secret1) }, want: `keys[1] (id "k2"): secret is the same as that of keys[0] (id "k1")`},
		{name: "ActiveMissing", mod: func(f map[string]any) { delete(f, "active") }, want: `"active" is missing`},
		{name: "ActiveNotInKeys", mod: func(f map[string]any) { f["active"] = "k9" }, want: `"active" names key "k9", which is not in "keys"`},
		{name: "ActiveMalformed", mod: func(f map[string]any) { f["active"] = "k 1" }, want: `"active" is not a valid key id`},
		{name: "IndexKeyMissing", mod: func(f map[string]any) { delete(f, "index_key") }, want: "index_key is missing"},
		{name: "IndexKeyShort", mod: func(f map[string]any) { f["index_key"] = b64(indexKey[:31]) }, want: "index_key is 31 bytes; it must be exactly 32"},
		{name: "IndexKeyNotBase64", mod: func(f map[string]any) { f["index_key"] = "#" + b64(indexKey)[1:] }, want: "index_key is not valid standard base64"},
		{name: "IndexKeyEqualsEncryptionKey", mod: func(f map[string]any) { f["index_key"] = b64(secret1) }, want: `index_key is the same as the secret of key "k1"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var data []byte
			if tt.data != nil {
				data = tt.data()
			} else {
				f := validFile()
				tt.mod(f)
				data = encode(t, f)
			}
			r, err := seal.Parse(data)
			if err == nil {
				t.Fatalf("Parse accepted the file (ring %v)", r)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "seal: key file: ") {
				t.Errorf("error = %q, want prefix %q", err, "seal: key file: ")
			}
		})
	}
}

// TestParseErrorsHoldNoKeyMaterial breaks key files in the ways most likely
// to echo a secret (a secret in the wrong field, a secret as a field name, a
// truncated or mangled secret) and checks the error shows none of it.
func TestParseErrorsHoldNoKeyMaterial(t *testing.T) {
	secrets := [][]byte{secret1, secret2, indexKey}
	mods := map[string]func(f map[string]any){
		"SecretAsID":          func(f map[string]any) { keyAt(f, 0)["id"] = b64(secret1) },
		"SecretAsActive":      func(f map[string]any) { f["active"] = b64(secret2) },
		"SecretAsFieldName":   func(f map[string]any) { f[b64(indexKey)] = true },
		"SecretAsKeyField":    func(f map[string]any) { keyAt(f, 0)[b64(secret2)] = 1 },
		"SecretAsCreated":     func(f map[string]any) { keyAt(f, 0)["created"] = b64(secret1) },
		"ShortSecret":         func(f map[string]any) { keyAt(f, 1)["secret"] = b64(secret2[:20]) },
		"MangledSecret":       func(f map[string]any) { keyAt(f, 1)["secret"] = b64(secret2)[:30] + "%%" + b64(secret2)[32:] },
		"HexSecret":           func(f map[string]any) { keyAt(f, 1)["secret"] = hex.EncodeToString(secret2) },
		"DuplicateSecret":     func(f map[string]any) { keyAt(f, 1)["secret"] = b64(secret1) },
		"IndexKeyIsKey":       func(f map[string]any) { f["index_key"] = b64(secret2) },
		"ShortIndexKey":       func(f map[string]any) { f["index_key"] = b64(indexKey[:8]) },
		"SecretAsVersion":     func(f map[string]any) { f["version"] = b64(secret1) },
		"SecretAsKeys":        func(f map[string]any) { f["keys"] = b64(secret1) },
		"SecretAsKeysElement": func(f map[string]any) { f["keys"] = []any{b64(secret1)} },
	}
	for name, mod := range mods {
		t.Run(name, func(t *testing.T) {
			f := validFile()
			mod(f)
			_, err := seal.Parse(encode(t, f))
			if err == nil {
				t.Fatal("Parse accepted the file")
			}
			assertNoKeyMaterial(t, err.Error(), secrets...)
		})
	}
	t.Run("SyntaxErrorInsideSecret", func(t *testing.T) {
		data := []byte(`{"version":1,"keys":[{"id":"k1","created":"2025-01-02T03:04:05Z","secret":"` +
			b64(secret1)[:20] + "\x01" + b64(secret1)[20:] + `"}],"active":"k1","index_key":"` + b64(indexKey) + `"}`)
		_, err := seal.Parse(data)
		if err == nil {
			t.Fatal("Parse accepted a control character")
		}
		assertNoKeyMaterial(t, err.Error(), secrets...)
	})
}

// assertNoKeyMaterial fails if s shows any secret in base64, hex or raw form,
// in full or as a prefix or suffix of 8 characters or more.
func assertNoKeyMaterial(t testing.TB, s string, secrets ...[]byte) {
	t.Helper()
	for _, secret := range secrets {
		for _, form := range []string{b64(secret), hex.EncodeToString(secret), string(secret)} {
			for _, piece := range []string{form, form[:8], form[len(form)-8:]} {
				if strings.Contains(s, piece) {
					t.Errorf("%q shows key material %q", s, piece)
				}
			}
		}
	}
}

func writeFile(t *testing.T, name string, data []byte, mode os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is filtered by the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSaveLoadRoundTrip(t *testing.T) {
	r := newRing(t)
	ad := seal.AD{Table: "messages", Column: "body", Row: "row-1"}
	old, err := r.SealString("sealed under k1", ad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Rotate(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	if err := r.Save(path); err != nil {
		t.Fatalf("Save: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("saved mode = %04o, want 0600", perm)
	}

	loaded, err := seal.Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if loaded.ActiveID() != r.ActiveID() || !slices.Equal(loaded.KeyIDs(), r.KeyIDs()) {
		t.Errorf("loaded ring %v (ids %q), want %v (ids %q)", loaded, loaded.KeyIDs(), r, r.KeyIDs())
	}
	if got, err := loaded.OpenString(old, ad); err != nil || got != "sealed under k1" {
		t.Errorf("loaded ring opens old value as %q, %v", got, err)
	}
	fresh, err := loaded.SealString("sealed under k2", ad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.OpenString(fresh, ad); err != nil || got != "sealed under k2" {
		t.Errorf("original ring opens value sealed by loaded ring as %q, %v", got, err)
	}
	if !bytes.Equal(loaded.Index("sms", "+15551234567"), r.Index("sms", "+15551234567")) {
		t.Error("loaded ring computes a different blind index")
	}

	// The file is itself a valid input to Parse, and names the fields documented.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := seal.Parse(data); err != nil {
		t.Errorf("Parse(saved file): %v", err)
	}
	for _, field := range []string{`"version": 1`, `"keys"`, `"id"`, `"created"`, `"secret"`, `"active": "k2"`, `"index_key"`} {
		if !bytes.Contains(data, []byte(field)) {
			t.Errorf("saved file lacks %s:\n%s", field, data)
		}
	}

	// No temporary file is left next to it.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Save, want only keys.json", len(entries))
	}
}

func TestSaveReplacesWideModeFile(t *testing.T) {
	path := writeFile(t, "keys.json", []byte("old contents"), 0o644)
	r := newRing(t)
	if err := r.Save(path); err != nil {
		t.Fatalf("Save: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode after Save over a 0644 file = %04o, want 0600", perm)
	}
	if _, err := seal.Load(path); err != nil {
		t.Errorf("Load after Save: %v", err)
	}
}

func TestSaveFailsInMissingDirectory(t *testing.T) {
	r := newRing(t)
	err := r.Save(filepath.Join(t.TempDir(), "no-such-dir", "keys.json"))
	if err == nil || !strings.Contains(err.Error(), "seal: save key file") {
		t.Errorf("Save into a missing directory: err = %v, want a save key file error", err)
	}
}

func TestLoadPermissions(t *testing.T) {
	data := encode(t, validFile())
	tests := []struct {
		mode   os.FileMode
		refuse bool
	}{
		{0o600, false},
		{0o400, false},
		{0o700, false},
		{0o644, true},
		{0o640, true},
		{0o604, true},
		{0o620, true},
		{0o602, true},
		{0o610, true},
		{0o601, true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			path := writeFile(t, "keys.json", data, tt.mode)
			_, err := seal.Load(path)
			if !tt.refuse {
				if err != nil {
					t.Fatalf("Load of a %04o file: %v", tt.mode, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Load accepted a %04o file", tt.mode)
			}
			for _, want := range []string{path, "users other than its owner", "chmod 600"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error = %q, want it to contain %q", err, want)
				}
			}
			assertNoKeyMaterial(t, err.Error(), secret1, secret2, indexKey)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("Missing", func(t *testing.T) {
		_, err := seal.Load(filepath.Join(t.TempDir(), "absent.json"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want fs.ErrNotExist", err)
		}
	})
	t.Run("Directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := seal.Load(dir)
		if err == nil || !strings.Contains(err.Error(), "is not a regular file") {
			t.Errorf("err = %v, want 'is not a regular file'", err)
		}
	})
	t.Run("TooLarge", func(t *testing.T) {
		path := writeFile(t, "big.json", bytes.Repeat([]byte(" "), 1<<20+1), 0o600)
		_, err := seal.Load(path)
		if err == nil || !strings.Contains(err.Error(), "is larger than") {
			t.Errorf("err = %v, want 'is larger than'", err)
		}
	})
	t.Run("BadContentNamesFile", func(t *testing.T) {
		f := validFile()
		keyAt(f, 0)["secret"] = b64(secret1[:10])
		path := writeFile(t, "keys.json", encode(t, f), 0o600)
		_, err := seal.Load(path)
		want := "seal: key file " + path + `: keys[0] (id "k1"): secret is 10 bytes`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant it to contain %q", err, want)
		}
	})
}
