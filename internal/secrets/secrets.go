// Package secrets encrypts values that the server keeps at rest (API tokens, SSH private keys,
// backend credentials), following dstack's `encryption.keys` server setting.
//
// A Keyring is built from a list of keys, each either
//
//	{type: aes, name: <alphanumeric>, secret: <base64 of exactly 32 bytes>}   (AES-256-GCM)
//	{type: identity}                                                          (no encryption)
//
// Values are encrypted with the first key and stored as
//
//	enc:aes:<name>:<base64(nonce(12) || ciphertext)>
//	enc:identity:noname:<base64(plaintext)>
//
// Decryption picks a key by the stored type and name, falling back to the other keys of that
// type, so keys can be rotated: put the new key first and keep the old one after it until every
// value has been rewritten. Values without the "enc:" prefix are legacy plaintext and are returned
// unchanged.
//
// Unlike dstack, which stores values unencrypted when no keys are configured, this server always
// encrypts: without `encryption.keys` it uses a random key that LoadOrCreateDefaultKey generates
// once into <server dir>/data/encryption.key. Back that file up together with the database; to move
// to configured keys later, list the new key first and the default key (its secret is the file's
// contents, name "default") after it.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Key types, as spelled in encryption.keys.
const (
	TypeAES      = "aes"
	TypeIdentity = "identity"
)

const (
	prefix       = "enc:"
	identityName = "noname" // identity values carry no key name; dstack writes this placeholder
	keySize      = 32       // AES-256
	generateHint = "generate one with: head -c 32 /dev/urandom | base64"
)

// Key is one entry of encryption.keys.
type Key struct {
	Type   string
	Name   string
	Secret string
}

type key struct {
	typ  string
	name string
	aead cipher.AEAD // nil for identity
}

// Keyring encrypts with its first key and decrypts with any of them. It is safe for concurrent use.
type Keyring struct {
	keys []key
}

// NewKeyring validates keys and builds a Keyring. Errors name the offending entry, e.g. "keys[1].secret: ...".
func NewKeyring(keys []Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keys: at least one key is required")
	}
	kr := &Keyring{}
	names := map[string]int{}
	for i, k := range keys {
		switch k.Type {
		case TypeAES:
			if !isAlnum(k.Name) {
				return nil, fmt.Errorf("keys[%d].name: must be a non-empty alphanumeric string (got %q)", i, k.Name)
			}
			if j, dup := names[k.Name]; dup {
				return nil, fmt.Errorf("keys[%d].name: %q is already used by keys[%d]", i, k.Name, j)
			}
			names[k.Name] = i
			secret, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k.Secret))
			if err != nil {
				return nil, fmt.Errorf("keys[%d].secret: must be base64 of exactly %d bytes (not valid base64); %s", i, keySize, generateHint)
			}
			if len(secret) != keySize {
				return nil, fmt.Errorf("keys[%d].secret: must be base64 of exactly %d bytes (got %d bytes); %s", i, keySize, len(secret), generateHint)
			}
			block, err := aes.NewCipher(secret)
			if err != nil {
				return nil, fmt.Errorf("keys[%d]: %w", i, err)
			}
			aead, err := cipher.NewGCM(block)
			if err != nil {
				return nil, fmt.Errorf("keys[%d]: %w", i, err)
			}
			kr.keys = append(kr.keys, key{typ: TypeAES, name: k.Name, aead: aead})
		case TypeIdentity:
			// A secret here suggests the user believes values are encrypted; say they are not.
			if k.Secret != "" {
				return nil, fmt.Errorf("keys[%d].secret: type identity stores values unencrypted and takes no secret", i)
			}
			kr.keys = append(kr.keys, key{typ: TypeIdentity, name: identityName})
		default:
			return nil, fmt.Errorf("keys[%d].type: must be %q or %q (got %q)", i, TypeAES, TypeIdentity, k.Type)
		}
	}
	return kr, nil
}

