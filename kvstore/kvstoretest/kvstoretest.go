// Package kvstoretest checks that a kvstore.Store keeps the contract, and
// wraps a Store with faults so that code built on a Store can be tested
// against a misbehaving one.
//
// Run the conformance suite from a test of your own Store in one line:
//
//	func TestMyStore(t *testing.T) {
//		kvstoretest.Run(t, func(t *testing.T) kvstore.Store { return newMyStore(t) })
//	}
package kvstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/grpcutil/grpcutil/kvstore"
)

// InvalidKeys are keys every Store must reject with kvstore.ErrInvalidKey
// before touching its backend.
var InvalidKeys = []string{
	"",
	"/abs",
	"/",
	"a//b",
	"a/",
	"trailing/",
	".",
	"..",
	"../escape",
	"a/../../escape",
	"a/./b",
	"a/.hidden",
	".hidden",
	"a/..",
	"nul\x00byte",
	"new\nline",
	"tab\there",
	"del\x7f",
	"c1\u0085control",
	"back\\slash",
	"..\\..\\windows",
	"bad-utf8-\xff\xfe",
	strings.Repeat("k", kvstore.MaxKeyLen+1),
}

// InvalidPrefixes are List prefixes every Store must reject.
var InvalidPrefixes = []string{
	"/abs",
	"a//",
	"../",
	"a/../",
	"a/.",
	"nul\x00",
	"bad-utf8-\xff",
	strings.Repeat("p", kvstore.MaxKeyLen+1),
}

// Options tune Run for a slow backend.
type Options struct {
	// ManyKeys is how many keys the pagination test writes; at least 1,001
	// so that an S3-like backend must page. Zero means 1,100.
	ManyKeys int
	// Concurrency is how many goroutines the concurrency test runs. Zero
	// means 8.
	Concurrency int
	// MaxKeyLen is the longest key the store takes, for a store that
	// documents a limit below kvstore.MaxKeyLen (S3 under a key prefix).
	// Zero means kvstore.MaxKeyLen.
	MaxKeyLen int
	// MaxSegmentLen is the longest path segment the store takes, for a
	// backend kept on a file system that caps a name (versitygw's posix
	// backend: 255). Zero means no limit of its own.
	MaxSegmentLen int
	// NoNesting declares a backend that cannot hold a value under a key
	// that is also a folder of other keys ("a" and "a/b"), as versitygw's
	// posix backend cannot. The suite then skips that check.
	NoNesting bool
}

// Run runs the conformance suite against the Stores newStore returns. Each
// subtest asks for a new, empty Store.
func Run(t *testing.T, newStore func(t *testing.T) kvstore.Store) {
	t.Helper()
	RunWithOptions(t, newStore, Options{})
}

