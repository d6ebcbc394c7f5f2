package s3store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
	"github.com/grpcutil/grpcutil/kvstore/s3store"
)

// server is an S3 API over HTTP, with a count of the requests that reached
// it.
type server struct {
	endpoint, access, secret string
	requests                 atomic.Int64
}

// gofakes3Server starts an in-process gofakes3 S3 API on loopback.
func gofakes3Server(t testing.TB) *server {
	t.Helper()
	s := &server{access: "test-access", secret: "test-secret"}
	faker := gofakes3.New(s3mem.New())
	h := faker.Server()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	s.endpoint = ts.URL
	return s
}

// versitygwServer returns the versitygw (or other real S3 API) server the
// environment names, or skips; with GRPCUTIL_REQUIRE_S3=1 a missing server
// fails the test instead.
func versitygwServer(t testing.TB) *server {
	t.Helper()
	s := &server{
		endpoint: os.Getenv("GRPCUTIL_S3_ENDPOINT"),
		access:   os.Getenv("GRPCUTIL_S3_ACCESS_KEY"),
		secret:   os.Getenv("GRPCUTIL_S3_SECRET_KEY"),
	}
	if s.endpoint == "" || s.access == "" || s.secret == "" {
		if os.Getenv("GRPCUTIL_REQUIRE_S3") == "1" {
			t.Fatal("GRPCUTIL_REQUIRE_S3=1 but GRPCUTIL_S3_ENDPOINT, GRPCUTIL_S3_ACCESS_KEY or GRPCUTIL_S3_SECRET_KEY is unset")
		}
		t.Skip("no S3 server: set GRPCUTIL_S3_ENDPOINT, GRPCUTIL_S3_ACCESS_KEY and GRPCUTIL_S3_SECRET_KEY (as .ci/run does for versitygw)")
	}
	return s
}

func (s *server) client(t testing.TB) *s3.Client {
	t.Helper()
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(s.access, s.secret, ""),
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(s.endpoint)
		o.UsePathStyle = true
	})
}

// newBucket creates a bucket with a fresh name and removes it, and what is
// in it, at the end of the test.
func (s *server) newBucket(t testing.TB) string {
	t.Helper()
	var rnd [6]byte
	rand.Read(rnd[:])
	bucket := "grpcutil-test-" + hex.EncodeToString(rnd[:])
	c := s.client(t)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	t.Cleanup(func() {
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: &bucket})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Errorf("cleanup: list: %v", err)
				return
			}
			for _, o := range page.Contents {
				c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &bucket, Key: o.Key})
			}
		}
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}); err != nil {
			t.Errorf("cleanup: delete bucket: %v", err)
		}
	})
	return bucket
}

