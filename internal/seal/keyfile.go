package seal

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"
)

// fileVersion is the only key file version this package reads and writes.
const fileVersion = 1

// maxFileSize bounds what Load reads; a real key file is a few kilobytes.
const maxFileSize = 1 << 20

// keyFile is the JSON form of a Ring; see the package documentation.
// Secrets are kept as strings so that decoding errors are ours to word:
// encoding/json's own messages for []byte fields could quote the input.
type keyFile struct {
	Version  int       `json:"version"`
	Keys     []fileKey `json:"keys"`
	Active   string    `json:"active"`
	IndexKey string    `json:"index_key"`
}

type fileKey struct {
	ID      string `json:"id"`
	Created string `json:"created"`
	Secret  string `json:"secret"`
}

// Parse reads a Ring from the JSON of a key file (see the package
// documentation for the format), for example one passed in an environment
// variable. Errors say which field is wrong and how, and never contain
// secrets. Parse does not check file permissions; [Load] does.
func Parse(data []byte) (*Ring, error) {
	r, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	return r, nil
}

// Load reads a Ring from the key file at path. It refuses a file that group or
// other users may read, write or execute (mode & 0o077 != 0), since anyone who
// can read the file can read every sealed value. Errors name the file and
// never contain secrets.
func Load(path string) (*Ring, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the checked file is the one read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("seal: key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("seal: key file %s is not a regular file", path)
	}
	// Windows has no Unix permission bits; os reports made-up ones there.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return nil, fmt.Errorf("seal: key file %s has mode %04o, so users other than its owner can access it; run: chmod 600 %s", path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	defer clear(data)
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("seal: key file %s is larger than %d bytes; it is not a key file", path, maxFileSize)
	}
	r, err := parse(data)
	if err != nil {
		return nil, fmt.Errorf("seal: key file %s: %w", path, err)
	}
	return r, nil
}

// parse decodes and checks a key file. Its errors have no prefix; the callers
// add one naming the source.
func parse(data []byte) (*Ring, error) {
	var kf keyFile
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&kf); err != nil {
		return nil, jsonError(data, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("extra data after the JSON object")
	}
	// Unknown fields are checked here rather than with DisallowUnknownFields,
	// whose error would quote a field name even if it were a pasted secret.
	if err := checkFields(data); err != nil {
		return nil, err
	}
	if kf.Version != fileVersion {
		if kf.Version == 0 {
			return nil, fmt.Errorf(`"version" is missing; want %d`, fileVersion)
		}
		return nil, fmt.Errorf(`version %d is not supported; want %d`, kf.Version, fileVersion)
	}
	if len(kf.Keys) == 0 {
		return nil, errors.New(`"keys" is empty; a key file needs at least one encryption key`)
	}

	keys := make([]*key, 0, len(kf.Keys))
	seen := make(map[string]int, len(kf.Keys))
	for i, fk := range kf.Keys {
		if !validID(fk.ID) {
			// The id is not echoed: a malformed id may be a secret pasted
			// into the wrong field.
			return nil, fmt.Errorf("keys[%d]: id must be 1 to %d characters from A-Z, a-z, 0-9, '.', '_' and '-'", i, maxIDLen)
		}
		where := fmt.Sprintf("keys[%d] (id %q)", i, fk.ID)
		if j, dup := seen[fk.ID]; dup {
			return nil, fmt.Errorf("%s: id is also used by keys[%d]; every key needs its own id", where, j)
		}
		seen[fk.ID] = i
		if fk.Created == "" {
			return nil, fmt.Errorf("%s: created is missing; want an RFC 3339 time such as 2025-01-02T15:04:05Z", where)
		}
		created, err := time.Parse(time.RFC3339, fk.Created)
		if err != nil {
			return nil, fmt.Errorf("%s: created is not an RFC 3339 time such as 2025-01-02T15:04:05Z", where)
		}
		secret, err := decodeSecret(fk.Secret)
		if err != nil {
			return nil, fmt.Errorf("%s: secret %w", where, err)
		}
		for j, other := range keys {
			if subtle.ConstantTimeCompare(secret, other.secret) == 1 {
				return nil, fmt.Errorf("%s: secret is the same as that of keys[%d] (id %q); each key needs its own random secret", where, j, other.id)
			}
		}
		k, err := newKey(fk.ID, created, secret)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		keys = append(keys, k)
	}

	if kf.Active == "" {
		return nil, errors.New(`"active" is missing; it must name the key that new values are sealed with`)
	}
	if !validID(kf.Active) {
		return nil, errors.New(`"active" is not a valid key id`)
	}
	i, ok := seen[kf.Active]
	if !ok {
		return nil, fmt.Errorf(`"active" names key %q, which is not in "keys"`, kf.Active)
	}
	active := keys[i]

	indexKey, err := decodeSecret(kf.IndexKey)
	if err != nil {
		return nil, fmt.Errorf("index_key %w", err)
	}
	for _, k := range keys {
		if subtle.ConstantTimeCompare(indexKey, k.secret) == 1 {
			return nil, fmt.Errorf("index_key is the same as the secret of key %q; the blind-index key must be separate from the encryption keys", k.id)
		}
	}
	return newRing(keys, active, indexKey), nil
}

