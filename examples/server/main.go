// Command server is a Hello server to copy into a real service: it makes
// and publishes its own certificate (kvcertverify), registers itself for
// discovery (kvresolver), optionally verifies each client's EC2 Instance
// Identity Document (iid over handshake), and records metrics (metricsint).
//
// Two terminals on one machine, sharing a folder store:
//
//	go run ./examples/server -store dir:/tmp/kv -addr 127.0.0.1:50051
//	go run ./examples/client -store dir:/tmp/kv
//
// On EC2, with S3 and instance identity:
//
//	server -store s3://my-bucket/prod -addr :8443 -advertise 10.0.1.7:8443 -iid -iid-accounts 123456789012
//
// With -h2c it serves gRPC over cleartext HTTP/2 instead (for a hop where
// TLS ends elsewhere): no certificate, and so no -iid.
//
// On SIGINT or SIGTERM it deregisters, revokes its certificate, and stops.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	metrics "github.com/rcrowley/go-metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/grpcutil/grpcutil/examples/internal/hello"
	"github.com/grpcutil/grpcutil/examples/internal/storeflag"
	"github.com/grpcutil/grpcutil/h2c"
	"github.com/grpcutil/grpcutil/handshake"
	"github.com/grpcutil/grpcutil/iid"
	"github.com/grpcutil/grpcutil/kvcertverify"
	"github.com/grpcutil/grpcutil/kvresolver"
	"github.com/grpcutil/grpcutil/metricsint"
)

func main() {
	var (
		storeSpec   = flag.String("store", "", storeflag.Usage)
		addr        = flag.String("addr", "127.0.0.1:50051", "address to listen on")
		advertise   = flag.String("advertise", "", "address clients dial (host:port); default the address listened on, which must then name a host")
		service     = flag.String("service", "hello", "service name to register under")
		name        = flag.String("name", "", "name to answer with; default the advertised address")
		useIID      = flag.Bool("iid", false, "require clients to present a verified EC2 instance identity document")
		iidAccounts = flag.String("iid-accounts", "", "with -iid: comma-separated AWS account ids to accept (default any)")
		iidRegions  = flag.String("iid-regions", "", "with -iid: comma-separated regions to accept (default any)")
		useH2C      = flag.Bool("h2c", false, "serve gRPC over cleartext HTTP/2 (h2c upgrade or prior knowledge) instead of TLS")
		heartbeat   = flag.Duration("heartbeat", 10*time.Second, "registration heartbeat (the record expires after three)")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("server: ")
	if *storeSpec == "" {
		log.Fatal("-store is required: " + storeflag.Usage)
	}
	if *useIID && *useH2C {
		log.Fatal("-iid needs the TLS channel that -h2c does without: a document is a bearer credential, only sent to a pinned server")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, config{
		store: *storeSpec, addr: *addr, advertise: *advertise, service: *service, name: *name,
		iid: *useIID, accounts: split(*iidAccounts), regions: split(*iidRegions), h2c: *useH2C, heartbeat: *heartbeat,
	}); err != nil {
		log.Fatal(err)
	}
}

type config struct {
	store, addr, advertise, service, name string
	iid                                   bool
	accounts, regions                     []string
	h2c                                   bool
	heartbeat                             time.Duration
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func serve(ctx context.Context, cfg config) error {
	store, err := storeflag.Open(ctx, cfg.store)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	defer lis.Close()
	if cfg.advertise == "" {
		cfg.advertise = lis.Addr().String()
		if ap, err := netip.ParseAddrPort(cfg.advertise); err == nil && ap.Addr().IsUnspecified() {
			return fmt.Errorf("listening on %s: give -advertise, the address clients dial", cfg.advertise)
		}
	}
	if cfg.name == "" {
		cfg.name = cfg.advertise
	}

	reg := metrics.NewRegistry()
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(metricsint.NewUnaryServerInterceptor(reg, "rpc")),
		grpc.ChainStreamInterceptor(metricsint.NewStreamServerInterceptor(reg, "rpc")),
	}
	if !cfg.h2c {
		certs, err := kvcertverify.NewServerTransportCredentials(ctx, store, cfg.advertise)
		if err != nil {
			return err
		}
		defer certs.Close() // revokes: deletes certs/<advertise>
		var creds credentials.TransportCredentials = certs
		if cfg.iid {
			var vopts []iid.VerifyOption
			if len(cfg.accounts) > 0 {
				vopts = append(vopts, iid.WithAllowedAccounts(cfg.accounts...))
			}
			if len(cfg.regions) > 0 {
				vopts = append(vopts, iid.WithAllowedRegions(cfg.regions...))
			}
			v, err := iid.NewVerifier(vopts...)
			if err != nil {
				return err
			}
			creds = handshake.Wrap(certs, handshake.Funcs{Server: iid.NewServerHandshake(v)})
		}
		opts = append(opts, grpc.Creds(creds))
		log.Printf("certificate published at certs/%s", certs.Address())
	} else {
		opts = append(opts, grpc.Creds(insecure.NewCredentials()))
	}
	gs := grpc.NewServer(opts...)
	hello.Register(gs, greeter{name: cfg.name})

	done := make(chan error, 1)
	var h2 *h2c.Server
	if cfg.h2c {
		h2 = &h2c.Server{HTTP2Handler: gs, NonUpgradeHandler: http.NotFoundHandler()}
		go func() { done <- h2.Serve(lis) }()
	} else {
		go func() { done <- gs.Serve(lis) }()
	}

	r, err := kvresolver.Register(ctx, store, cfg.service, cfg.advertise, kvresolver.WithHeartbeat(cfg.heartbeat))
	if err != nil {
		gs.Stop()
		return err
	}
	log.Printf("serving %s on %s as %s, registered at %s", cfg.service, lis.Addr(), cfg.advertise, r.Key())

	select {
	case <-ctx.Done():
		log.Print("stopping")
	case err := <-done:
		r.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if err := r.Close(); err != nil {
		log.Printf("deregister: %v", err)
	}
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
	if h2 != nil {
		h2.Close()
	}
	if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) && !errors.Is(err, h2c.ErrServerClosed) {
		log.Printf("serve: %v", err)
	}
	metrics.WriteOnce(reg, os.Stderr)
	return nil
}

type greeter struct{ name string }

func (g greeter) SayHello(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	who := in.GetValue()
	if doc, ok := iid.FromContext(ctx); ok {
		who = fmt.Sprintf("%s (instance %s of account %s in %s)", who, doc.InstanceID, doc.AccountID, doc.Region)
	}
	return wrapperspb.String(fmt.Sprintf("hello %s, from %s", who, g.name)), nil
}
