package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/grpcutil/grpcutil/kvstore"
)

func newDir(t testing.TB) (*kvstore.Dir, string) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "store")
	s, err := kvstore.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

func TestDirPermissions(t *testing.T) {
	s, root := newDir(t)
	if err := s.Put(context.Background(), "certs/10.0.0.1:443", []byte("pem")); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if e.IsDir() {
			want = 0o700
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", strings.TrimPrefix(p, root), got, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "certs", "10.0.0.1:443", ".value")); err != nil || string(b) != "pem" {
		t.Fatalf("value file = %q, %v; want the value at <root>/<key>/.value", b, err)
	}
}

// TestDirNeverEscapes plants symbolic links that lead out of the root and
// checks that no operation follows them.
func TestDirNeverEscapes(t *testing.T) {
	s, root := newDir(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret", ".value")
	os.MkdirAll(filepath.Dir(secret), 0o700)
	os.WriteFile(secret, []byte("outside"), 0o600)
	// certs -> the outside folder: Get("certs/secret") would read it.
	if err := os.Symlink(outside, filepath.Join(root, "certs")); err != nil {
		t.Fatal(err)
	}
	// abs -> /: an absolute link.
	if err := os.Symlink("/", filepath.Join(root, "abs")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if v, err := s.Get(ctx, "certs/secret"); err == nil {
		t.Fatalf("Get through a link out of the root returned %q", v)
	}
	if err := s.Put(ctx, "certs/planted", []byte("x")); err == nil {
		t.Fatal("Put through a link out of the root succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Put wrote outside the root: %v", err)
	}
	if err := s.Delete(ctx, "certs/secret"); err == nil {
		if _, err := os.Stat(secret); err != nil {
			t.Fatal("Delete removed a file outside the root")
		}
	}
	if _, err := s.Get(ctx, "abs/etc/passwd"); err == nil {
		t.Fatal("Get through an absolute link succeeded")
	}
	keys, _ := s.List(ctx, "")
	for _, k := range keys {
		if strings.HasPrefix(k, "certs/") || strings.HasPrefix(k, "abs/") {
			t.Fatalf("List followed a link out of the root: %q", k)
		}
	}
}

func TestDirIgnoresForeignFiles(t *testing.T) {
	s, root := newDir(t)
	ctx := context.Background()
	if err := s.Put(ctx, "a/b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	// A crashed writer's temporary file, an editor's backup, a stray file.
	os.WriteFile(filepath.Join(root, "a", "b", ".value.tmp-deadbeef"), []byte("partial"), 0o600)
	os.WriteFile(filepath.Join(root, "a", "README"), []byte("x"), 0o600)
	os.MkdirAll(filepath.Join(root, ".git", "x"), 0o700)
	os.WriteFile(filepath.Join(root, ".git", "x", ".value"), []byte("x"), 0o600)
	keys, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(keys) != "[a/b]" {
		t.Fatalf("List = %q, want [a/b]", keys)
	}
}

func TestDirOversizeFile(t *testing.T) {
	s, root := newDir(t)
	ctx := context.Background()
	if err := s.Put(ctx, "big", []byte("small")); err != nil {
		t.Fatal(err)
	}
	// Something else grows the file past the cap: Get refuses, unread.
	if err := os.WriteFile(filepath.Join(root, "big", ".value"), make([]byte, kvstore.MaxValueSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "big"); !errors.Is(err, kvstore.ErrValueTooLarge) {
		t.Fatalf("Get of an oversize file error = %v, want ErrValueTooLarge", err)
	}
}

func TestDirDeletePrunesFolders(t *testing.T) {
	s, root := newDir(t)
	ctx := context.Background()
	s.Put(ctx, "services/hello/10.0.0.1:1", []byte("v"))
	s.Put(ctx, "services/other/10.0.0.2:1", []byte("v"))
	s.Delete(ctx, "services/hello/10.0.0.1:1")
	if _, err := os.Stat(filepath.Join(root, "services", "hello")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Delete left an empty folder behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "services", "other")); err != nil {
		t.Fatalf("Delete pruned a folder still in use: %v", err)
	}
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("Delete pruned the root: %v", err)
	}
}

// TestDirConcurrentPutDelete races writers against deletes that prune the
// folders the writers need.
func TestDirConcurrentPutDelete(t *testing.T) {
	s, _ := newDir(t)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				key := fmt.Sprintf("deep/a/b/c/%d", (g+i)%3)
				if err := s.Put(ctx, key, []byte("v")); err != nil {
					errs <- err
				}
				if err := s.Delete(ctx, key); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestDirSharedBetweenProcesses runs writers in child processes (this test
// binary, re-run) against one folder, while this process reads: every read
// sees a whole value.
func TestDirSharedBetweenProcesses(t *testing.T) {
	if dir := os.Getenv("KVSTORE_CHILD_DIR"); dir != "" {
		s, err := kvstore.NewDir(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		id := os.Getenv("KVSTORE_CHILD_ID")
		for i := 0; i < 200; i++ {
			v := strings.Repeat(id, 4096) // a torn write would mix ids
			if err := s.Put(context.Background(), "shared/key", []byte(v)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := s.Put(context.Background(), "own/"+id, []byte(fmt.Sprint(i))); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	}
	s, root := newDir(t)
	ctx := context.Background()
	var children []*exec.Cmd
	for _, id := range []string{"x", "y", "z"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDirSharedBetweenProcesses$")
		cmd.Env = append(os.Environ(), "KVSTORE_CHILD_DIR="+root, "KVSTORE_CHILD_ID="+id)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children = append(children, cmd)
	}
	done := make(chan error, len(children))
	for _, c := range children {
		go func(c *exec.Cmd) { done <- c.Wait() }(c)
	}
	finished := 0
	for finished < len(children) {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("writer process: %v", err)
			}
			finished++
		default:
		}
		v, err := s.Get(ctx, "shared/key")
		if errors.Is(err, kvstore.ErrNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("Get while others write: %v", err)
		}
		if len(v) != 4096 || strings.Count(string(v), string(v[:1])) != 4096 {
			t.Fatalf("Get saw a torn value of %d bytes", len(v))
		}
	}
	keys, err := s.List(ctx, "own/")
	if err != nil || fmt.Sprint(keys) != "[own/x own/y own/z]" {
		t.Fatalf("List = %q, %v", keys, err)
	}
	for _, k := range keys {
		if v, err := s.Get(ctx, k); err != nil || string(v) != "199" {
			t.Fatalf("Get(%s) = %q, %v; want the last value", k, v, err)
		}
	}
}

func TestNewDirErrors(t *testing.T) {
	if _, err := kvstore.NewDir(""); err == nil || err.Error() != "kvstore: NewDir: empty folder name" {
		t.Fatalf("NewDir(\"\") error = %v", err)
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := kvstore.NewDir(f); err == nil || !strings.HasPrefix(err.Error(), "kvstore: NewDir: ") {
		t.Fatalf("NewDir(a file) error = %v", err)
	}
}

// TestDirListLongSegmentDotRemainder lists keys whose long segment is split
// so that the part after the split begins with a dot (or with the
// continuation marker): the walk must still find them.
func TestDirListLongSegmentDotRemainder(t *testing.T) {
	s, _ := newDir(t)
	ctx := context.Background()
	head := strings.Repeat("a", 200)
	keys := []string{
		"k/" + head + ".value",
		"k/" + head + ".b",
		"k/" + head + ".+c",
		"k/" + head + ".value.tmp-0123456789abcdef",
		"k/" + head + strings.Repeat("b", 200) + ".d",
	}
	for _, k := range keys {
		if err := s.Put(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.List(ctx, "k/")
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List = %q\nwant %q", got, want)
	}
	for _, k := range keys {
		if v, err := s.Get(ctx, k); err != nil || string(v) != k {
			t.Errorf("Get(%q) = %q, %v", k, v, err)
		}
		if err := s.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s.List(ctx, ""); err != nil || len(got) != 0 {
		t.Fatalf("List after Delete = %q, %v", got, err)
	}
}
