// Package seal encrypts values at rest and computes blind indexes for safeflow
// (SECURITY.md items 13–15).
//
// A [Ring] holds the encryption keys, each with a short id, and one separate
// blind-index key. [Ring.Seal] encrypts with AES-256-GCM under the active key
// and binds the result to the table, column and row it is stored in (an [AD]);
// [Ring.Open] reads the key id back out of the value, so values written under
// an older key still open after [Ring.Rotate]. A re-seal job uses
// [Ring.KeyIDOf] to find values not yet under the active key and [Ring.Reseal]
// to move them.
//
// [Ring.Index] is the blind index used to find a contact without storing its
// address in plaintext: HMAC-SHA256 under the index key of the channel kind,
// a zero byte and the normalised address.
//
// # Key file
//
// A ring is stored as JSON, readable by its owner only (mode 0600):
//
//	{
//	  "version": 1,
//	  "keys": [
//	    {"id": "k1", "created": "2025-01-02T03:04:05Z", "secret": "<base64 of 32 bytes>"},
//	    {"id": "k2", "created": "2025-07-01T00:00:00Z", "secret": "<base64 of 32 bytes>"}
//	  ],
//	  "active": "k2",
//	  "index_key": "<base64 of 32 bytes>"
//	}
//
// version must be 1. Each key id is 1 to 64 characters from A–Z, a–z, 0–9,
// '.', '_' and '-', and unique in the file; created is an RFC 3339 time;
// secret is standard base64 (with padding) of exactly 32 bytes. active names
// the key new values are sealed with. index_key is the blind-index key:
// base64 of 32 bytes, different from every encryption key. Unknown fields are
// rejected so that a misspelt name is not silently ignored.
//
// # Sealed value
//
// A sealed value is
//
//	version (1 byte, = 1) | id length (1 byte) | key id | nonce (12 bytes) | ciphertext | tag (16 bytes)
//
// The GCM additional data is the header (version, id length, key id) followed
// by Table, Column and Row, each preceded by its length as an unsigned varint
// (encoding/binary.AppendUvarint). The length prefixes make the encoding
// unambiguous: ("ab", "c") and ("a", "bc") give different additional data.
//
// Errors never contain plaintext or key material.
package seal
