package kvstore_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/grpcutil/grpcutil/kvstore"
)

func TestValidateKey(t *testing.T) {
	for _, tc := range []struct {
		key     string
		wantErr string // "" for a valid key
	}{
		{"a", ""},
		{"certs/10.0.1.7:8443", ""},
		{"services/hello/[::1]:50051", ""},
		{"a.b/c..d/e.", ""},
		{"unicode/世界", ""},
		{strings.Repeat("k", kvstore.MaxKeyLen), ""},
		{"", `kvstore: invalid key "": empty`},
		{"/a", `kvstore: invalid key "/a": absolute path (leading slash)`},
		{"a/", `kvstore: invalid key "a/": trailing slash`},
		{"a//b", `kvstore: invalid key "a//b": empty path segment (double slash)`},
		{"..", `kvstore: invalid key "..": ".." path segment`},
		{"a/../b", `kvstore: invalid key "a/../b": ".." path segment`},
		{"./a", `kvstore: invalid key "./a": "." path segment`},
		{"a/.git", `kvstore: invalid key "a/.git": path segment ".git" begins with a dot`},
		{"a\x00b", `kvstore: invalid key "a\x00b": control character U+0000 at byte 1`},
		{"a\nb", `kvstore: invalid key "a\nb": control character U+000A at byte 1`},
		{"a\u0085", `kvstore: invalid key "a\u0085": control character U+0085 at byte 1`},
		{`a\b`, `kvstore: invalid key "a\\b": backslash at byte 1`},
		{"a\xffb", `kvstore: invalid key "a\xffb": not valid UTF-8`},
		{strings.Repeat("k", kvstore.MaxKeyLen+1), `kvstore: invalid key "` + strings.Repeat("k", 64) + `...": 1025 bytes, over the 1024-byte limit`},
	} {
		err := kvstore.ValidateKey(tc.key)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("ValidateKey(%.40q) = %v, want nil", tc.key, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.wantErr {
			t.Errorf("ValidateKey(%.40q) = %v, want %s", tc.key, err, tc.wantErr)
		}
		if !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Errorf("ValidateKey(%.40q) error does not match ErrInvalidKey", tc.key)
		}
	}
}

func TestValidatePrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix  string
		wantErr string
	}{
		{"", ""},
		{"a", ""},
		{"a/", ""},
		{"services/hello/", ""},
		{"services/hel", ""},
		{"/", `kvstore: invalid prefix "/": absolute path (leading slash)`},
		{"a//", `kvstore: invalid prefix "a//": empty path segment (double slash)`},
		{"a/.", `kvstore: invalid prefix "a/.": "." path segment`},
		{"a/.x", `kvstore: invalid prefix "a/.x": path segment ".x" begins with a dot`},
		{"../", `kvstore: invalid prefix "../": ".." path segment`},
	} {
		err := kvstore.ValidatePrefix(tc.prefix)
		if tc.wantErr == "" {
			if err != nil {
				t.Errorf("ValidatePrefix(%q) = %v, want nil", tc.prefix, err)
			}
			continue
		}
		if err == nil || err.Error() != tc.wantErr {
			t.Errorf("ValidatePrefix(%q) = %v, want %s", tc.prefix, err, tc.wantErr)
		}
	}
}

func TestErrorsWrap(t *testing.T) {
	err := kvstore.NotFound("a/b")
	if !errors.Is(err, kvstore.ErrNotFound) || err.Error() != `kvstore: key not found: "a/b"` {
		t.Fatalf("NotFound = %v", err)
	}
	err = kvstore.CheckValue("k", make([]byte, kvstore.MaxValueSize+1))
	if !errors.Is(err, kvstore.ErrValueTooLarge) || err.Error() != `kvstore: value too large: 1048577 bytes for key "k", over the 1048576-byte limit` {
		t.Fatalf("CheckValue = %v", err)
	}
	if err := kvstore.CheckValue("k", make([]byte, kvstore.MaxValueSize)); err != nil {
		t.Fatalf("CheckValue at the cap = %v", err)
	}
}

// FuzzValidateKey checks that validation never panics, and that what it
// accepts keeps the promises the stores rely on.
func FuzzValidateKey(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "a//b", ".x", "a\x00", "\xff", "services/hello/[::1]:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		if kvstore.ValidateKey(key) != nil {
			return
		}
		if len(key) == 0 || len(key) > kvstore.MaxKeyLen || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") ||
			strings.Contains(key, "//") || strings.Contains(key, "/.") || strings.HasPrefix(key, ".") || strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("ValidateKey accepted %q", key)
		}
		if kvstore.ValidatePrefix(key) != nil || kvstore.ValidatePrefix(key+"/") != nil {
			t.Fatalf("a valid key %q is not a valid prefix", key)
		}
	})
}
