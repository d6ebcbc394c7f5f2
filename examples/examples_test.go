// Package examples_test runs examples/server and examples/client as two
// separate processes sharing a folder store, as two terminals would.
package examples_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grpcutil/grpcutil/kvstore"
)

func build(t *testing.T) (server, client string) {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "build", "-o", bin+string(os.PathSeparator), "./server", "./client")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(bin, "server"), filepath.Join(bin, "client")
}

func TestServerAndClientProcesses(t *testing.T) {
	serverBin, clientBin := build(t)
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"tls", nil},
		{"h2c", []string{"-h2c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			storeFlag := "dir:" + dir
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			srv := exec.CommandContext(ctx, serverBin, append([]string{"-store", storeFlag, "-addr", "127.0.0.1:0", "-heartbeat", "200ms"}, tc.flags...)...)
			stderr, err := srv.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			defer srv.Process.Kill()
			// Wait for "serving hello on ADDR as ADDR, registered at ...".
			lines := bufio.NewScanner(stderr)
			var addr string
			serving := regexp.MustCompile(`^server: serving hello on (\S+) as `)
			for addr == "" && lines.Scan() {
				if m := serving.FindStringSubmatch(lines.Text()); m != nil {
					addr = m[1]
				}
			}
			if addr == "" {
				t.Fatalf("the server did not start: %v", lines.Err())
			}
			rest := make(chan string, 1)
			go func() { b, _ := io.ReadAll(stderr); rest <- string(b) }()

			cli := exec.CommandContext(ctx, clientBin, append([]string{"-store", storeFlag, "-n", "3", "-every", "10ms", "-poll", "100ms"}, tc.flags...)...)
			out, err := cli.Output()
			if err != nil {
				t.Fatalf("client: %v\n%s", err, out)
			}
			want := strings.Repeat("hello client, from "+addr+"\n", 3)
			if string(out) != want {
				t.Fatalf("client printed %q, want %q", out, want)
			}

			// SIGTERM: the server deregisters, revokes and exits 0.
			if err := srv.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := srv.Wait(); err != nil {
				t.Fatalf("server exit: %v\n%s", err, <-rest)
			}
			store, err := kvstore.NewDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := store.List(ctx, "")
			if err != nil || len(keys) != 0 {
				t.Fatalf("after the server stopped the store holds %q (%v); want its certificate and record gone", keys, err)
			}
			if log := <-rest; !strings.Contains(log, "rpc.total.server.started") {
				t.Errorf("the server's metrics snapshot is missing:\n%s", log)
			}
		})
	}
}
