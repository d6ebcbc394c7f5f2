//go:build unix

package kvstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDirGetFIFO plants a named pipe where a value belongs: Get must fail
// with a clear error rather than block in open until some writer appears.
func TestDirGetFIFO(t *testing.T) {
	s, root := newDir(t)
	dir := filepath.Join(root, "pipe")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, ".value")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := s.Get(context.Background(), "pipe")
		errc <- err
	}()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Get of a FIFO error = %v, want one saying it is not a regular file", err)
		}
	case <-time.After(30 * time.Second):
		// Release the blocked open so the goroutine ends, then fail.
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-errc
		t.Fatal("Get of a FIFO blocked")
	}
}
