package iid

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
)

// DefaultFetchTimeout bounds one GetDocumentAndSignature call (token,
// document and signature) when ctx has no earlier deadline, so that a
// process off EC2 fails fast.
const DefaultFetchTimeout = 3 * time.Second

// FetchOption configures a Fetcher.
type FetchOption interface {
	applyFetch(*fetchConfig)
}

type fetchOptionFunc func(*fetchConfig)

func (f fetchOptionFunc) applyFetch(c *fetchConfig) { f(c) }

type fetchConfig struct {
	client     *imds.Client
	endpoint   string
	httpClient imds.HTTPClient
	timeout    time.Duration
	form       Form
}

// WithForm chooses the signature to fetch: FormRSA2048 (the default),
// FormSignature or FormPKCS7.
func WithForm(f Form) FetchOption {
	return fetchOptionFunc(func(c *fetchConfig) { c.form = f })
}

// WithEndpoint sets the IMDS endpoint, e.g. "http://[fd00:ec2::254]" or a
// test server's URL. By default the SDK's (169.254.169.254, or
// AWS_EC2_METADATA_SERVICE_ENDPOINT). An explicit endpoint is used even when
// AWS_EC2_METADATA_DISABLED is set.
func WithEndpoint(url string) FetchOption {
	return fetchOptionFunc(func(c *fetchConfig) { c.endpoint = url })
}

// WithHTTPClient sets the HTTP client the IMDS client uses. By default the
// SDK's, with its short dial and response-header timeouts.
func WithHTTPClient(h imds.HTTPClient) FetchOption {
	return fetchOptionFunc(func(c *fetchConfig) { c.httpClient = h })
}

// WithIMDSClient makes the Fetcher use the caller's IMDS client as it is
// configured; WithEndpoint and WithHTTPClient are then ignored. The caller
// keeps ownership.
func WithIMDSClient(client *imds.Client) FetchOption {
	return fetchOptionFunc(func(c *fetchConfig) { c.client = client })
}

// WithFetchTimeout bounds each fetch (DefaultFetchTimeout by default).
func WithFetchTimeout(d time.Duration) FetchOption {
	return fetchOptionFunc(func(c *fetchConfig) { c.timeout = d })
}

// Fetcher reads the instance identity document and a signature from IMDS
// through the AWS SDK's IMDS client, with IMDSv2 session tokens (cached by
// the client for their TTL) and no fallback to IMDSv1. It is safe for
// concurrent use and holds no goroutines.
type Fetcher struct {
	client  *imds.Client
	timeout time.Duration
	form    Form
}

// NewFetcher returns a Fetcher. It does no I/O.
func NewFetcher(opts ...FetchOption) (*Fetcher, error) {
	c := fetchConfig{timeout: DefaultFetchTimeout, form: FormRSA2048}
	for _, o := range opts {
		if o != nil {
			o.applyFetch(&c)
		}
	}
	if !c.form.valid() {
		return nil, fmt.Errorf("iid: WithForm: unknown form %q", c.form)
	}
	if c.timeout <= 0 {
		return nil, fmt.Errorf("iid: WithFetchTimeout: %v is not positive", c.timeout)
	}
	client := c.client
	if client == nil {
		enable := imds.ClientDefaultEnableState
		if c.endpoint != "" {
			// An explicit endpoint wins over AWS_EC2_METADATA_DISABLED.
			enable = imds.ClientEnabled
		}
		client = imds.New(imds.Options{
			ClientEnableState: enable,
			// Our retryer's own 300ms cap, not the SDK's 1s.
			DisableDefaultMaxBackoff: true,
			Endpoint:                 c.endpoint,
			HTTPClient:               c.httpClient,
			EnableFallback:           aws.FalseTernary,
			Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
				o.MaxAttempts = 3
				o.MaxBackoff = 300 * time.Millisecond
				// IMDS answers 429 when throttling; retry it like a 5xx.
				o.Retryables = append(append([]retry.IsErrorRetryable(nil), o.Retryables...),
					retry.RetryableHTTPStatusCode{Codes: map[int]struct{}{http.StatusTooManyRequests: {}}})
			}),
		})
	}
	return &Fetcher{client: client, timeout: c.timeout, form: c.form}, nil
}

// Fetch reads the document and the Fetcher's form of signature.
func (f *Fetcher) Fetch(ctx context.Context) (*SignedDocument, error) {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	doc, err := f.get(ctx, "instance-identity/document", MaxDocumentSize)
	if err != nil {
		return nil, err
	}
	sig, err := f.get(ctx, "instance-identity/"+string(f.form), MaxSignatureSize)
	if err != nil {
		return nil, err
	}
	return &SignedDocument{Document: doc, Signature: sig, Form: f.form}, nil
}

// GetDocumentAndSignature fetches the instance identity document and a
// signature (FormRSA2048 unless WithForm says otherwise) from IMDS. To fetch
// repeatedly, keep a Fetcher: it reuses the IMDSv2 token.
func GetDocumentAndSignature(ctx context.Context, opts ...FetchOption) (*SignedDocument, error) {
	f, err := NewFetcher(opts...)
	if err != nil {
		return nil, err
	}
	return f.Fetch(ctx)
}

func (f *Fetcher) get(ctx context.Context, path string, limit int64) ([]byte, error) {
	out, err := f.client.GetDynamicData(ctx, &imds.GetDynamicDataInput{Path: path},
		func(o *imds.Options) { o.HTTPClient = limitClient{o.HTTPClient, limit} })
	if err != nil {
		return nil, fmt.Errorf("iid: fetch %s: %w", path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, limit+1))
	if err != nil {
		return nil, fmt.Errorf("iid: fetch %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, wrapErr(ErrTooLarge, "fetch %s: more than %d bytes", path, limit)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("iid: fetch %s: empty response", path)
	}
	return b, nil
}

// limitClient stops reading a response body after limit+1 bytes, before the
// SDK buffers it whole.
type limitClient struct {
	imds.HTTPClient
	limit int64
}

func (c limitClient) Do(r *http.Request) (*http.Response, error) {
	if c.HTTPClient == nil {
		return nil, errors.New("iid: no http client")
	}
	resp, err := c.HTTPClient.Do(r)
	if err != nil || resp == nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &limitBody{rc: resp.Body, n: c.limit + 1}
	return resp, nil
}

type limitBody struct {
	rc io.ReadCloser
	n  int64
}

func (b *limitBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.rc.Read(p)
	b.n -= int64(n)
	return n, err
}

func (b *limitBody) Close() error { return b.rc.Close() }