// RunWithOptions is Run with options.
func RunWithOptions(t *testing.T, newStore func(t *testing.T) kvstore.Store, o Options) {
	t.Helper()
	if o.ManyKeys == 0 {
		o.ManyKeys = 1100
	}
	if o.Concurrency == 0 {
		o.Concurrency = 8
	}
	if o.MaxKeyLen == 0 {
		o.MaxKeyLen = kvstore.MaxKeyLen
	}
	ctx := context.Background()

	t.Run("RoundTrip", func(t *testing.T) {
		s := newStore(t)
		cases := []struct{ key, value string }{
			{"a", "1"},
			{"certs/10.0.1.7:8443", "-----BEGIN CERTIFICATE-----\n"},
			{"services/hello/[::1]:50051", `{"addr":"[::1]:50051"}`},
			{"unicode/héllo/世界", "ok"},
			{"spaces in/a key", "ok"},
			{"dots.in/the.middle..ok", "ok"},
			{"empty-value", ""},
			{"binary", "\x00\xff\x01\n"},
			{longestKey(o), "longest key"},
		}
		if o.MaxSegmentLen == 0 || o.MaxSegmentLen >= 600 {
			cases = append(cases, struct{ key, value string }{"long/" + strings.Repeat("é", 300) + "/segment", "600-byte segment"})
		}
		for _, tc := range cases {
			mustPut(t, s, tc.key, []byte(tc.value))
			got, err := s.Get(ctx, tc.key)
			if err != nil {
				t.Fatalf("Get(%.40q) after Put: %v", tc.key, err)
			}
			if !bytes.Equal(got, []byte(tc.value)) {
				t.Fatalf("Get(%.40q) = %q, want %q", tc.key, got, tc.value)
			}
		}
	})

	t.Run("ValueIsCopied", func(t *testing.T) {
		s := newStore(t)
		v := []byte("original")
		mustPut(t, s, "k", v)
		copy(v, "CHANGED!")
		got := mustGet(t, s, "k")
		if string(got) != "original" {
			t.Fatalf("Get after the caller changed its slice = %q, want %q", got, "original")
		}
		copy(got, "MUTATED!")
		if got := mustGet(t, s, "k"); string(got) != "original" {
			t.Fatalf("Get after the caller changed a returned slice = %q, want %q", got, "original")
		}
	})

	t.Run("Overwrite", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("first, and longer"))
		mustPut(t, s, "k", []byte("second"))
		if got := mustGet(t, s, "k"); string(got) != "second" {
			t.Fatalf("Get after overwrite = %q, want %q", got, "second")
		}
	})

	t.Run("MissingKey", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "present/child", []byte("x"))
		for _, key := range []string{"absent", "present", "present/child/deeper", "present/chil"} {
			_, err := s.Get(ctx, key)
			if !errors.Is(err, kvstore.ErrNotFound) {
				t.Errorf("Get(%q) error = %v, want one matching kvstore.ErrNotFound", key, err)
			}
		}
	})

	t.Run("KeyAndPrefixOfKey", func(t *testing.T) {
		if o.NoNesting {
			t.Skip("the store declares it cannot nest keys (Options.NoNesting)")
		}
		s := newStore(t)
		mustPut(t, s, "a", []byte("1"))
		mustPut(t, s, "a/b", []byte("2"))
		mustPut(t, s, "a/b/c", []byte("3"))
		long := strings.Repeat("λ", 150) + strings.Repeat("x", 300)
		mustPut(t, s, "a/"+long, []byte("4"))
		assertList(t, s, "a/", []string{"a/b", "a/b/c", "a/" + long})
		assertList(t, s, "a/"+long[:250], []string{"a/" + long})
		mustDelete(t, s, "a/"+long)
		for k, want := range map[string]string{"a": "1", "a/b": "2", "a/b/c": "3"} {
			if got := mustGet(t, s, k); string(got) != want {
				t.Errorf("Get(%q) = %q, want %q", k, got, want)
			}
		}
		mustDelete(t, s, "a/b")
		if got := mustGet(t, s, "a/b/c"); string(got) != "3" {
			t.Errorf("Get(a/b/c) after deleting a/b = %q, want 3", got)
		}
		assertList(t, s, "", []string{"a", "a/b/c"})
	})

	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "d/k", []byte("v"))
		mustDelete(t, s, "d/k")
		if _, err := s.Get(ctx, "d/k"); !errors.Is(err, kvstore.ErrNotFound) {
			t.Fatalf("Get after Delete error = %v, want ErrNotFound", err)
		}
		mustDelete(t, s, "d/k")       // again: idempotent
		mustDelete(t, s, "never/was") // never there
		assertList(t, s, "", nil)
		mustPut(t, s, "d/k", []byte("back"))
		if got := mustGet(t, s, "d/k"); string(got) != "back" {
			t.Fatalf("Get after Delete and Put = %q, want %q", got, "back")
		}
	})

	t.Run("ListPrefix", func(t *testing.T) {
		s := newStore(t)
		keys := []string{
			"services/hello/10.0.0.1:80",
			"services/hello/10.0.0.2:80",
			"services/hello2/10.0.0.3:80",
			"services/hell",
			"services/hello-world/x",
			"certs/10.0.0.1:80",
			"z",
		}
		for i := len(keys) - 1; i >= 0; i-- { // reverse: List must sort
			mustPut(t, s, keys[i], []byte("v"))
		}
		for _, tc := range []struct {
			prefix string
			want   []string
		}{
			{"", []string{"certs/10.0.0.1:80", "services/hell", "services/hello-world/x", "services/hello/10.0.0.1:80", "services/hello/10.0.0.2:80", "services/hello2/10.0.0.3:80", "z"}},
			{"services/hello/", []string{"services/hello/10.0.0.1:80", "services/hello/10.0.0.2:80"}},
			{"services/hello", []string{"services/hello-world/x", "services/hello/10.0.0.1:80", "services/hello/10.0.0.2:80", "services/hello2/10.0.0.3:80"}},
			{"services/hell", []string{"services/hell", "services/hello-world/x", "services/hello/10.0.0.1:80", "services/hello/10.0.0.2:80", "services/hello2/10.0.0.3:80"}},
			{"services/hello/10.0.0.2", []string{"services/hello/10.0.0.2:80"}},
			{"services/hello/10.0.0.2:80", []string{"services/hello/10.0.0.2:80"}},
			{"services/hello/10.0.0.2:80/", nil},
			{"services/nothing/", nil},
			{"nothing", nil},
			{"c", []string{"certs/10.0.0.1:80"}},
			{"z", []string{"z"}},
		} {
			assertList(t, s, tc.prefix, tc.want)
		}
	})

	t.Run("ListMany", func(t *testing.T) {
		s := newStore(t)
		want := make([]string, o.ManyKeys)
		var wg sync.WaitGroup
		errs := make(chan error, o.ManyKeys)
		sem := make(chan struct{}, 16)
		for i := range want {
			want[i] = fmt.Sprintf("many/%05d", i)
			wg.Add(1)
			sem <- struct{}{}
			go func(k string) {
				defer wg.Done()
				defer func() { <-sem }()
				if err := s.Put(ctx, k, []byte(k)); err != nil {
					errs <- err
				}
			}(want[i])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("Put: %v", err)
		}
		mustPut(t, s, "other/key", []byte("x"))
		assertList(t, s, "many/", want)
		all, err := s.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != o.ManyKeys+1 {
			t.Fatalf("List(\"\") returned %d keys, want %d", len(all), o.ManyKeys+1)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		s := newStore(t)
		for _, key := range InvalidKeys {
			checkInvalid(t, "Get", key, func() error { _, err := s.Get(ctx, key); return err })
			checkInvalid(t, "Put", key, func() error { return s.Put(ctx, key, []byte("v")) })
			checkInvalid(t, "Delete", key, func() error { return s.Delete(ctx, key) })
		}
		for _, prefix := range InvalidPrefixes {
			checkInvalid(t, "List", prefix, func() error { _, err := s.List(ctx, prefix); return err })
		}
		// Nothing got written by any of it.
		assertList(t, s, "", nil)
	})

	t.Run("ValueSize", func(t *testing.T) {
		s := newStore(t)
		max := bytes.Repeat([]byte{'v'}, kvstore.MaxValueSize)
		mustPut(t, s, "max", max)
		if got := mustGet(t, s, "max"); !bytes.Equal(got, max) {
			t.Fatalf("Get of a %d-byte value returned %d bytes", len(max), len(got))
		}
		err := s.Put(ctx, "over", append(max, 'x'))
		if !errors.Is(err, kvstore.ErrValueTooLarge) {
			t.Fatalf("Put of %d bytes error = %v, want ErrValueTooLarge", kvstore.MaxValueSize+1, err)
		}
		if _, err := s.Get(ctx, "over"); !errors.Is(err, kvstore.ErrNotFound) {
			t.Fatalf("Get after a rejected Put error = %v, want ErrNotFound", err)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s := newStore(t)
		mustPut(t, s, "k", []byte("v"))
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a canceled context error = %v, want one matching context.Canceled", op, err)
			}
		}
		_, err := s.Get(cctx, "k")
		check("Get", err)
		check("Put", s.Put(cctx, "k2", []byte("v")))
		check("Delete", s.Delete(cctx, "k"))
		_, err = s.List(cctx, "")
		check("List", err)
		if got := mustGet(t, s, "k"); string(got) != "v" {
			t.Fatalf("a canceled Delete removed the key")
		}
		if _, err := s.Get(ctx, "k2"); !errors.Is(err, kvstore.ErrNotFound) {
			t.Fatalf("a canceled Put wrote the key (Get error = %v)", err)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		errs := make(chan error, o.Concurrency*4)
		for g := 0; g < o.Concurrency; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				shared := "shared/key"
				own := fmt.Sprintf("own/%d", g)
				for i := 0; i < 20; i++ {
					v := []byte(fmt.Sprintf("%d-%d", g, i))
					if err := s.Put(ctx, shared, v); err != nil {
						errs <- fmt.Errorf("Put shared: %w", err)
						return
					}
					if err := s.Put(ctx, own, v); err != nil {
						errs <- fmt.Errorf("Put own: %w", err)
						return
					}
					got, err := s.Get(ctx, own)
					if err != nil || !bytes.Equal(got, v) {
						errs <- fmt.Errorf("Get own = %q, %v; want %q", got, err, v)
						return
					}
					if _, err := s.Get(ctx, shared); err != nil {
						errs <- fmt.Errorf("Get shared: %w", err)
						return
					}
					if _, err := s.List(ctx, "own/"); err != nil {
						errs <- fmt.Errorf("List: %w", err)
						return
					}
					if i%5 == 4 {
						if err := s.Delete(ctx, own); err != nil {
							errs <- fmt.Errorf("Delete: %w", err)
							return
						}
					}
				}
			}(g)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		got := mustGet(t, s, "shared/key")
		var g, i int
		if _, err := fmt.Sscanf(string(got), "%d-%d", &g, &i); err != nil || i != 19 {
			t.Errorf("shared key holds %q, want the last value some writer put", got)
		}
	})
}

