package secrets

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func aesKey(t *testing.T, name string, fill byte) Key {
	t.Helper()
	return Key{Type: TypeAES, Name: name, Secret: base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(fill), 32)))}
}

func mustKeyring(t *testing.T, keys ...Key) *Keyring {
	t.Helper()
	kr, err := NewKeyring(keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestRoundTrip(t *testing.T) {
	for _, kr := range []*Keyring{
		mustKeyring(t, aesKey(t, "a", 'a')),
		mustKeyring(t, Key{Type: TypeIdentity}),
	} {
		for _, plain := range []string{"", "hello", `{"api_key":"SEKRET-123"}`, "ünïcode:with:colons"} {
			enc, err := kr.Encrypt(plain)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(enc, "enc:") || (plain != "" && strings.Contains(enc, plain)) {
				t.Fatalf("Encrypt(%q) = %q", plain, enc)
			}
			got, err := kr.Decrypt(enc)
			if err != nil || got != plain {
				t.Fatalf("Decrypt(Encrypt(%q)) = %q, %v", plain, got, err)
			}
		}
	}
}

func TestFormat(t *testing.T) {
	enc, err := mustKeyring(t, aesKey(t, "k1", 'a')).Encrypt("x")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.SplitN(enc, ":", 4)
	if parts[0] != "enc" || parts[1] != "aes" || parts[2] != "k1" {
		t.Fatalf("unexpected format %q", enc)
	}
	raw, err := base64.StdEncoding.DecodeString(parts[3])
	if err != nil || len(raw) != 12+1+16 { // nonce + plaintext + GCM tag
		t.Fatalf("payload %q: %d bytes, %v", parts[3], len(raw), err)
	}

	enc, _ = mustKeyring(t, Key{Type: TypeIdentity}).Encrypt("x")
	if enc != "enc:identity:noname:eA==" {
		t.Fatalf("identity: %q", enc)
	}
}

func TestLegacyPlaintext(t *testing.T) {
	got, err := mustKeyring(t, aesKey(t, "a", 'a')).Decrypt("plain-token")
	if err != nil || got != "plain-token" {
		t.Fatalf("got %q, %v", got, err)
	}
}

func TestRotation(t *testing.T) {
	a, b := aesKey(t, "A", 'a'), aesKey(t, "B", 'b')
	enc, err := mustKeyring(t, a).Encrypt("secret")
	if err != nil {
		t.Fatal(err)
	}

	rotated := mustKeyring(t, b, a)
	if got, err := rotated.Decrypt(enc); err != nil || got != "secret" {
		t.Fatalf("[B, A] decrypt: %q, %v", got, err)
	}
	reenc, _ := rotated.Encrypt("secret")
	if !strings.HasPrefix(reenc, "enc:aes:B:") {
		t.Fatalf("new values must use the first key, got %q", reenc)
	}

	// A key renamed during rotation still decrypts: other AES keys are tried after the named one.
	renamed := a
	renamed.Name = "Arenamed"
	if got, err := mustKeyring(t, b, renamed).Decrypt(enc); err != nil || got != "secret" {
		t.Fatalf("renamed key: %q, %v", got, err)
	}

	_, err = mustKeyring(t, b).Decrypt(enc)
	if err == nil || !strings.Contains(err.Error(), `aes key "A"`) || !strings.Contains(err.Error(), "missing from encryption.keys") {
		t.Fatalf("[B] decrypt error = %v", err)
	}
}

func TestTampered(t *testing.T) {
	kr := mustKeyring(t, aesKey(t, "a", 'a'))
	enc, _ := kr.Encrypt("secret value")
	parts := strings.SplitN(enc, ":", 4)
	raw, _ := base64.StdEncoding.DecodeString(parts[3])
	raw[len(raw)-1] ^= 1
	tampered := strings.Join(parts[:3], ":") + ":" + base64.StdEncoding.EncodeToString(raw)
	if _, err := kr.Decrypt(tampered); err == nil || !strings.Contains(err.Error(), "cannot decrypt") {
		t.Fatalf("tampered value: err = %v", err)
	}
	for _, bad := range []string{"enc:aes", "enc:aes:a:!!!", "enc:rot13:x:eA==", "enc:aes:a:eA=="} {
		if _, err := kr.Decrypt(bad); err == nil {
			t.Fatalf("Decrypt(%q) succeeded", bad)
		}
	}
}

func TestBadKeys(t *testing.T) {
	good := aesKey(t, "good", 'g')
	for _, tc := range []struct {
		key  Key
		want string
	}{
		{Key{Type: TypeAES, Name: "k", Secret: "not base64!"}, "keys[1].secret: must be base64 of exactly 32 bytes (not valid base64); generate one with: head -c 32 /dev/urandom | base64"},
		{Key{Type: TypeAES, Name: "k", Secret: base64.StdEncoding.EncodeToString(make([]byte, 16))}, "keys[1].secret: must be base64 of exactly 32 bytes (got 16 bytes); generate one with"},
		{Key{Type: TypeAES, Name: "bad-name", Secret: good.Secret}, "keys[1].name: must be a non-empty alphanumeric string"},
		{Key{Type: TypeAES, Secret: good.Secret}, "keys[1].name"},
		{Key{Type: TypeAES, Name: "good", Secret: good.Secret}, `keys[1].name: "good" is already used by keys[0]`},
		{Key{Type: "AES256", Name: "k", Secret: good.Secret}, `keys[1].type: must be "aes" or "identity"`},
		{Key{Type: TypeIdentity, Secret: good.Secret}, "keys[1].secret: type identity"},
	} {
		_, err := NewKeyring([]Key{good, tc.key})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewKeyring(%+v): err = %v, want %q", tc.key, err, tc.want)
		}
	}
	if _, err := NewKeyring(nil); err == nil {
		t.Error("empty keyring accepted")
	}
}

func TestDefaultKey(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateDefaultKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.Type != TypeAES || k1.Name != "default" {
		t.Fatalf("key = %+v", k1)
	}
	path := filepath.Join(dir, "data", "encryption.key")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", st.Mode().Perm())
	}
	if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
		t.Fatalf("data dir mode = %v, want 0700", st.Mode().Perm())
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("stray files next to the key: %v", entries)
	}

	k2, err := LoadOrCreateDefaultKey(dir)
	if err != nil || k2 != k1 {
		t.Fatalf("second load = %+v, %v; want %+v", k2, err, k1)
	}

	if err := os.WriteFile(path, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadOrCreateDefaultKey(dir); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("corrupt key file: err = %v", err)
	}
}
