package iid_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/grpcutil/grpcutil/handshake"
	"github.com/grpcutil/grpcutil/iid"
	"github.com/grpcutil/grpcutil/internal/testcert"
)

// tlsPair returns TLS server credentials for 127.0.0.1 and client
// credentials that trust them.
func tlsPair(t testing.TB) (server, client credentials.TransportCredentials) {
	t.Helper()
	server, err := testcert.ServerCreds()
	if err != nil {
		t.Fatal(err)
	}
	client, err = testcert.ClientCreds()
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// docServer is a real gRPC server (health service) whose interceptor
// records the iid.Document of each RPC's connection.
type docServer struct {
	addr string
	mu   sync.Mutex
	docs []*iid.Document
}

func startServer(t testing.TB, creds credentials.TransportCredentials) *docServer {
	t.Helper()
	ds := &docServer{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(creds), grpc.UnaryInterceptor(
		func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			d, ok := iid.FromContext(ctx)
			if ok {
				ds.mu.Lock()
				ds.docs = append(ds.docs, d)
				ds.mu.Unlock()
			}
			return h(ctx, req)
		}))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	ds.addr = lis.Addr().String()
	return ds
}

func (ds *docServer) lastDoc() *iid.Document {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if len(ds.docs) == 0 {
		return nil
	}
	return ds.docs[len(ds.docs)-1]
}

func call(t testing.TB, addr string, creds credentials.TransportCredentials) error {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}

func TestHandshakeTLS(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	fetcher, err := iid.NewFetcher(iid.WithEndpoint(f.imds.URL), iid.WithHTTPClient(h))
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, clientTLS := tlsPair(t)

	tests := []struct {
		name    string
		policy  []iid.VerifyOption
		trust   bool
		wantErr string
	}{
		{name: "accepted", policy: []iid.VerifyOption{iid.WithAllowedAccounts("123456789012"), iid.WithAllowedRegions("us-east-1")}, trust: true},
		{name: "other account", policy: []iid.VerifyOption{iid.WithAllowedAccounts("210987654321")}, trust: true,
			wantErr: "handshake: rejected by server: iid: instance identity document refused by policy"},
		{name: "other instance", policy: []iid.VerifyOption{iid.WithAllowedInstanceIDs("i-0fffffffffffffff0")}, trust: true,
			wantErr: "refused by policy"},
		{name: "custom check", policy: []iid.VerifyOption{iid.WithCheck(func(d *iid.Document) error {
			if d.InstanceType != "m5.large" {
				return errors.New("wrong instance type")
			}
			return nil
		})}, trust: true, wantErr: "refused by policy"},
		{name: "signer not trusted (embedded AWS keys only)", trust: false,
			wantErr: "handshake: rejected by server: iid: instance identity document does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.policy
			if tc.trust {
				opts = append(append([]iid.VerifyOption(nil), f.trust...), opts...)
			}
			v, err := iid.NewVerifier(opts...)
			if err != nil {
				t.Fatal(err)
			}
			ds := startServer(t, handshake.Wrap(serverTLS, handshake.Funcs{Server: iid.NewServerHandshake(v)}))
			err = call(t, ds.addr, handshake.Wrap(clientTLS, handshake.Funcs{Client: iid.NewClientHandshake(fetcher)}))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				d := ds.lastDoc()
				if d == nil || d.InstanceID != "i-0123456789abcdef0" || d.AccountID != "123456789012" || d.Form != iid.FormRSA2048 {
					t.Fatalf("handler saw %+v", d)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
			if ds.lastDoc() != nil {
				t.Fatal("an RPC ran on a refused connection")
			}
		})
	}
}