func isAlnum(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

// Encrypt encrypts plain with the keyring's first key.
func (kr *Keyring) Encrypt(plain string) (string, error) {
	k := kr.keys[0]
	if k.typ == TypeIdentity {
		return prefix + TypeIdentity + ":" + identityName + ":" + base64.StdEncoding.EncodeToString([]byte(plain)), nil
	}
	nonce := make([]byte, k.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, []byte(plain), nil)
	return prefix + TypeAES + ":" + k.name + ":" + base64.StdEncoding.EncodeToString(sealed), nil
}

// Decrypt reverses Encrypt. Values without the "enc:" prefix are returned unchanged (legacy plaintext).
func (kr *Keyring) Decrypt(stored string) (string, error) {
	if !strings.HasPrefix(stored, prefix) {
		return stored, nil
	}
	parts := strings.SplitN(strings.TrimPrefix(stored, prefix), ":", 3)
	if len(parts) != 3 {
		return "", errors.New("decrypt: malformed value: want enc:<type>:<name>:<data>")
	}
	typ, name, data := parts[0], parts[1], parts[2]
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return "", fmt.Errorf("decrypt: value for %s key %q is not valid base64", typ, name)
	}
	switch typ {
	case TypeIdentity:
		// Identity values are plaintext in disguise; reading them needs no key.
		return string(raw), nil
	case TypeAES:
		return kr.decryptAES(name, raw)
	default:
		return "", fmt.Errorf("decrypt: unknown key type %q", typ)
	}
}

func (kr *Keyring) decryptAES(name string, raw []byte) (string, error) {
	// The named key first; then the other AES keys, in case a key was renamed during rotation.
	var candidates []key
	for _, k := range kr.keys {
		if k.typ == TypeAES && k.name == name {
			candidates = append(candidates, k)
		}
	}
	for _, k := range kr.keys {
		if k.typ == TypeAES && k.name != name {
			candidates = append(candidates, k)
		}
	}
	for _, k := range candidates {
		n := k.aead.NonceSize()
		if len(raw) < n {
			break
		}
		if plain, err := k.aead.Open(nil, raw[:n], raw[n:], nil); err == nil {
			return string(plain), nil
		}
	}
	if len(candidates) > 0 && candidates[0].name == name {
		return "", fmt.Errorf("decrypt: aes key %q is configured but cannot decrypt the value (wrong secret for that name, or the value is corrupted)", name)
	}
	return "", fmt.Errorf("decrypt: value was encrypted with aes key %q, which no configured key can decrypt; the key may be missing from encryption.keys", name)
}

// DefaultKeyFile is where LoadOrCreateDefaultKey keeps the key, relative to the server directory.
const DefaultKeyFile = "data/encryption.key"

// LoadOrCreateDefaultKey returns the server's default AES key (name "default"), stored base64-encoded
// in <serverDir>/data/encryption.key. The first call generates a random key and writes the file with
// mode 0600 (directory 0700); later calls read it back.
func LoadOrCreateDefaultKey(serverDir string) (Key, error) {
	path := filepath.Join(serverDir, DefaultKeyFile)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return Key{}, fmt.Errorf("encryption key: %w", err)
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		b, err = createKeyFile(path)
	}
	if err != nil {
		return Key{}, fmt.Errorf("encryption key: %w", err)
	}
	encoded := strings.TrimSpace(string(b))
	k := Key{Type: TypeAES, Name: "default", Secret: encoded}
	if _, err := NewKeyring([]Key{k}); err != nil {
		return Key{}, fmt.Errorf("encryption key %s: %w", path, err)
	}
	return k, nil
}

// createKeyFile writes a fresh random key to path and returns the file's contents. The key is
// written to a temporary file and then hard-linked into place, so a concurrently starting server
// never reads a half-written file and two servers cannot end up with different keys.
func createKeyFile(path string) ([]byte, error) {
	secret := make([]byte, keySize)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	content := []byte(base64.StdEncoding.EncodeToString(secret) + "\n")
	tmp, err := os.CreateTemp(filepath.Dir(path), ".encryption.key.*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(content)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
		return os.ReadFile(path) // another process won the race; use its key
	} else if err != nil {
		return nil, err
	}
	return content, nil
}
