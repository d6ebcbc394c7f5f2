// Package s3store is a kvstore.Store kept in an S3 bucket, on
// aws-sdk-go-v2. It works with AWS S3 and with S3-compatible servers
// (versitygw, MinIO, gofakes3, ...); those usually want path-style
// addressing.
//
//	cfg, err := config.LoadDefaultConfig(ctx)
//	...
//	store, err := s3store.NewFromConfig(cfg, "my-bucket", s3store.WithPrefix("prod"))
//
// A key k is the object <prefix>/k. S3 caps object keys at 1,024 bytes, so
// with a prefix of n bytes the longest key is 1,023-n bytes. Objects under
// the prefix whose names are not valid kvstore keys (written by something
// else) are left out of List.
//
// Every value is read with a bound of kvstore.MaxValueSize: a larger object
// is an error, not an allocation.
package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/grpcutil/grpcutil/kvstore"
)

// maxObjectKey is S3's limit on an object key, in bytes.
const maxObjectKey = 1024

// API is the part of *s3.Client the store uses.
type API interface {
	GetObject(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(context.Context, *s3.PutObjectInput, ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	DeleteObject(context.Context, *s3.DeleteObjectInput, ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
	s3.ListObjectsV2APIClient
}

var _ API = (*s3.Client)(nil)

// Store is a kvstore.Store in an S3 bucket. It is safe for concurrent use.
type Store struct {
	client API
	bucket string
	prefix string // "" or ending in "/"
}

var _ kvstore.Store = (*Store)(nil)

// Option configures a Store.
type Option interface{ apply(*options) }

type options struct {
	prefix    string
	endpoint  string
	pathStyle bool
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// WithPrefix keeps every key under prefix/ in the bucket, so that several
// stores (or other data) can share one bucket. The prefix must itself be a
// valid kvstore key, or empty.
func WithPrefix(prefix string) Option {
	return optionFunc(func(o *options) { o.prefix = prefix })
}

// WithEndpoint points the client NewFromConfig makes at an S3-compatible
// server, e.g. "http://127.0.0.1:7070". New ignores it: configure your own
// client.
func WithEndpoint(url string) Option {
	return optionFunc(func(o *options) { o.endpoint = url })
}

// WithPathStyle makes the client NewFromConfig makes address buckets by path
// (http://host/bucket/key) rather than by host name, as most S3-compatible
// servers need. New ignores it: configure your own client.
func WithPathStyle() Option {
	return optionFunc(func(o *options) { o.pathStyle = true })
}

// New returns a Store kept in bucket through client (usually an *s3.Client).
func New(client API, bucket string, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("s3store: nil client")
	}
	if bucket == "" {
		return nil, errors.New("s3store: empty bucket name")
	}
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	s := &Store{client: client, bucket: bucket}
	if o.prefix != "" {
		p := strings.TrimSuffix(o.prefix, "/")
		if err := kvstore.ValidateKey(p); err != nil {
			return nil, fmt.Errorf("s3store: key prefix: %w", err)
		}
		s.prefix = p + "/"
	}
	return s, nil
}

// NewFromConfig returns a Store kept in bucket through an S3 client made
// from cfg (for example from config.LoadDefaultConfig, which follows the
// standard AWS credential chain). cfg is not changed.
func NewFromConfig(cfg aws.Config, bucket string, opts ...Option) (*Store, error) {
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	client := s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.endpoint != "" {
			so.BaseEndpoint = aws.String(o.endpoint)
		}
		so.UsePathStyle = o.pathStyle
	})
	return New(client, bucket, opts...)
}

// Bucket returns the bucket the store is kept in.
func (s *Store) Bucket() string { return s.bucket }

// objectKey validates key and returns its object key.
func (s *Store) objectKey(ctx context.Context, key string) (string, error) {
	if err := kvstore.ValidateKey(key); err != nil {
		return "", err
	}
	if len(s.prefix)+len(key) > maxObjectKey {
		return "", &kvstore.KeyError{Key: key, Reason: fmt.Sprintf("%d bytes, over the %d bytes S3 leaves for a key under the prefix %q", len(key), maxObjectKey-len(s.prefix), s.prefix)}
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("s3store: %w", err)
	}
	return s.prefix + key, nil
}

// Get implements kvstore.Store.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	obj, err := s.objectKey(ctx, key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &obj})
	if err != nil {
		if isNoSuchKey(err) {
			return nil, kvstore.NotFound(key)
		}
		return nil, fmt.Errorf("s3store: get %q: %w", key, err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > kvstore.MaxValueSize {
		return nil, fmt.Errorf("%w: stored value of key %q is %d bytes, over the %d-byte limit", kvstore.ErrValueTooLarge, key, n, kvstore.MaxValueSize)
	}
	v, err := io.ReadAll(io.LimitReader(out.Body, kvstore.MaxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("s3store: get %q: %w", key, err)
	}
	if len(v) > kvstore.MaxValueSize {
		return nil, fmt.Errorf("%w: stored value of key %q is over the %d-byte limit", kvstore.ErrValueTooLarge, key, kvstore.MaxValueSize)
	}
	return v, nil
}

// Put implements kvstore.Store.
func (s *Store) Put(ctx context.Context, key string, value []byte) error {
	obj, err := s.objectKey(ctx, key)
	if err != nil {
		return err
	}
	if err := kvstore.CheckValue(key, value); err != nil {
		return err
	}
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:        &s.bucket,
		Key:           &obj,
		Body:          bytes.NewReader(value),
		ContentLength: aws.Int64(int64(len(value))),
	})
	if err != nil {
		return fmt.Errorf("s3store: put %q: %w", key, err)
	}
	return nil
}

// Delete implements kvstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	obj, err := s.objectKey(ctx, key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &obj}); err != nil && !isNoSuchKey(err) {
		return fmt.Errorf("s3store: delete %q: %w", key, err)
	}
	return nil
}

// errRepeatedToken reports a listing that would never end.
var errRepeatedToken = errors.New("server repeated a continuation token")

// List implements kvstore.Store. It follows continuation tokens through
// every page, and fails if the server hands out a token a second time.
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	if err := kvstore.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: &s.bucket,
		Prefix: aws.String(s.prefix + prefix),
	})
	keys := []string{}
	seen := map[string]bool{} // continuation tokens, against a server that goes round in circles
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3store: list %q: %w", prefix, err)
		}
		if aws.ToBool(page.IsTruncated) {
			tok := aws.ToString(page.NextContinuationToken)
			if seen[tok] {
				return nil, fmt.Errorf("s3store: list %q: %w", prefix, errRepeatedToken)
			}
			seen[tok] = true
		}
		for _, o := range page.Contents {
			k, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix)
			if ok && strings.HasPrefix(k, prefix) && kvstore.ValidateKey(k) == nil {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys, nil
}

func isNoSuchKey(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "NoSuchKey"
}
