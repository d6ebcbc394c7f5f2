package kvstoretest_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

func ExampleFaulty() {
	ctx := context.Background()
	store := kvstoretest.NewFaulty(kvstore.NewMemory())
	store.Put(ctx, "services/hello/10.0.0.1:50051", []byte("{}"))

	// The store goes down for reads: code under test must keep working on
	// what it read before.
	store.Fail(kvstoretest.OpList|kvstoretest.OpGet, errors.New("503 slow down"))
	_, err := store.List(ctx, "services/hello/")
	fmt.Println(err)

	store.Heal()
	keys, _ := store.List(ctx, "services/hello/")
	fmt.Println(keys, store.Calls(kvstoretest.OpList))
	// Output:
	// kvstoretest: injected List fault: 503 slow down
	// [services/hello/10.0.0.1:50051] 2
}
