package clerk

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
)

// maxSecretKeyFileSize refuses to read something that cannot be a key.
const maxSecretKeyFileSize = 64 << 10

// SecretKeyFromFile returns a VerifierOptions.SecretKey source reading the
// key from path, typically a mounted Secret. Kubernetes updates such files in
// place (a new file behind a symlink), so each call stats the file and
// re-reads it when its identity, size or modification time changed: a
// rotated key is used without a restart. Whitespace around the key is
// trimmed. Errors name the path, never the content.
func SecretKeyFromFile(path string) func(ctx context.Context) (string, error) {
	var (
		mu   sync.Mutex
		seen os.FileInfo // the file the cached key was read from
		key  string
	)
	return func(context.Context) (string, error) {
		info, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("read secret key: %w", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if seen != nil && os.SameFile(seen, info) && seen.Size() == info.Size() && seen.ModTime().Equal(info.ModTime()) {
			return key, nil
		}
		if info.Size() > maxSecretKeyFileSize {
			return "", fmt.Errorf("read secret key: %s is larger than %d bytes", path, maxSecretKeyFileSize)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("read secret key: %w", err)
		}
		k := strings.TrimSpace(string(b))
		if k == "" {
			return "", fmt.Errorf("read secret key: %s is empty", path)
		}
		// NOTE: if the file changed between Stat and ReadFile, info is
		// older than the content; the next call sees a change and re-reads.
		seen, key = info, k
		return key, nil
	}
}