// decodeSecret decodes a base64 secret of keySize bytes. Its errors complete
// a sentence that starts with the field name, and never quote the input.
func decodeSecret(s string) ([]byte, error) {
	if s == "" {
		return nil, errors.New("is missing; want base64 of 32 random bytes")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errors.New("is not valid standard base64")
	}
	if len(b) != keySize {
		n := len(b)
		clear(b)
		return nil, fmt.Errorf("is %d bytes; it must be exactly %d", n, keySize)
	}
	if allZero(b) {
		return nil, errors.New("is all zero bytes; generate a random key")
	}
	return b, nil
}

func allZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// jsonError rewords a decoding error with its line and column and without
// any of the input, since the input may be a secret.
func jsonError(data []byte, err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		// Offset counts the bytes read, including the offending one.
		line, col := lineCol(data, syn.Offset-1)
		return fmt.Errorf("line %d, column %d: not valid JSON", line, col)
	case errors.As(err, &typ):
		// The field path locates the value better than Offset, which points
		// at its end.
		field := typ.Field
		if field == "" {
			field = "the file"
		}
		if strings.HasPrefix(typ.Value, "number ") {
			return fmt.Errorf("%s is out of range", field)
		}
		return fmt.Errorf("%s must be %s, not a JSON %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)
	case errors.Is(err, io.EOF):
		return errors.New("file is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("file ends in the middle of the JSON object")
	default:
		return errors.New("not valid JSON")
	}
}

// checkFields rejects fields the format does not have, so that a misspelt
// name ("index-key") is reported instead of silently ignored. It runs after a
// successful decode into keyFile, so the shapes below are known to match.
func checkFields(data []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return errors.New("not valid JSON")
	}
	if err := unknownField(top, "", "version", "keys", "active", "index_key"); err != nil {
		return err
	}
	var keys []map[string]json.RawMessage
	if raw, ok := top["keys"]; ok {
		if err := json.Unmarshal(raw, &keys); err != nil {
			return errors.New(`"keys" must be a list of objects`)
		}
	}
	for i, k := range keys {
		if err := unknownField(k, fmt.Sprintf("keys[%d]: ", i), "id", "created", "secret"); err != nil {
			return err
		}
	}
	return nil
}

func unknownField(obj map[string]json.RawMessage, where string, known ...string) error {
	for _, name := range slices.Sorted(maps.Keys(obj)) {
		if slices.Contains(known, name) {
			continue
		}
		// Quote the name only when it looks like a field name; a long or
		// odd one may be a secret pasted in the wrong place.
		shown := "a field"
		if len(name) <= 20 && validID(name) {
			shown = fmt.Sprintf("field %q", name)
		}
		return fmt.Errorf("%s%s is not part of the format; the known fields are %s", where, shown, strings.Join(known, ", "))
	}
	return nil
}

func jsonKind(k string) string {
	switch k {
	case "int":
		return "a number"
	case "string":
		return "a string"
	case "slice":
		return "a list"
	case "struct":
		return "an object"
	}
	return k
}

// lineCol turns a byte offset into a 1-based line and column.
func lineCol(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	before := data[:off]
	line = 1 + bytes.Count(before, []byte{'\n'})
	col = int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// Save writes the Ring to path as a key file with mode 0600. It writes a
// temporary file in the same directory, syncs it and renames it over path, so
// a crash leaves either the old file or the new one, never a partial one.
func (r *Ring) Save(path string) error {
	st := r.state.Load()
	if st == nil {
		return errNotReady
	}
	data, err := r.marshal(st)
	if err != nil {
		return err
	}
	defer clear(data)

	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("seal: save key file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	// CreateTemp already uses 0600; say so explicitly, as it is the point.
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("seal: save key file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("seal: save key file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("seal: save key file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("seal: save key file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("seal: save key file: %w", err)
	}
	done = true
	// Sync the directory so the rename itself survives a crash.
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil && runtime.GOOS != "windows" {
			return fmt.Errorf("seal: save key file: sync %s: %w", dir, err)
		}
	}
	return nil
}

func (r *Ring) marshal(st *ringState) ([]byte, error) {
	kf := keyFile{
		Version:  fileVersion,
		Keys:     make([]fileKey, len(st.keys)),
		Active:   st.active.id,
		IndexKey: base64.StdEncoding.EncodeToString(r.indexKey),
	}
	for i, k := range st.keys {
		kf.Keys[i] = fileKey{
			ID:      k.id,
			Created: k.created.Format(time.RFC3339Nano),
			Secret:  base64.StdEncoding.EncodeToString(k.secret),
		}
	}
	data, err := json.MarshalIndent(kf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("seal: encode key file: %w", err)
	}
	return append(data, '\n'), nil
}
