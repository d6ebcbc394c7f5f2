package iidtest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/grpcutil/grpcutil/iid"
	"github.com/grpcutil/grpcutil/iid/iidtest"
)

const doc = `{"accountId":"123456789012","instanceId":"i-0123456789abcdef0","region":"eu-west-1","pendingTime":"2026-01-02T03:04:05Z"}`

// The fake answers raw HTTP the way IMDS does with IMDSv2 required.
func TestIMDSProtocol(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	s, err := iidtest.NewSigner()
	if err != nil {
		t.Fatal(err)
	}
	m, err := iidtest.NewIMDS([]byte(doc), s)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()

	do := func(method, path string, hdr map[string]string) (int, http.Header, string) {
		t.Helper()
		req, err := http.NewRequest(method, m.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	ttl := map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21600"}

	if code, _, _ := do("PUT", iidtest.TokenPath, nil); code != 400 {
		t.Errorf("token without ttl: %d", code)
	}
	if code, _, _ := do("PUT", iidtest.TokenPath, map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21601"}); code != 400 {
		t.Errorf("token with ttl too long: %d", code)
	}
	if code, _, _ := do("GET", iidtest.TokenPath, ttl); code != 405 {
		t.Errorf("GET token: %d", code)
	}
	if code, _, _ := do("PUT", iidtest.TokenPath, map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.1"}); code != 403 {
		t.Errorf("token through a proxy: %d", code)
	}
	code, hdr, tok := do("PUT", iidtest.TokenPath, ttl)
	if code != 200 || tok == "" || hdr.Get("X-aws-ec2-metadata-token-ttl-seconds") != "21600" {
		t.Fatalf("token: %d %q ttl header %q", code, tok, hdr.Get("X-aws-ec2-metadata-token-ttl-seconds"))
	}
	if code, _, _ := do("GET", iidtest.DocumentPath, nil); code != 401 {
		t.Errorf("document without token (IMDSv1): %d", code)
	}
	if code, _, _ := do("GET", iidtest.DocumentPath, map[string]string{"X-aws-ec2-metadata-token": "forged"}); code != 401 {
		t.Errorf("document with a forged token: %d", code)
	}
	auth := map[string]string{"X-aws-ec2-metadata-token": tok}
	code, _, body := do("GET", iidtest.DocumentPath, auth)
	if code != 200 || body != doc {
		t.Fatalf("document: %d %q", code, body)
	}
	for _, f := range []iid.Form{iid.FormRSA2048, iid.FormSignature, iid.FormPKCS7} {
		code, _, body := do("GET", iidtest.SignaturePrefix+string(f), auth)
		if code != 200 || strings.HasSuffix(body, "\n") || !strings.Contains(body, "\n") && f != iid.FormSignature {
			t.Fatalf("%s: %d %q", f, code, body)
		}
		opts, err := s.Trust("eu-west-1", f)
		if err != nil {
			t.Fatal(err)
		}
		d, err := iid.VerifyDocumentAndSignature([]byte(doc), []byte(body), append(opts, iid.WithAllowedForms(f))...)
		if err != nil || d.Region != "eu-west-1" || d.Form != f {
			t.Fatalf("%s: %v %+v", f, err, d)
		}
	}
	if code, _, _ := do("GET", "/latest/meta-data/iam/security-credentials/", auth); code != 404 {
		t.Errorf("other path: %d", code)
	}
	if code, _, _ := do("POST", iidtest.DocumentPath, auth); code != 405 {
		t.Errorf("POST: %d", code)
	}
	m.Throttle(1)
	if code, _, _ := do("GET", iidtest.DocumentPath, auth); code != 429 {
		t.Errorf("throttled: %d", code)
	}
	if code, _, _ := do("GET", iidtest.DocumentPath, auth); code != 200 {
		t.Errorf("after throttle: %d", code)
	}
	m.ExpireTokens()
	if code, _, _ := do("GET", iidtest.DocumentPath, auth); code != 401 {
		t.Errorf("expired token: %d", code)
	}
	if n := m.Count(iidtest.DocumentPath); n != 7 {
		t.Errorf("document requests counted %d, want 7", n)
	}
}
