package iid_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/grpcutil/grpcutil/iid"
	"github.com/grpcutil/grpcutil/iid/iidtest"
)

// demoDoc is an instance identity document laid out as IMDS serves it
// (pretty-printed, no trailing newline).
var demoDoc = []byte(`{
  "accountId" : "123456789012",
  "architecture" : "x86_64",
  "availabilityZone" : "us-east-1a",
  "billingProducts" : null,
  "devpayProductCodes" : null,
  "marketplaceProductCodes" : null,
  "imageId" : "ami-0123456789abcdef0",
  "instanceId" : "i-0123456789abcdef0",
  "instanceType" : "t3.micro",
  "kernelId" : null,
  "pendingTime" : "2026-11-20T10:00:00Z",
  "privateIp" : "10.0.1.7",
  "ramdiskId" : null,
  "region" : "us-east-1",
  "version" : "2017-09-30"
}`)

type fixture struct {
	signer *iidtest.Signer
	imds   *iidtest.IMDS
	trust  []iid.VerifyOption
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	s := demoSigner(t)
	m, err := iidtest.NewIMDS(demoDoc, s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	trust, err := s.Trust("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{signer: s, imds: m, trust: trust}
}

var signerCache struct {
	s *iidtest.Signer
}

// demoSigner shares one Signer across the tests of a run: key generation
// (DSA above all) is the slow part.
func demoSigner(t testing.TB) *iidtest.Signer {
	t.Helper()
	if signerCache.s == nil {
		s, err := iidtest.NewSigner()
		if err != nil {
			t.Fatal(err)
		}
		signerCache.s = s
	}
	return signerCache.s
}

// testHTTP is an HTTP client for the fake with timeouts generous enough for
// a loaded machine (the SDK's defaults are 250ms to dial, 500ms for headers).
func testHTTP() *http.Client {
	return &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{}}
}

func TestFetchAllForms(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	for _, form := range []iid.Form{iid.FormRSA2048, iid.FormSignature, iid.FormPKCS7} {
		t.Run(string(form), func(t *testing.T) {
			sd, err := iid.GetDocumentAndSignature(context.Background(),
				iid.WithEndpoint(f.imds.URL), iid.WithHTTPClient(h), iid.WithForm(form), iid.WithFetchTimeout(30*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(sd.Document, demoDoc) || sd.Form != form {
				t.Fatalf("got %q form %s", sd.Document, sd.Form)
			}
			opts := append([]iid.VerifyOption{iid.WithAllowedForms(form)}, f.trust...)
			d, err := iid.VerifyDocumentAndSignature(sd.Document, sd.Signature, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if d.InstanceID != "i-0123456789abcdef0" || d.Form != form {
				t.Fatalf("got %+v", d)
			}
		})
	}
}

func TestFetchDefaultIsRSA2048(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	sd, err := iid.GetDocumentAndSignature(context.Background(), iid.WithEndpoint(f.imds.URL), iid.WithHTTPClient(h))
	if err != nil {
		t.Fatal(err)
	}
	if sd.Form != iid.FormRSA2048 || f.imds.Count(iidtest.SignaturePrefix+"rsa2048") != 1 {
		t.Fatalf("form %s, rsa2048 requests %d", sd.Form, f.imds.Count(iidtest.SignaturePrefix+"rsa2048"))
	}
	if iid.DetectForm(sd.Signature) != iid.FormRSA2048 {
		t.Fatalf("detected %s", iid.DetectForm(sd.Signature))
	}
}

func TestFetchReusesToken(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	fe, err := iid.NewFetcher(iid.WithEndpoint(f.imds.URL), iid.WithHTTPClient(h))
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := fe.Fetch(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.imds.Count(iidtest.TokenPath); n != 1 {
		t.Fatalf("%d token requests for 3 fetches, want 1", n)
	}
	// A token IMDS no longer honours: the 401 makes the SDK get a new one.
	f.imds.ExpireTokens()
	if _, err := fe.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.imds.Count(iidtest.TokenPath); n != 2 {
		t.Fatalf("%d token requests after expiry, want 2", n)
	}
}

func TestFetchThrottled(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	// Two 429s are retried (three attempts).
	f.imds.Throttle(2)
	if _, err := iid.GetDocumentAndSignature(context.Background(), iid.WithEndpoint(f.imds.URL), iid.WithHTTPClient(h)); err != nil {
		t.Fatalf("after 2 throttled requests: %v", err)
	}
	// Throttled for good: an error, not a hang.
	f.imds.Throttle(1 << 30)
	_, err := iid.GetDocumentAndSignature(context.Background(), iid.WithEndpoint(f.imds.URL), iid.WithHTTPClient(h))
	if err == nil || !strings.HasPrefix(err.Error(), "iid: fetch") || !strings.Contains(err.Error(), "429") {
		t.Fatalf("got %v, want an iid: fetch error naming 429", err)
	}
}

func TestFetchNoIMDS(t *testing.T) {
	// Nothing listens: fails fast with the package's error, no IMDSv1 fallback.
	f := newFixture(t)
	url := f.imds.URL
	f.imds.Close()
	start := time.Now()
	_, err := iid.GetDocumentAndSignature(context.Background(), iid.WithEndpoint(url))
	if err == nil || !strings.HasPrefix(err.Error(), "iid: fetch") {
		t.Fatalf("got %v", err)
	}
	if d := time.Since(start); d > iid.DefaultFetchTimeout+5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestFetchContextCancelled(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := iid.GetDocumentAndSignature(ctx, iid.WithEndpoint(f.imds.URL))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestFetchOversize(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	for _, p := range []string{iidtest.DocumentPath, iidtest.SignaturePrefix + "rsa2048"} {
		t.Run(p, func(t *testing.T) {
			f := newFixture(t)
			f.imds.SetFile(p, bytes.Repeat([]byte("A"), 1<<20))
			_, err := iid.GetDocumentAndSignature(context.Background(), iid.WithEndpoint(f.imds.URL), iid.WithHTTPClient(h))
			if !errors.Is(err, iid.ErrTooLarge) {
				t.Fatalf("got %v, want ErrTooLarge", err)
			}
		})
	}
	_ = f
}

func TestFetchWithIMDSClient(t *testing.T) {
	f := newFixture(t)
	h := testHTTP()
	defer h.CloseIdleConnections()
	c := imds.New(imds.Options{Endpoint: f.imds.URL, HTTPClient: h, ClientEnableState: imds.ClientEnabled})
	sd, err := iid.GetDocumentAndSignature(context.Background(), iid.WithIMDSClient(c), iid.WithForm(iid.FormSignature))
	if err != nil {
		t.Fatal(err)
	}
	if sd.Form != iid.FormSignature {
		t.Fatalf("form %s", sd.Form)
	}
}

func TestFetchBadOptions(t *testing.T) {
	if _, err := iid.NewFetcher(iid.WithForm("dsa")); err == nil || !strings.HasPrefix(err.Error(), "iid: ") {
		t.Fatalf("got %v", err)
	}
	if _, err := iid.NewFetcher(iid.WithFetchTimeout(0)); err == nil {
		t.Fatal("zero timeout accepted")
	}
}
