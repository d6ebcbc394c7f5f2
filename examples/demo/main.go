// Command demo runs the whole grpcutil flow in one process, on one machine,
// with no cloud account:
//
//	go run ./examples/demo
//
// A folder store in a temporary directory stands in for S3. Three servers
// make their own certificates (kvcertverify), publish them and register
// themselves (kvresolver) in the store, and verify each client's EC2
// Instance Identity Document (iid over handshake). The client resolves
// kv:///hello through the store, pins the servers' certificates, and
// presents a document from a local fake metadata service that signs with a
// demo key, which the servers are told to trust. Both sides record metrics
// (metricsint). The demo then rotates one server's certificate, revokes one
// (deletes its published certificate) and kills one, and shows the client
// carrying on with the rest.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

var _ io.Writer = os.Stdout
