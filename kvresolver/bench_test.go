package kvresolver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/grpcutil/grpcutil/kvresolver"
	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/s3store"
)

// gofakes3Store returns an S3 store on an in-process gofakes3 server on
// loopback.
func gofakes3Store(b *testing.B) kvstore.Store {
	b.Helper()
	ts := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	b.Cleanup(ts.Close)
	client := s3.NewFromConfig(aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test-access", "test-secret", ""),
	}, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
		o.UsePathStyle = true
	})
	const bucket = "bench"
	if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		b.Fatal(err)
	}
	st, err := s3store.New(client, bucket)
	if err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkStoreLookup reads 1,000 registered servers. ListGet is the
// baseline: the same List and Gets, one after the other, without parsing.
func BenchmarkStoreLookup(b *testing.B) {
	const servers = 1000
	for _, backend := range []struct {
		name string
		new  func(*testing.B) kvstore.Store
	}{
		{"Memory", func(*testing.B) kvstore.Store { return kvstore.NewMemory() }},
		{"S3", gofakes3Store},
	} {
		b.Run(backend.name, func(b *testing.B) {
			ctx := context.Background()
			store := backend.new(b)
			exp := time.Now().Add(time.Hour)
			for i := range servers {
				addr := fmt.Sprintf("10.0.%d.%d:8443", i/250, i%250+1)
				rec, err := kvresolver.Record{Address: addr, Expires: exp, Metadata: map[string]string{"zone": "a"}}.Marshal()
				if err != nil {
					b.Fatal(err)
				}
				if err := store.Put(ctx, "services/hello/"+addr, rec); err != nil {
					b.Fatal(err)
				}
			}
			b.Run("ListGet", func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					keys, err := store.List(ctx, "services/hello/")
					if err != nil || len(keys) != servers {
						b.Fatalf("List: %d keys, %v", len(keys), err)
					}
					for _, k := range keys {
						if _, err := store.Get(ctx, k); err != nil {
							b.Fatal(err)
						}
					}
				}
			})
			b.Run("StoreLookup", func(b *testing.B) {
				lookup := kvresolver.StoreLookup(store, "")
				b.ReportAllocs()
				for b.Loop() {
					addrs, err := lookup(ctx, "hello")
					if err != nil || len(addrs) != servers {
						b.Fatalf("lookup: %d addresses, %v", len(addrs), err)
					}
				}
			})
		})
	}
}