func TestHandshakeLegacyFormOverInsecure(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	sd, err := iid.GetDocumentAndSignature(context.Background(), iid.WithEndpoint(f.imds.URL),
		iid.WithHTTPClient(h), iid.WithForm(iid.FormPKCS7))
	if err != nil {
		t.Fatal(err)
	}
	v, err := iid.NewVerifier(append(f.trust, iid.WithAllowedForms(iid.FormPKCS7))...)
	if err != nil {
		t.Fatal(err)
	}
	ds := startServer(t, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{Server: iid.NewServerHandshake(v)}))

	// By default the client will not send its document in clear.
	err = call(t, ds.addr, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{Client: iid.NewClientHandshake(iid.Static(*sd))}))
	if err == nil || !strings.Contains(err.Error(), "privacy and integrity") {
		t.Fatalf("got %v, want the client to refuse an insecure channel", err)
	}
	if ds.lastDoc() != nil {
		t.Fatal("server saw a document")
	}
	err = call(t, ds.addr, handshake.Wrap(insecure.NewCredentials(), handshake.Funcs{
		Client: iid.NewClientHandshake(iid.Static(*sd), iid.WithInsecureChannelForTesting())}))
	if err != nil {
		t.Fatal(err)
	}
	if d := ds.lastDoc(); d == nil || d.Form != iid.FormPKCS7 {
		t.Fatalf("handler saw %+v", d)
	}
}

func TestHandshakeClientFetchFails(t *testing.T) {
	f := newFixture(t)
	url := f.imds.URL
	f.imds.Close()
	fetcher, err := iid.NewFetcher(iid.WithEndpoint(url))
	if err != nil {
		t.Fatal(err)
	}
	v, err := iid.NewVerifier(f.trust...)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, clientTLS := tlsPair(t)
	ds := startServer(t, handshake.Wrap(serverTLS, handshake.Funcs{Server: iid.NewServerHandshake(v)}))
	err = call(t, ds.addr, handshake.Wrap(clientTLS, handshake.Funcs{Client: iid.NewClientHandshake(fetcher)}))
	if err == nil || !strings.Contains(err.Error(), "iid: client handshake: iid: fetch") {
		t.Fatalf("got %v", err)
	}
}

func TestFromContextWithoutHandshake(t *testing.T) {
	if d, ok := iid.FromContext(context.Background()); ok || d != nil {
		t.Fatal("found a document in an empty context")
	}
}

func TestHandshakeHostileClients(t *testing.T) {
	f := newFixture(t)
	v, err := iid.NewVerifier(append(f.trust, iid.WithAllowedForms(iid.FormRSA2048, iid.FormSignature))...)
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, clientTLS := tlsPair(t)
	ds := startServer(t, handshake.Wrap(serverTLS, handshake.Funcs{Server: iid.NewServerHandshake(v)}))

	sig, err := f.signer.Sign(iid.FormRSA2048, demoDoc)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(demoDoc, []byte("t3.micro"), []byte("t3.large"), 1)
	send := func(msg []byte) handshake.ClientFunc {
		return func(ctx context.Context, m handshake.Messenger, _ credentials.AuthInfo) (any, error) {
			return nil, m.Send(msg)
		}
	}
	tests := []struct {
		name    string
		client  handshake.ClientFunc
		wantErr string
	}{
		{"tampered document", iid.NewClientHandshake(iid.Static(iid.SignedDocument{Document: tampered, Signature: sig, Form: iid.FormRSA2048})), "does not verify"},
		{"form mislabelled", iid.NewClientHandshake(iid.Static(iid.SignedDocument{Document: demoDoc, Signature: sig, Form: iid.FormSignature})), "does not verify"},
		{"legacy form not allowed", iid.NewClientHandshake(iid.Static(iid.SignedDocument{Document: demoDoc, Signature: sig, Form: iid.FormPKCS7})), "does not verify"},
		{"garbage message", send([]byte("hello")), "malformed handshake message"},
		{"empty message", send(nil), "malformed handshake message"},
		{"length beyond message", send([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, '{'}), "malformed handshake message"},
		{"sends nothing", func(context.Context, handshake.Messenger, credentials.AuthInfo) (any, error) { return nil, nil }, "handshake"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := call(t, ds.addr, handshake.Wrap(clientTLS, handshake.Funcs{Client: tc.client}, handshake.WithTimeout(5*time.Second)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("got %v, want %q", err, tc.wantErr)
			}
		})
	}
	if ds.lastDoc() != nil {
		t.Fatal("an RPC ran on a refused connection")
	}
}
