package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	metrics "github.com/rcrowley/go-metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/grpcutil/grpcutil/examples/internal/hello"
	"github.com/grpcutil/grpcutil/handshake"
	"github.com/grpcutil/grpcutil/iid"
	"github.com/grpcutil/grpcutil/iid/iidtest"
	"github.com/grpcutil/grpcutil/kvcertverify"
	"github.com/grpcutil/grpcutil/kvresolver"
	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/metricsint"
)

// The demo's timings: short, so that the whole run takes seconds.
const (
	pollInterval = 100 * time.Millisecond // resolver
	heartbeat    = 200 * time.Millisecond // registration
	cacheTTL     = 100 * time.Millisecond // client's certificate cache
	settle       = 10 * time.Second       // how long a change may take to show
)

// The identity the fake metadata service hands out.
const (
	demoAccount  = "123456789012"
	demoRegion   = "us-east-1"
	demoInstance = "i-0123456789abcdef0"
)

// server is one of the demo's servers.
type server struct {
	name  string
	addr  string
	creds *kvcertverify.ServerCredentials
	grpc  *grpc.Server
	reg   *kvresolver.Registration
	done  chan struct{}

	mu   sync.Mutex
	seen map[string]int // instance ids of the callers, as verified
}

func (s *server) SayHello(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	doc, ok := iid.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no verified instance identity")
	}
	s.mu.Lock()
	s.seen[doc.AccountID+"/"+doc.Region+"/"+doc.InstanceID]++
	s.mu.Unlock()
	return wrapperspb.String(s.name), nil
}

func (s *server) stop() {
	s.grpc.Stop()
	<-s.done
}

// report collects what the demo prints.
type report struct {
	w   io.Writer
	err error
}

func (r *report) printf(format string, args ...any) {
	if r.err == nil {
		_, r.err = fmt.Fprintf(r.w, format, args...)
	}
}

func run(ctx context.Context, w io.Writer) error {
	out := &report{w: w}

	dir, err := os.MkdirTemp("", "grpcutil-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	store, err := kvstore.NewDir(dir)
	if err != nil {
		return err
	}
	out.printf("store: a folder store in a temporary directory (S3 in production)\n")

	// The fake metadata service, and the verifier that trusts its key.
	signer, err := iidtest.NewSigner()
	if err != nil {
		return err
	}
	doc, err := json.Marshal(map[string]any{
		"accountId": demoAccount, "region": demoRegion, "instanceId": demoInstance,
		"availabilityZone": demoRegion + "a", "imageId": "ami-0123456789abcdef0",
		"instanceType": "t3.micro", "privateIp": "127.0.0.1", "architecture": "x86_64",
		"pendingTime": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), "version": "2017-09-30",
	})
	if err != nil {
		return err
	}
	imds, err := iidtest.NewIMDS(doc, signer)
	if err != nil {
		return err
	}
	defer imds.Close()
	trust, err := signer.Trust(demoRegion, iid.FormRSA2048)
	if err != nil {
		return err
	}
	verifier, err := iid.NewVerifier(append(trust,
		iid.WithAllowedAccounts(demoAccount),
		iid.WithAllowedRegions(demoRegion),
	)...)
	if err != nil {
		return err
	}
	out.printf("identity: a local fake EC2 metadata service signs instance identity documents with a DEMO key;\n")
	out.printf("          the servers are told to trust that key (on EC2 they trust AWS's embedded certificates)\n")

	serverMetrics := metrics.NewRegistry()
	clientMetrics := metrics.NewRegistry()

	// Three servers.
	var servers []*server
	defer func() {
		for _, s := range servers {
			s.grpc.Stop()
			<-s.done
			s.reg.Close()
			s.creds.Close()
		}
	}()
	for i := 1; i <= 3; i++ {
		s, err := startServer(ctx, fmt.Sprintf("server-%d", i), store, verifier, serverMetrics)
		if err != nil {
			return err
		}
		servers = append(servers, s)
		out.printf("%s: listening on %s, certificate published at certs/%s, registered at services/hello/%s\n", s.name, s.addr, s.addr, s.addr)
	}

	// The client.
	fetcher, err := iid.NewFetcher(iid.WithEndpoint(imds.URL))
	if err != nil {
		return err
	}
	pinning := kvcertverify.NewClientTransportCredentials(store,
		kvcertverify.WithCacheTTL(cacheTTL),
		kvcertverify.WithNegativeTTL(cacheTTL),
		kvcertverify.WithCloseRevoked(cacheTTL),
	)
	defer pinning.Close()
	creds := handshake.Wrap(pinning, handshake.Funcs{Client: iid.NewClientHandshake(fetcher)})
	builder, err := kvresolver.NewBuilder(kvresolver.StoreLookup(store, ""), kvresolver.WithInterval(pollInterval))
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient("kv:///hello",
		grpc.WithResolvers(builder),
		grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(metricsint.NewUnaryClientInterceptor(clientMetrics, "demo")),
	)
	if err != nil {
		return err
	}
	defer conn.Close()
	out.printf("client: resolving kv:///hello through the store, pinning published certificates, presenting its identity document\n")

	c := &caller{conn: conn}
	step := func(title string, want []string) error {
		got, err := c.until(ctx, want)
		if err != nil {
			return fmt.Errorf("%s: %w", title, err)
		}
		out.printf("%s\n  round robin over %s: %s\n", title, strings.Join(want, ", "), strings.Join(got, " "))
		return nil
	}

	if err := step("\n1. three servers up", []string{"server-1", "server-2", "server-3"}); err != nil {
		return err
	}

	// Rotate server-2's certificate: clients that read the new bundle
	// connect to the new certificate; the connection already open goes on.
	s2 := servers[1]
	before := s2.creds.Certificate().SerialNumber
	if err := s2.creds.Rotate(ctx); err != nil {
		return err
	}
	after := s2.creds.Certificate().SerialNumber
	if before.Cmp(after) == 0 {
		return errors.New("rotation did not change server-2's certificate")
	}
	out.printf("\n2. server-2 rotated its certificate (serial %s -> %s)\n", shortSerial(before), shortSerial(after))
	if err := step("   calls go on", []string{"server-1", "server-2", "server-3"}); err != nil {
		return err
	}

	// Revoke server-3: delete its published certificate. The client closes
	// its connection within the cache TTL and refuses new handshakes.
	s3 := servers[2]
	if err := store.Delete(ctx, "certs/"+s3.addr); err != nil {
		return err
	}
	out.printf("\n3. server-3 revoked: deleted certs/%s (it is still running and registered)\n", s3.addr)
	if err := step("   the client drops it", []string{"server-1", "server-2"}); err != nil {
		return err
	}

	// Kill server-1: stop it hard; its registration is left to expire.
	s1 := servers[0]
	s1.stop()
	s1.done = closedChan()
	out.printf("\n4. server-1 killed\n")
	if err := step("   the client carries on", []string{"server-2"}); err != nil {
		return err
	}

	// The report.
	out.printf("\nidentity each server saw (verified instance identity documents):\n")
	for _, s := range servers {
		s.mu.Lock()
		var ids []string
		for id, n := range s.seen {
			ids = append(ids, fmt.Sprintf("%s x%d", id, n))
		}
		s.mu.Unlock()
		sort.Strings(ids)
		out.printf("  %s: %s\n", s.name, strings.Join(ids, ", "))
	}
	out.printf("\nclient metrics:\n")
	printMetrics(out, clientMetrics, "demo.grpcutil_examples_Hello.SayHello.client.")
	out.printf("server metrics (all three servers):\n")
	printMetrics(out, serverMetrics, "demo.grpcutil_examples_Hello.SayHello.server.")
	return out.err
}

