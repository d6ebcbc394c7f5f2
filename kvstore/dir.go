package kvstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"
)

// valueFile is the name of the file that holds a key's value, inside the
// folder named by the key. Keys have no segment that begins with a dot, so it
// can never collide with a key, and "a" and "a/b" can both hold values, as in
// S3.
const valueFile = ".value"

// tmpPrefix begins the name of a value being written. A crashed writer can
// leave one behind; List never reports it.
const tmpPrefix = ".value.tmp-"

// Dir is a Store kept in a folder on the local file system. Several
// goroutines and several processes on one machine can share one folder:
// values are written to a temporary file, synced and renamed into place, so a
// reader sees the old value or the new one, never a mix.
//
// The value of key "a/b" is the file "a/b/.value" under the root. Files are
// created 0600 and folders 0700. Every access goes through an [os.Root], so
// no key and no symbolic link planted in the folder reaches outside it.
// Create one with NewDir.
type Dir struct {
	root string
}

// NewDir returns a Store kept in the folder root, which it creates (0700) if
// it does not exist.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("kvstore: NewDir: empty folder name")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("kvstore: NewDir: %w", err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("kvstore: NewDir: %w", err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("kvstore: NewDir: %w", err)
	}
	r.Close()
	return &Dir{root: abs}, nil
}

// Root returns the folder the store is kept in.
func (d *Dir) Root() string { return d.root }

func (d *Dir) open() (*os.Root, error) {
	r, err := os.OpenRoot(d.root)
	if err != nil {
		return nil, fmt.Errorf("kvstore: open folder store: %w", err)
	}
	return r, nil
}

// maxName is the longest folder name the store makes: file systems cap a
// name at 255 bytes, keys' segments may be longer.
const maxName = 200

// contPrefix begins a folder that holds the first part of a long key
// segment, which the next folder name continues (no slash between).
const contPrefix = ".+"

// lastPrefix begins the folder that holds the last part of a long key
// segment when that part itself begins with a dot, so that List does not
// take it for a file of the store's own (".value", a temporary file) or for
// a continuation.
const lastPrefix = ".="

// keyDir returns the folder, relative to the root, that holds key's value.
// A segment of up to maxName bytes is a folder of that name; a longer one is
// split on rune boundaries into ".+<part>/.+<part>/<last part>", where a last
// part that begins with a dot is written ".=<last part>". No key segment
// begins with a dot, so the mapping is one-to-one.
func keyDir(key string) string {
	var b strings.Builder
	for i, seg := range strings.Split(key, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		for len(seg) > maxName {
			n := maxName
			for n > 0 && !utf8.RuneStart(seg[n]) {
				n--
			}
			b.WriteString(contPrefix)
			b.WriteString(seg[:n])
			b.WriteByte('/')
			seg = seg[n:]
			if len(seg) <= maxName && seg[0] == '.' {
				b.WriteString(lastPrefix)
			}
		}
		b.WriteString(seg)
	}
	return b.String()
}

func keyFile(key string) string { return filepath.FromSlash(keyDir(key) + "/" + valueFile) }