// longestKey returns a key of o.MaxKeyLen bytes in segments no longer than
// o.MaxSegmentLen.
func longestKey(o Options) string {
	seg := o.MaxKeyLen
	if o.MaxSegmentLen > 0 && o.MaxSegmentLen < seg {
		seg = o.MaxSegmentLen
	}
	var b strings.Builder
	for left := o.MaxKeyLen; left > 0; {
		if b.Len() > 0 {
			b.WriteByte('/')
			left--
		}
		n := min(seg, left)
		if left-n == 1 { // leave room for a slash and one more byte
			n--
		}
		b.WriteString(strings.Repeat("k", n))
		left -= n
	}
	return b.String()
}

func checkInvalid(t *testing.T, op, key string, f func() error) {
	t.Helper()
	err := f()
	if !errors.Is(err, kvstore.ErrInvalidKey) {
		t.Errorf("%s(%.40q) error = %v, want one matching kvstore.ErrInvalidKey", op, key, err)
		return
	}
	var ke *kvstore.KeyError
	if !errors.As(err, &ke) || ke.Reason == "" {
		t.Errorf("%s(%.40q) error %v is not a *kvstore.KeyError with a reason", op, key, err)
	}
	if !strings.HasPrefix(err.Error(), "kvstore: ") {
		t.Errorf("%s(%.40q) error %q does not begin with the package prefix", op, key, err)
	}
}

func mustPut(t *testing.T, s kvstore.Store, key string, value []byte) {
	t.Helper()
	if err := s.Put(context.Background(), key, value); err != nil {
		t.Fatalf("Put(%.40q): %v", key, err)
	}
}

func mustGet(t *testing.T, s kvstore.Store, key string) []byte {
	t.Helper()
	v, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%.40q): %v", key, err)
	}
	return v
}

func mustDelete(t *testing.T, s kvstore.Store, key string) {
	t.Helper()
	if err := s.Delete(context.Background(), key); err != nil {
		t.Fatalf("Delete(%.40q): %v", key, err)
	}
}

func assertList(t *testing.T, s kvstore.Store, prefix string, want []string) {
	t.Helper()
	got, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if len(got) != len(want) {
		t.Fatalf("List(%q) returned %d keys %.200q, want %d %.200q", prefix, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("List(%q)[%d] = %q, want %q (sorted, exact prefix)", prefix, i, got[i], want[i])
		}
	}
}
