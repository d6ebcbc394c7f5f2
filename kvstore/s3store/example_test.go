package s3store_test

import (
	"context"
	"fmt"
	"net/http/httptest"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/grpcutil/grpcutil/kvstore/s3store"
)

func Example() {
	// An S3 API on loopback stands in for AWS here; on EC2 use
	// config.LoadDefaultConfig(ctx) and s3store.NewFromConfig(cfg, bucket).
	fake := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	defer fake.Close()
	ctx := context.Background()
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("key", "secret", "")}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(fake.URL)
		o.UsePathStyle = true // as most S3-compatible servers want
	})
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("fleet")}); err != nil {
		fmt.Println(err)
		return
	}

	store, err := s3store.New(client, "fleet", s3store.WithPrefix("prod"))
	if err != nil {
		fmt.Println(err)
		return
	}
	store.Put(ctx, "services/hello/10.0.0.1:50051", []byte("{}"))
	store.Put(ctx, "services/hello/10.0.0.2:50051", []byte("{}"))
	keys, _ := store.List(ctx, "services/hello/")
	fmt.Println(keys)
	// Output: [services/hello/10.0.0.1:50051 services/hello/10.0.0.2:50051]
}