// Get implements Store.
func (d *Dir) Get(ctx context.Context, key string) ([]byte, error) {
	if err := begin(ctx, key); err != nil {
		return nil, err
	}
	r, err := d.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// O_NONBLOCK: opening a named pipe planted in the folder must not wait
	// for a writer (Stat below then rejects it); it changes nothing for a
	// regular file.
	f, err := r.OpenFile(keyFile(key), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		if isNotExist(err) {
			return nil, NotFound(key)
		}
		return nil, fmt.Errorf("kvstore: get %q: %w", key, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("kvstore: get %q: %w", key, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("kvstore: get %q: value is not a regular file", key)
	}
	if fi.Size() > MaxValueSize {
		return nil, fmt.Errorf("%w: stored value of key %q is %d bytes, over the %d-byte limit", ErrValueTooLarge, key, fi.Size(), MaxValueSize)
	}
	v, err := io.ReadAll(io.LimitReader(f, MaxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("kvstore: get %q: %w", key, err)
	}
	if len(v) > MaxValueSize {
		return nil, fmt.Errorf("%w: stored value of key %q is over the %d-byte limit", ErrValueTooLarge, key, MaxValueSize)
	}
	return v, nil
}

// Put implements Store.
func (d *Dir) Put(ctx context.Context, key string, value []byte) error {
	if err := begin(ctx, key); err != nil {
		return err
	}
	if err := CheckValue(key, value); err != nil {
		return err
	}
	r, err := d.open()
	if err != nil {
		return err
	}
	defer r.Close()
	dir := filepath.FromSlash(keyDir(key))
	// A concurrent Delete may prune the folder between MkdirAll and the
	// create; try again a few times.
	for attempt := 0; ; attempt++ {
		err = d.write(r, dir, value)
		if err == nil || !isNotExist(err) || attempt == 5 {
			break
		}
		if err := ctxErr(ctx); err != nil {
			return err
		}
	}
	if err != nil {
		return fmt.Errorf("kvstore: put %q: %w", key, err)
	}
	return nil
}

func (d *Dir) write(r *os.Root, dir string, value []byte) (err error) {
	if err := r.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var rnd [8]byte
	rand.Read(rnd[:])
	tmp := filepath.Join(dir, tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			r.Remove(tmp)
		}
	}()
	_, err = f.Write(value)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := r.Rename(tmp, filepath.Join(dir, valueFile)); err != nil {
		return err
	}
	// Make the rename itself durable.
	if df, err := r.Open(dir); err == nil {
		df.Sync()
		df.Close()
	}
	return nil
}

// Delete implements Store. It also removes the folders the key leaves
// empty.
func (d *Dir) Delete(ctx context.Context, key string) error {
	if err := begin(ctx, key); err != nil {
		return err
	}
	r, err := d.open()
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Remove(keyFile(key)); err != nil && !isNotExist(err) {
		return fmt.Errorf("kvstore: delete %q: %w", key, err)
	}
	// Prune folders left empty; Remove fails on a folder that still holds
	// anything, which ends the walk up.
	for dir := keyDir(key); dir != "." && dir != ""; dir = path.Dir(dir) {
		if r.Remove(filepath.FromSlash(dir)) != nil {
			break
		}
	}
	return nil
}

// List implements Store.
func (d *Dir) List(ctx context.Context, prefix string) ([]string, error) {
	if err := beginList(ctx, prefix); err != nil {
		return nil, err
	}
	r, err := d.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// Walk the deepest folder the prefix names whole: "a/b/c" walks "a/b".
	start, startKey := ".", ""
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		startKey = prefix[:i]
		start = filepath.FromSlash(keyDir(startKey))
	}
	keys := []string{}
	if err := walk(ctx, r, start, startKey, false, prefix, &keys); err != nil {
		if ctx.Err() != nil {
			return nil, ctxErr(ctx)
		}
		return nil, fmt.Errorf("kvstore: list %q: %w", prefix, err)
	}
	sort.Strings(keys)
	return keys, nil
}

// walk adds to keys every key under the folder dir, whose key so far is
// key (partial: a long segment continues, when cont is set), that begins
// with prefix.
func walk(ctx context.Context, r *os.Root, dir, key string, cont bool, prefix string, keys *[]string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := r.Open(dir)
	if err != nil {
		if isNotExist(err) {
			return nil // never there, or gone under us (a concurrent Delete)
		}
		return err
	}
	entries, err := f.ReadDir(-1)
	f.Close()
	if err != nil && !isNotExist(err) {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if name == valueFile {
			if !cont && key != "" && e.Type().IsRegular() && strings.HasPrefix(key, prefix) && ValidateKey(key) == nil {
				*keys = append(*keys, key)
			}
			continue
		}
		if !e.IsDir() {
			continue
		}
		next, nextCont := key, false
		if !cont && key != "" {
			next += "/"
		}
		switch {
		case strings.HasPrefix(name, contPrefix) && len(name) > len(contPrefix):
			next, nextCont = next+name[len(contPrefix):], true
		case cont && strings.HasPrefix(name, lastPrefix) && len(name) > len(lastPrefix):
			next += name[len(lastPrefix):]
		case strings.HasPrefix(name, "."):
			continue // temporary or foreign
		default:
			next += name
		}
		// Every key below begins with next: go down only where that can
		// match.
		if !strings.HasPrefix(next, prefix) && !strings.HasPrefix(prefix, next) {
			continue
		}
		if err := walk(ctx, r, filepath.Join(dir, name), next, nextCont, prefix, keys); err != nil {
			return err
		}
	}
	return nil
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
