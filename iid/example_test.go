package iid_test

import (
	"context"
	"fmt"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/grpcutil/grpcutil/handshake"
	"github.com/grpcutil/grpcutil/iid"
	"github.com/grpcutil/grpcutil/iid/iidtest"
)

// Fetch a document from (here, a fake) IMDS and verify it. On EC2, drop
// WithEndpoint and the demo trust: the embedded AWS keys are used.
func Example() {
	signer, err := iidtest.NewSigner()
	if err != nil {
		log.Fatal(err)
	}
	doc := []byte(`{"accountId":"123456789012","instanceId":"i-0123456789abcdef0","region":"us-east-1","pendingTime":"2026-11-20T10:00:00Z"}`)
	fake, err := iidtest.NewIMDS(doc, signer)
	if err != nil {
		log.Fatal(err)
	}
	defer fake.Close()

	sd, err := iid.GetDocumentAndSignature(context.Background(), iid.WithEndpoint(fake.URL))
	if err != nil {
		log.Fatal(err)
	}

	trust, err := signer.Trust("us-east-1") // the demo key, in place of AWS's
	if err != nil {
		log.Fatal(err)
	}
	v, err := iid.NewVerifier(append(trust, iid.WithAllowedAccounts("123456789012"))...)
	if err != nil {
		log.Fatal(err)
	}
	d, err := v.Verify(*sd)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.InstanceID, d.AccountID, d.Region, d.Form)
	// Output: i-0123456789abcdef0 123456789012 us-east-1 rsa2048
}

// Authenticate gRPC clients by their instance identity: the server verifies
// the document each client sends inside TLS and handlers read it back.
func ExampleNewServerHandshake() {
	var serverTLS credentials.TransportCredentials // e.g. credentials.NewTLS(...) or kvcertverify
	v, err := iid.NewVerifier(iid.WithAllowedAccounts("123456789012"))
	if err != nil {
		log.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.Creds(handshake.Wrap(serverTLS, handshake.Funcs{Server: iid.NewServerHandshake(v)})),
		grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if d, ok := iid.FromContext(ctx); ok {
				log.Printf("call from %s in account %s", d.InstanceID, d.AccountID)
			}
			return h(ctx, req)
		}),
	)
	_ = srv
}

// The client fetches its document from IMDS for each connection and sends
// it only over a channel that is encrypted and authenticates the server.
func ExampleNewClientHandshake() {
	var clientTLS credentials.TransportCredentials // pins the server, e.g. kvcertverify
	fetcher, err := iid.NewFetcher()
	if err != nil {
		log.Fatal(err)
	}
	creds := handshake.Wrap(clientTLS, handshake.Funcs{Client: iid.NewClientHandshake(fetcher)})
	cc, err := grpc.NewClient("dns:///hello.internal:8443", grpc.WithTransportCredentials(creds))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
}
