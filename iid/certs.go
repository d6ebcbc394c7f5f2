package iid

import (
	"crypto"
	"crypto/x509"
	"embed"
	"encoding/pem"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
)

// certFS holds AWS's public certificates for instance identity documents,
// as AWS publishes them, one PEM file per region and form:
//
//	<region>.rsa2048.pem        FormRSA2048
//	<region>.rsa-signature.pem  FormSignature
//	<region>.dsa.pem            FormPKCS7, regions with their own DSA key
//	dsa-default.pem             FormPKCS7, other regions of partition aws
//	china.pkcs7.pem             FormPKCS7, aws-cn regions (an RSA key)
//
//go:embed certs/*.pem
var certFS embed.FS

type trustKey struct {
	form   Form
	region string
}

// trust maps a form and region to the public keys that may sign it.
type trust map[trustKey][]crypto.PublicKey

func (t trust) clone() trust {
	c := make(trust, len(t))
	for k, v := range t {
		c[k] = append([]crypto.PublicKey(nil), v...)
	}
	return c
}

type embedded struct {
	certs map[trustKey][]*x509.Certificate
	trust trust
}

var loadEmbedded = sync.OnceValues(func() (*embedded, error) {
	e := &embedded{certs: map[trustKey][]*x509.Certificate{}, trust: trust{}}
	files, err := certFS.ReadDir("certs")
	if err != nil {
		return nil, err
	}
	single := map[string]*x509.Certificate{}
	for _, f := range files {
		name := f.Name()
		cert, err := readCert(path.Join("certs", name))
		if err != nil {
			return nil, err
		}
		var k trustKey
		switch {
		case strings.HasSuffix(name, ".rsa2048.pem"):
			k = trustKey{FormRSA2048, strings.TrimSuffix(name, ".rsa2048.pem")}
		case strings.HasSuffix(name, ".rsa-signature.pem"):
			k = trustKey{FormSignature, strings.TrimSuffix(name, ".rsa-signature.pem")}
		case strings.HasSuffix(name, ".dsa.pem"):
			k = trustKey{FormPKCS7, strings.TrimSuffix(name, ".dsa.pem")}
		default:
			single[name] = cert
			continue
		}
		e.certs[k] = append(e.certs[k], cert)
	}
	// FormPKCS7 for regions without their own DSA certificate: the China
	// certificate in aws-cn, the default DSA certificate in aws. Other
	// partitions have none published: they fail closed unless the caller
	// adds keys.
	for k := range e.certs {
		if k.form != FormRSA2048 {
			continue
		}
		pk := trustKey{FormPKCS7, k.region}
		if _, ok := e.certs[pk]; ok {
			continue
		}
		switch Partition(k.region) {
		case "aws-cn":
			if c := single["china.pkcs7.pem"]; c != nil {
				e.certs[pk] = []*x509.Certificate{c}
			}
		case "aws":
			if c := single["dsa-default.pem"]; c != nil {
				e.certs[pk] = []*x509.Certificate{c}
			}
		}
	}
	for k, cs := range e.certs {
		for _, c := range cs {
			e.trust[k] = append(e.trust[k], c.PublicKey)
		}
	}
	return e, nil
})

func readCert(name string) (*x509.Certificate, error) {
	b, err := certFS.ReadFile(name)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("iid: embedded %s is not a PEM certificate", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("iid: embedded %s: %w", name, err)
	}
	return c, nil
}

// EmbeddedCertificates returns the AWS certificates the package trusts by
// default for signatures of the given form from the given region, or nil if
// it has none. Each call returns new copies. Use it to add a key next to the
// embedded ones with WithCertificates.
func EmbeddedCertificates(form Form, region string) []*x509.Certificate {
	e, err := loadEmbedded()
	if err != nil {
		return nil
	}
	var out []*x509.Certificate
	for _, c := range e.certs[trustKey{form, region}] {
		cp, err := x509.ParseCertificate(c.Raw)
		if err == nil {
			out = append(out, cp)
		}
	}
	return out
}

// EmbeddedRegions returns, sorted, the regions for which the package has an
// embedded certificate of the given form.
func EmbeddedRegions(form Form) []string {
	e, err := loadEmbedded()
	if err != nil {
		return nil
	}
	var out []string
	for k := range e.certs {
		if k.form == form {
			out = append(out, k.region)
		}
	}
	sort.Strings(out)
	return out
}

// Partition returns the AWS partition of a region name: "aws-cn",
// "aws-us-gov", "aws-eusc" or "aws".
func Partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "eusc-"):
		return "aws-eusc"
	default:
		return "aws"
	}
}
