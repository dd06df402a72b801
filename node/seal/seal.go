// Package seal holds Stoke's cluster secret and the keys derived from it:
// the data key that seals access-key secrets and environment variables at
// rest in the replicated store (AES-256-GCM), the gossip encryption key and
// the node-to-node token. The secret lives in the node's data dir (0600),
// never in the Raft log; every node of a cluster is given the same one.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SecretSize is the size of the cluster secret in bytes.
const SecretSize = 32

// ErrOpen is returned when sealed data cannot be opened: wrong key, wrong
// context, or tampering.
var ErrOpen = errors.New("seal: cannot open sealed data")

// Secret is the cluster secret all keys are derived from.
type Secret [SecretSize]byte

// NewSecret returns a fresh random secret.
func NewSecret() (Secret, error) {
	var s Secret
	_, err := rand.Read(s[:])
	return s, err
}

// String encodes the secret as base64 (the form `stoke keygen` prints and
// the key file holds).
func (s Secret) String() string { return base64.StdEncoding.EncodeToString(s[:]) }

// ParseSecret decodes a base64 secret.
func ParseSecret(text string) (Secret, error) {
	var s Secret
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
	if err != nil || len(b) != SecretSize {
		return s, fmt.Errorf("seal: a cluster key is %d bytes of base64 (as `stoke keygen` prints)", SecretSize)
	}
	copy(s[:], b)
	return s, nil
}

// LoadOrCreate reads the secret at path, creating it (0600, directory 0700)
// when the file does not exist.
func LoadOrCreate(path string) (Secret, bool, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		s, err := ParseSecret(string(b))
		return s, false, err
	}
	if !errors.Is(err, os.ErrNotExist) {
		return Secret{}, false, fmt.Errorf("seal: read %s: %w", path, err)
	}
	s, err := NewSecret()
	if err != nil {
		return s, false, err
	}
	return s, true, Write(path, s)
}

// Write stores s at path with owner-only permissions, atomically and
// durably: once it returns, a crash leaves the whole key at path, never an
// empty file (every value sealed from then on depends on it).
func Write(path string, s Secret) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// A temporary file left by an earlier attempt is replaced, not
	// reused: os.WriteFile would keep its permissions, whatever they are.
	tmp := path + ".tmp"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.WriteString(s.String() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Derive returns a 32-byte key for purpose; different purposes give
// independent keys.
func (s Secret) Derive(purpose string) []byte {
	key, err := hkdf.Key(sha256.New, s[:], nil, "stoke/"+purpose, 32)
	if err != nil {
		panic("seal: hkdf: " + err.Error()) // only for lengths > 255*32
	}
	return key
}

// Sealer encrypts small values with AES-256-GCM. Each value is bound to a
// context string (its "additional data"), so a sealed value copied into
// another record does not open there.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns the Sealer for the secret's data key.
func NewSealer(s Secret) *Sealer {
	block, err := aes.NewCipher(s.Derive("data-key/v1"))
	if err != nil {
		panic("seal: aes: " + err.Error()) // key size is fixed at 32
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("seal: gcm: " + err.Error())
	}
	return &Sealer{aead: aead}
}

// Seal encrypts plaintext bound to context. Output: nonce || ciphertext.
func (s *Sealer) Seal(plaintext []byte, context string) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, plaintext, []byte(context)), nil
}

// Open decrypts a value sealed with the same context.
func (s *Sealer) Open(sealed []byte, context string) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrOpen
	}
	out, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(context))
	if err != nil {
		return nil, ErrOpen
	}
	return out, nil
}