func shortSerial(n *big.Int) string {
	s := fmt.Sprintf("%x", n)
	if len(s) > 8 {
		s = s[:8] + "..."
	}
	return s
}

func closedChan() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func startServer(ctx context.Context, name string, store kvstore.Store, v *iid.Verifier, reg metrics.Registry) (*server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := lis.Addr().String()
	// Clients cache certificates for cacheTTL: a rotation waits longer than
	// that between publishing the next certificate and serving it.
	creds, err := kvcertverify.NewServerTransportCredentials(ctx, store, addr, kvcertverify.WithPropagationDelay(3*cacheTTL))
	if err != nil {
		lis.Close()
		return nil, err
	}
	s := &server{name: name, addr: addr, creds: creds, done: make(chan struct{}), seen: map[string]int{}}
	s.grpc = grpc.NewServer(
		grpc.Creds(handshake.Wrap(creds, handshake.Funcs{Server: iid.NewServerHandshake(v)})),
		grpc.ChainUnaryInterceptor(metricsint.NewUnaryServerInterceptor(reg, "demo")),
	)
	hello.Register(s.grpc, s)
	go func() {
		defer close(s.done)
		s.grpc.Serve(lis)
	}()
	s.reg, err = kvresolver.Register(ctx, store, "hello", addr, kvresolver.WithHeartbeat(heartbeat))
	if err != nil {
		s.grpc.Stop()
		<-s.done
		creds.Close()
		return nil, err
	}
	return s, nil
}

// caller makes the demo's calls.
type caller struct {
	conn *grpc.ClientConn
	n    int
}

// until calls until the last len(want) answers came from exactly the
// servers in want, each once, as round robin over them gives; it returns
// those answers.
func (c *caller) until(ctx context.Context, want []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, settle)
	defer cancel()
	var recent []string
	var lastErr error
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("no round robin over %v after %v (last answers %v, last error %v)", want, settle, recent, lastErr)
		}
		callCtx, cancelCall := context.WithTimeout(ctx, 2*time.Second)
		c.n++
		name, err := hello.SayHello(callCtx, c.conn, fmt.Sprintf("call %d", c.n))
		cancelCall()
		if err != nil {
			lastErr = err
			recent = recent[:0]
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
			continue
		}
		recent = append(recent, name)
		if len(recent) > len(want) {
			recent = recent[1:]
		}
		if sameSet(recent, want) {
			return recent, nil
		}
	}
}

func sameSet(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	g := append([]string(nil), got...)
	sort.Strings(g)
	for i := range g {
		if g[i] != want[i] {
			return false
		}
	}
	return true
}

func printMetrics(out *report, reg metrics.Registry, prefix string) {
	var lines []string
	reg.Each(func(name string, m any) {
		short, ok := strings.CutPrefix(name, prefix)
		if !ok {
			return
		}
		switch m := m.(type) {
		case metrics.Counter:
			lines = append(lines, fmt.Sprintf("  %-22s %d", short, m.Count()))
		case metrics.Timer:
			lines = append(lines, fmt.Sprintf("  %-22s count %d", short, m.Count()))
		}
	})
	sort.Strings(lines)
	for _, l := range lines {
		out.printf("%s\n", l)
	}
}
