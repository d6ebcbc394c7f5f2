// Package kvstore is the small key-value store every other grpcutil package
// stands on: servers publish their certificates and announce themselves in
// it, clients read them back. In production it is an S3 bucket (package
// s3store); for tests and demos, memory (NewMemory) or a folder (NewDir).
//
//	store, err := kvstore.NewDir("/var/lib/myservice/kv")
//	if err != nil { ... }
//	err = store.Put(ctx, "certs/10.0.1.7:8443", pemBundle)
//	v, err := store.Get(ctx, "certs/10.0.1.7:8443")
//	if errors.Is(err, kvstore.ErrNotFound) { ... }
//	keys, err := store.List(ctx, "services/hello/")
//
// # Keys and values
//
// Keys are slash-separated paths; ValidateKey says which are valid, and every
// Store here rejects an invalid key with an error matching ErrInvalidKey
// before its backend sees it. Use ValidateKey in a Store of your own, and
// check it with kvstoretest.Run. Values are at most MaxValueSize (1 MiB)
// bytes, both ways: a larger stored value is an error matching
// ErrValueTooLarge, not an allocation.
//
// Everything read from a Store is untrusted input to the packages that read
// it: whoever can write a key can write anything there.
package kvstore
