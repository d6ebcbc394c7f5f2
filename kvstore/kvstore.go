package kvstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Store is a small key-value store.
//
// Implementations must be safe for concurrent use by multiple goroutines, and
// must reject invalid keys (see ValidateKey) and oversize values (see
// MaxValueSize) before they reach the backend.
type Store interface {
	// Get returns the value stored under key. It returns an error that
	// matches ErrNotFound (errors.Is) when the key is absent.
	Get(ctx context.Context, key string) ([]byte, error)
	// Put stores value under key, replacing any previous value. The store
	// keeps its own copy: the caller may reuse value once Put returns.
	Put(ctx context.Context, key string, value []byte) error
	// Delete removes key. Deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns every key that begins with prefix (a plain string
	// prefix, as S3 has it: "a/b" matches "a/b/c" and "a/bc"), sorted in
	// byte order, however many pages the backend needs. An empty prefix
	// lists every key.
	List(ctx context.Context, prefix string) ([]string, error)
}

const (
	// MaxKeyLen is the largest key, in bytes, any Store accepts.
	MaxKeyLen = 1024
	// MaxValueSize is the largest value, in bytes, any Store accepts or
	// returns. Certificate bundles and service records are a few KiB; the
	// cap bounds what an untrusted store can make a reader allocate.
	MaxValueSize = 1 << 20
)

var (
	// ErrNotFound is returned (wrapped) by Get when the key is absent.
	ErrNotFound = errors.New("kvstore: key not found")
	// ErrInvalidKey is matched (errors.Is) by every error that rejects a
	// key or prefix; the error itself is a *KeyError.
	ErrInvalidKey = errors.New("kvstore: invalid key")
	// ErrValueTooLarge is matched (errors.Is) by the error for a value over
	// MaxValueSize, whether it is being written or read back.
	ErrValueTooLarge = errors.New("kvstore: value too large")
)

// KeyError reports a rejected key or prefix, and why.
type KeyError struct {
	Key    string // the key as given (it may be long or hold control characters)
	Reason string
	Prefix bool // a List prefix, rather than a key, was rejected
}

func (e *KeyError) Error() string {
	what := "key"
	if e.Prefix {
		what = "prefix"
	}
	k := e.Key
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	return fmt.Sprintf("kvstore: invalid %s %q: %s", what, k, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidKey) hold.
func (e *KeyError) Is(target error) bool { return target == ErrInvalidKey }

// ValidateKey reports whether key is a valid key, with a *KeyError saying
// why not. A valid key is a relative, slash-separated path of valid UTF-8 of
// at most MaxKeyLen bytes, with no empty segment (so no leading, trailing or
// double slash), no segment that begins with a dot (so no "." or ".."), and
// no control characters or backslashes.
//
// Every Store in this module calls it before touching its backend; a Store of
// your own should too.
func ValidateKey(key string) error {
	if key == "" {
		return &KeyError{Key: key, Reason: "empty"}
	}
	if len(key) > MaxKeyLen {
		return &KeyError{Key: key, Reason: fmt.Sprintf("%d bytes, over the %d-byte limit", len(key), MaxKeyLen)}
	}
	if reason := checkPath(key, false); reason != "" {
		return &KeyError{Key: key, Reason: reason}
	}
	return nil
}

// ValidatePrefix reports whether prefix is a valid List prefix: empty, or the
// beginning of some valid key. Its final segment may be empty ("a/b/") or
// partial ("a/b/c" matches "a/b/cd").
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) > MaxKeyLen {
		return &KeyError{Key: prefix, Prefix: true, Reason: fmt.Sprintf("%d bytes, over the %d-byte limit", len(prefix), MaxKeyLen)}
	}
	if reason := checkPath(prefix, true); reason != "" {
		return &KeyError{Key: prefix, Prefix: true, Reason: reason}
	}
	return nil
}

// checkPath returns why p is not a valid key (or prefix), or "".
func checkPath(p string, prefix bool) string {
	if !utf8.ValidString(p) {
		return "not valid UTF-8"
	}
	for i, r := range p {
		switch {
		case unicode.IsControl(r):
			return fmt.Sprintf("control character %U at byte %d", r, i)
		case r == '\\':
			return fmt.Sprintf("backslash at byte %d", i)
		}
	}
	if strings.HasPrefix(p, "/") {
		return "absolute path (leading slash)"
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		switch {
		case s == "" && last && prefix:
			// "a/" is a fine prefix.
		case s == "" && last:
			return "trailing slash"
		case s == "":
			return "empty path segment (double slash)"
		case s == "." || s == "..":
			return fmt.Sprintf("%q path segment", s)
		case s[0] == '.':
			return fmt.Sprintf("path segment %q begins with a dot", s)
		}
	}
	return ""
}

// CheckValue returns an error matching ErrValueTooLarge when value is over
// MaxValueSize.
func CheckValue(key string, value []byte) error {
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: %d bytes for key %q, over the %d-byte limit", ErrValueTooLarge, len(value), key, MaxValueSize)
	}
	return nil
}

// NotFound returns an error for an absent key that matches ErrNotFound.
func NotFound(key string) error {
	return fmt.Errorf("%w: %q", ErrNotFound, key)
}
