// Package iid fetches, verifies and authenticates with EC2 instance identity
// documents (IIDs): the JSON document AWS signs for every instance, naming
// its account, instance id, region, image and more.
//
// # Fetching
//
// On an instance, GetDocumentAndSignature (or a Fetcher, which keeps the
// IMDSv2 session token) reads the document and a signature from the instance
// metadata service through the AWS SDK's IMDS client, with IMDSv2 tokens,
// no IMDSv1 fallback and short timeouts so that it fails fast off EC2:
//
//	sd, err := iid.GetDocumentAndSignature(ctx) // the /rsa2048 PKCS#7 by default
//
// # Verifying
//
// A Verifier checks a document against AWS's public keys, embedded in the
// package for every region and partition (aws, aws-cn, aws-us-gov,
// aws-eusc) and chosen by the region the document names; a region without a
// key fails closed (ErrUnknownRegion). Keys, not certificates, are trusted:
// the certificates' validity dates are ignored, as AWS reissues them with the
// same keys. WithCertificates and WithPublicKeys add regions or replace keys.
//
//	v, err := iid.NewVerifier(
//		iid.WithAllowedAccounts("123456789012"),
//		iid.WithAllowedRegions("us-east-1", "eu-west-1"),
//	)
//	doc, err := v.Verify(*sd)
//	// doc.InstanceID, doc.AccountID, doc.Region, doc.PendingTime, ...
//
// Three forms of signature exist. FormRSA2048 (PKCS#7, RSA-2048, SHA-256) is
// the default and the only one accepted unless WithAllowedForms says
// otherwise. FormSignature (raw RSA PKCS#1 v1.5 over SHA-256 with a 1024-bit
// key) and FormPKCS7 (PKCS#7, DSA with SHA-1, 1024-bit key) are legacy forms
// kept for old agents; the package verifies DSA itself, strictly, because
// crypto/x509 no longer does.
//
// Only verified bytes are parsed: for the PKCS#7 forms the signed content
// must equal the document presented byte for byte (so a valid signature of
// another document cannot be substituted), the messageDigest attribute must
// match it, and certificates inside the message are ignored. Base64 may be
// wrapped at any width; one trailing newline on a document (as files add;
// IMDS serves none) is dropped before anything is checked. Inputs are
// bounded by MaxDocumentSize and MaxSignatureSize.
//
// # Authenticating gRPC clients
//
// ClientHandshake and ServerHandshake plug into the handshake package: the
// client sends its document and signature after the inner (TLS) handshake,
// the server verifies them and applies its policy, and RPC handlers read the
// verified Document with FromContext.
//
// # Testing
//
// Package iidtest signs documents with demo keys the way AWS does and serves
// them from a fake IMDS (IMDSv2 tokens, 401 without one, 429 throttling) that
// the SDK's client talks to; Signer.Trust gives the verifier options that
// trust the demo keys.
//
// # Threat model
//
// An instance identity document is a bearer credential. It is not secret
// from code on the instance, it does not expire (pendingTime changes only
// when the instance is stopped and started), and it is not bound to the
// connection, a key or a nonce: anyone who obtains a document and its
// signature can present them and be taken for that instance. It must
// therefore only ever be sent inside an authenticated, encrypted channel to a
// server the client has pinned (for example TLS with the server's
// certificate checked, as kvcertverify does), never over a channel a third
// party can read or to a server that is not authenticated, since that server
// could replay it elsewhere. What a verified document proves is: AWS signed
// these fields for some instance of this account, and whoever presents them
// got them from that instance or from someone it was sent to. WithMaxAge
// narrows the window only for instances that restart; the server's policy
// (allowed accounts, regions, instance ids, WithCheck) is what limits who is
// admitted. Anything that can read IMDS on the instance (every process, and
// containers without a hop limit) can obtain the document.
package iid
