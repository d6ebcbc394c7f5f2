package kvstoretest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

var errBoom = errors.New("boom")

func TestFaultyFail(t *testing.T) {
	ctx := context.Background()
	f := kvstoretest.NewFaulty(kvstore.NewMemory())
	if err := f.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	f.Fail(kvstoretest.OpGet|kvstoretest.OpList, errBoom)
	if _, err := f.Get(ctx, "k"); !errors.Is(err, errBoom) || err.Error() != "kvstoretest: injected Get fault: boom" {
		t.Fatalf("Get error = %v", err)
	}
	if _, err := f.List(ctx, ""); !errors.Is(err, errBoom) {
		t.Fatalf("List error = %v", err)
	}
	if err := f.Put(ctx, "k2", []byte("v")); err != nil {
		t.Fatalf("Put, not in the failed ops: %v", err)
	}
	f.Heal()
	if _, err := f.Get(ctx, "k"); err != nil {
		t.Fatalf("Get after Heal: %v", err)
	}

	f.FailNext(kvstoretest.AllOps, 2, errBoom)
	for i, want := range []bool{true, true, false} {
		_, err := f.Get(ctx, "k")
		if got := err != nil; got != want {
			t.Fatalf("call %d: failed = %v, want %v", i, got, want)
		}
	}
	if got := f.Calls(kvstoretest.OpGet); got != 5 {
		t.Fatalf("Calls(Get) = %d, want 5", got)
	}
	if got := f.Calls(kvstoretest.AllOps); got != 8 {
		t.Fatalf("Calls(AllOps) = %d, want 8", got)
	}
	f.ResetCalls()
	if got := f.Calls(kvstoretest.AllOps); got != 0 {
		t.Fatalf("Calls after ResetCalls = %d", got)
	}
}

func TestFaultyLatencyHonoursContext(t *testing.T) {
	f := kvstoretest.NewFaulty(kvstore.NewMemory())
	f.SetLatency(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := f.Get(ctx, "k"); done <- err }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get error = %v, want context.Canceled", err)
	}
}

func TestFaultyFreeze(t *testing.T) {
	ctx := context.Background()
	f := kvstoretest.NewFaulty(kvstore.NewMemory())
	f.Put(ctx, "svc/a", []byte("old"))
	f.Put(ctx, "svc/b", []byte("b"))
	if err := f.Freeze(ctx); err != nil {
		t.Fatal(err)
	}
	f.Put(ctx, "svc/a", []byte("new"))
	f.Put(ctx, "svc/c", []byte("c"))
	f.Delete(ctx, "svc/b")
	if v, _ := f.Get(ctx, "svc/a"); string(v) != "old" {
		t.Fatalf("frozen Get = %q, want the old value", v)
	}
	if keys, _ := f.List(ctx, "svc/"); fmt.Sprint(keys) != "[svc/a svc/b]" {
		t.Fatalf("frozen List = %q", keys)
	}
	if _, err := f.Get(ctx, "svc/c"); !errors.Is(err, kvstore.ErrNotFound) {
		t.Fatalf("frozen Get of a new key error = %v", err)
	}
	if _, err := f.Get(ctx, "../x"); !errors.Is(err, kvstore.ErrInvalidKey) {
		t.Fatalf("frozen Get of a bad key error = %v", err)
	}
	f.Thaw()
	if v, _ := f.Get(ctx, "svc/a"); string(v) != "new" {
		t.Fatalf("thawed Get = %q, want the new value", v)
	}
	if keys, _ := f.List(ctx, "svc/"); fmt.Sprint(keys) != "[svc/a svc/c]" {
		t.Fatalf("thawed List = %q", keys)
	}
}

func TestOpString(t *testing.T) {
	if s := (kvstoretest.OpGet | kvstoretest.OpList).String(); s != "Get|List" {
		t.Fatalf("String = %q", s)
	}
	if s := kvstoretest.AllOps.String(); !strings.Contains(s, "Delete") {
		t.Fatalf("String = %q", s)
	}
}
