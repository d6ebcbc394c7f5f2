// Package storeflag opens the kvstore.Store the examples' -store flag names:
//
//	dir:/path/to/folder        a folder store (several processes on one machine share it)
//	s3://bucket[/prefix]       an S3 store, with the standard AWS credential chain
//	memory                     an in-memory store (one process only)
package storeflag

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/s3store"
)

// Usage describes the flag's forms.
const Usage = "the store: dir:/path, s3://bucket[/prefix] (AWS credentials from the standard chain), or memory"

// Open opens the store spec names. For S3 it loads the AWS configuration
// from the environment, shared files and instance role, as the AWS CLI
// does; AWS_ENDPOINT_URL_S3 points it at an S3-compatible server.
func Open(ctx context.Context, spec string) (kvstore.Store, error) {
	switch {
	case spec == "memory":
		return kvstore.NewMemory(), nil
	case strings.HasPrefix(spec, "dir:"):
		return kvstore.NewDir(strings.TrimPrefix(spec, "dir:"))
	case strings.HasPrefix(spec, "s3://"):
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(spec, "s3://"), "/")
		cfg, err := config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("load AWS configuration: %w", err)
		}
		var opts []s3store.Option
		if prefix = strings.Trim(prefix, "/"); prefix != "" {
			opts = append(opts, s3store.WithPrefix(prefix))
		}
		return s3store.NewFromConfig(cfg, bucket, opts...)
	}
	return nil, fmt.Errorf("-store %q: want dir:/path, s3://bucket[/prefix] or memory", spec)
}
