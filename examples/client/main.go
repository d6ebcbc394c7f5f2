// Command client is a Hello client to copy into a real service: it finds
// the servers through the store (kvresolver), pins their published
// certificates (kvcertverify), optionally proves which EC2 instance it runs
// on (iid over handshake), and records metrics (metricsint).
//
//	go run ./examples/client -store dir:/tmp/kv
//	client -store s3://my-bucket/prod -iid          # on EC2
//	go run ./examples/client -store dir:/tmp/kv -h2c # against a server run with -h2c
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"time"

	metrics "github.com/rcrowley/go-metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

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
		storeSpec = flag.String("store", "", storeflag.Usage)
		target    = flag.String("target", "kv:///hello", "the service to call")
		name      = flag.String("name", "client", "name to send")
		n         = flag.Int("n", 6, "number of calls (0: until interrupted)")
		every     = flag.Duration("every", 200*time.Millisecond, "pause between calls")
		useIID    = flag.Bool("iid", false, "present this EC2 instance's identity document (from the instance metadata service)")
		imdsURL   = flag.String("imds", "", "with -iid: metadata service endpoint (default the EC2 one)")
		useH2C    = flag.Bool("h2c", false, "call over cleartext HTTP/2 (h2c upgrade) instead of TLS")
		poll      = flag.Duration("poll", 2*time.Second, "how often to look the servers up")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("client: ")
	if *storeSpec == "" {
		log.Fatal("-store is required: " + storeflag.Usage)
	}
	if *useIID && *useH2C {
		log.Fatal("-iid needs the TLS channel that -h2c does without: a document is a bearer credential, only sent to a pinned server")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := call(ctx, *storeSpec, *target, *name, *n, *every, *useIID, *imdsURL, *useH2C, *poll); err != nil {
		log.Fatal(err)
	}
}

func call(ctx context.Context, storeSpec, target, name string, n int, every time.Duration, useIID bool, imdsURL string, useH2C bool, poll time.Duration) error {
	store, err := storeflag.Open(ctx, storeSpec)
	if err != nil {
		return err
	}
	builder, err := kvresolver.NewBuilder(kvresolver.StoreLookup(store, ""), kvresolver.WithInterval(poll))
	if err != nil {
		return err
	}
	reg := metrics.NewRegistry()
	opts := []grpc.DialOption{
		grpc.WithResolvers(builder),
		grpc.WithChainUnaryInterceptor(metricsint.NewUnaryClientInterceptor(reg, "rpc")),
		grpc.WithChainStreamInterceptor(metricsint.NewStreamClientInterceptor(reg, "rpc")),
	}
	if useH2C {
		opts = append(opts, grpc.WithContextDialer(h2c.Dialer{}.DialContext), grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		pinning := kvcertverify.NewClientTransportCredentials(store)
		defer pinning.Close()
		var creds credentials.TransportCredentials = pinning
		if useIID {
			var fopts []iid.FetchOption
			if imdsURL != "" {
				fopts = append(fopts, iid.WithEndpoint(imdsURL))
			}
			fetcher, err := iid.NewFetcher(fopts...)
			if err != nil {
				return err
			}
			creds = handshake.Wrap(pinning, handshake.Funcs{Client: iid.NewClientHandshake(fetcher)})
		}
		opts = append(opts, grpc.WithTransportCredentials(creds))
	}
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()

	failed := 0
	for i := 1; n == 0 || i <= n; i++ {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		answer, err := hello.SayHello(callCtx, conn, name, grpc.WaitForReady(true))
		cancel()
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			failed++
			log.Printf("call %d: %v", i, err)
		} else {
			fmt.Println(answer)
		}
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
	metrics.WriteOnce(reg, os.Stderr)
	if failed > 0 {
		return fmt.Errorf("%d calls failed", failed)
	}
	return nil
}