func (s *server) newStore(t testing.TB, opts ...s3store.Option) *s3store.Store {
	t.Helper()
	st, err := s3store.New(s.client(t), s.newBucket(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func runConformance(t *testing.T, srv *server, o kvstoretest.Options) {
	t.Run("NoPrefix", func(t *testing.T) {
		kvstoretest.RunWithOptions(t, func(t *testing.T) kvstore.Store { return srv.newStore(t) }, o)
	})
	t.Run("Prefix", func(t *testing.T) {
		o.MaxKeyLen = 1024 - len("env/prod/")
		kvstoretest.RunWithOptions(t, func(t *testing.T) kvstore.Store {
			return srv.newStore(t, s3store.WithPrefix("env/prod"))
		}, o)
	})
}

func TestGofakes3Conformance(t *testing.T) {
	runConformance(t, gofakes3Server(t), kvstoretest.Options{})
}

// versitygw's posix backend keeps objects as files, so it takes what a
// file system takes: a name of at most 255 bytes, and no object "a" beside
// an object "a/b".
func TestVersitygwConformance(t *testing.T) {
	runConformance(t, versitygwServer(t), kvstoretest.Options{MaxSegmentLen: 255, NoNesting: true})
}

func TestNewFromConfig(t *testing.T) {
	srv := gofakes3Server(t)
	bucket := srv.newBucket(t)
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(srv.access, srv.secret, ""),
	}
	st, err := s3store.NewFromConfig(cfg, bucket, s3store.WithEndpoint(srv.endpoint), s3store.WithPathStyle())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := st.Get(ctx, "k"); err != nil || string(v) != "v" {
		t.Fatalf("Get = %q, %v; want %q", v, err, "v")
	}
	if cfg.BaseEndpoint != nil {
		t.Fatal("NewFromConfig changed the caller's aws.Config")
	}
}

func TestBadKeysNeverReachTheServer(t *testing.T) {
	srv := gofakes3Server(t)
	st := srv.newStore(t, s3store.WithPrefix("p"))
	ctx := context.Background()
	before := srv.requests.Load()
	long := strings.Repeat("k", 1024-len("p/")+1) // valid for kvstore, too long for S3 under the prefix
	for _, key := range append(kvstoretest.InvalidKeys, long) {
		if _, err := st.Get(ctx, key); !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Errorf("Get(%.30q) error = %v, want ErrInvalidKey", key, err)
		}
		if err := st.Put(ctx, key, []byte("v")); !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Errorf("Put(%.30q) error = %v, want ErrInvalidKey", key, err)
		}
		if err := st.Delete(ctx, key); !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Errorf("Delete(%.30q) error = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, p := range kvstoretest.InvalidPrefixes {
		if _, err := st.List(ctx, p); !errors.Is(err, kvstore.ErrInvalidKey) {
			t.Errorf("List(%.30q) error = %v, want ErrInvalidKey", p, err)
		}
	}
	if err := st.Put(ctx, "k", make([]byte, kvstore.MaxValueSize+1)); !errors.Is(err, kvstore.ErrValueTooLarge) {
		t.Errorf("Put of an oversize value error = %v, want ErrValueTooLarge", err)
	}
	if n := srv.requests.Load() - before; n != 0 {
		t.Fatalf("%d requests reached the S3 server; invalid keys and oversize values must be refused before", n)
	}
}

func TestForeignObjects(t *testing.T) {
	srv := gofakes3Server(t)
	c := srv.client(t)
	bucket := srv.newBucket(t)
	st, err := s3store.New(c, bucket, s3store.WithPrefix("kv"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := s3store.New(c, bucket, s3store.WithPrefix("kv2"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(key string, v []byte) {
		t.Helper()
		if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: aws.String(key), Body: bytes.NewReader(v)}); err != nil {
			t.Fatal(err)
		}
	}
	put("kv/good", []byte("ok"))
	put("kv/bad//key", []byte("x"))
	put("kv/.hidden", []byte("x"))
	put("kv/huge", make([]byte, kvstore.MaxValueSize+1))
	put("outside", []byte("x"))
	if err := other.Put(ctx, "mine", []byte("x")); err != nil {
		t.Fatal(err)
	}

	keys, err := st.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"good", "huge"}; fmt.Sprint(keys) != fmt.Sprint(want) {
		t.Fatalf("List = %q, want %q (invalid names, other prefixes and objects outside left out)", keys, want)
	}
	if _, err := st.Get(ctx, "huge"); !errors.Is(err, kvstore.ErrValueTooLarge) {
		t.Fatalf("Get of an oversize object error = %v, want ErrValueTooLarge", err)
	}
}

func TestMissingBucketIsNotNotFound(t *testing.T) {
	srv := gofakes3Server(t)
	st, err := s3store.New(srv.client(t), "no-such-bucket")
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Get(context.Background(), "k")
	if err == nil || errors.Is(err, kvstore.ErrNotFound) {
		t.Fatalf("Get from a missing bucket error = %v, want an error that is not ErrNotFound", err)
	}
	if !strings.HasPrefix(err.Error(), "s3store: ") {
		t.Fatalf("error %q lacks the package prefix", err)
	}
}

func TestNewValidates(t *testing.T) {
	c := s3.New(s3.Options{Region: "us-east-1"})
	for _, tc := range []struct {
		name   string
		client s3store.API
		bucket string
		opts   []s3store.Option
		want   string
	}{
		{"nil client", nil, "b", nil, "s3store: nil client"},
		{"empty bucket", c, "", nil, "s3store: empty bucket name"},
		{"bad prefix", c, "b", []s3store.Option{s3store.WithPrefix("../x")}, `s3store: key prefix: kvstore: invalid key "../x": ".." path segment`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s3store.New(tc.client, tc.bucket, tc.opts...)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("New error = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestListRepeatedToken runs List against an S3 API that claims every page
// is truncated and always names the same continuation token: List must fail
// at once rather than loop (and grow its result) until the ctx ends.
func TestListRepeatedToken(t *testing.T) {
	var requests atomic.Int64
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) > 20 {
			http.Error(w, "too many requests", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/xml")
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?>`+
			`<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`+
			`<Name>b</Name><Prefix></Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys>`+
			`<IsTruncated>true</IsTruncated><NextContinuationToken>again</NextContinuationToken>`+
			`<Contents><Key>k</Key><Size>1</Size></Contents></ListBucketResult>`)
	}))
	defer ts.Close()
	srv := &server{endpoint: ts.URL, access: "a", secret: "s"}
	st, err := s3store.New(srv.client(t), "b")
	if err != nil {
		t.Fatal(err)
	}
	keys, err := st.List(context.Background(), "")
	if err == nil || !strings.Contains(err.Error(), "repeated a continuation token") || !strings.HasPrefix(err.Error(), "s3store: ") {
		t.Fatalf("List = %q, %v; want an error about the repeated token", keys, err)
	}
	if n := requests.Load(); n != 2 {
		t.Fatalf("List made %d requests, want 2 (the first page, then the page its token names)", n)
	}
}

func BenchmarkList10000(b *testing.B) {
	srv := gofakes3Server(b)
	st := srv.newStore(b)
	ctx := context.Background()
	for i := 0; i < 10000; i++ {
		if err := st.Put(ctx, fmt.Sprintf("services/hello/10.0.%d.%d:443", i/256, i%256), []byte("{}")); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for b.Loop() {
		keys, err := st.List(ctx, "services/hello/")
		if err != nil || len(keys) != 10000 {
			b.Fatalf("List = %d keys, %v", len(keys), err)
		}
	}
}
