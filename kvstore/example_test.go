package kvstore_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/grpcutil/grpcutil/kvstore"
)

func Example() {
	ctx := context.Background()
	store := kvstore.NewMemory()

	store.Put(ctx, "services/hello/10.0.0.2:50051", []byte(`{"address":"10.0.0.2:50051"}`))
	store.Put(ctx, "services/hello/10.0.0.1:50051", []byte(`{"address":"10.0.0.1:50051"}`))
	store.Put(ctx, "services/hello2/10.0.0.3:50051", []byte(`{}`))

	keys, _ := store.List(ctx, "services/hello/")
	fmt.Println(keys)

	_, err := store.Get(ctx, "certs/10.0.0.9:443")
	fmt.Println(errors.Is(err, kvstore.ErrNotFound))

	err = store.Put(ctx, "../etc/passwd", nil)
	fmt.Println(err)
	// Output:
	// [services/hello/10.0.0.1:50051 services/hello/10.0.0.2:50051]
	// true
	// kvstore: invalid key "../etc/passwd": ".." path segment
}

func ExampleNewDir() {
	root, _ := os.MkdirTemp("", "kv")
	defer os.RemoveAll(root)

	// Two processes that open the same folder share one store.
	server, _ := kvstore.NewDir(root)
	client, _ := kvstore.NewDir(root)

	ctx := context.Background()
	server.Put(ctx, "certs/127.0.0.1:8443", []byte("-----BEGIN CERTIFICATE-----..."))
	v, _ := client.Get(ctx, "certs/127.0.0.1:8443")
	fmt.Printf("%.27s\n", v)
	// Output:
	// -----BEGIN CERTIFICATE-----
}
