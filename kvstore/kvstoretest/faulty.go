package kvstoretest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grpcutil/grpcutil/kvstore"
)

// Op names Store operations; combine them with |.
type Op uint8

// The operations a Faulty store can fail or count.
const (
	OpGet Op = 1 << iota
	OpPut
	OpDelete
	OpList
	AllOps = OpGet | OpPut | OpDelete | OpList
)

func (op Op) String() string {
	var names []string
	for _, o := range []struct {
		op   Op
		name string
	}{{OpGet, "Get"}, {OpPut, "Put"}, {OpDelete, "Delete"}, {OpList, "List"}} {
		if op&o.op != 0 {
			names = append(names, o.name)
		}
	}
	return strings.Join(names, "|")
}

// Faulty wraps a Store and misbehaves on request: it fails operations,
// delays them, or serves reads from an old snapshot as an eventually
// consistent store can. It counts every call. It is safe for concurrent use;
// faults can be switched while other goroutines use the store.
type Faulty struct {
	inner kvstore.Store

	mu       sync.Mutex
	failOps  Op
	failErr  error
	failLeft int // with failOps set: how many more to fail; <0 means until Heal
	latency  time.Duration
	frozen   map[string][]byte // non-nil: reads come from here

	calls [4]atomic.Int64
}

// NewFaulty returns a Faulty that passes everything to inner until told
// otherwise.
func NewFaulty(inner kvstore.Store) *Faulty { return &Faulty{inner: inner} }

// Fail makes every operation in ops fail with an error that wraps err, until
// Heal.
func (f *Faulty) Fail(ops Op, err error) { f.FailNext(ops, -1, err) }

// FailNext makes the next n operations in ops fail with an error that wraps
// err; n < 0 means until Heal.
func (f *Faulty) FailNext(ops Op, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOps, f.failErr, f.failLeft = ops, err, n
}

// SetLatency delays every operation by d, or until its context ends.
func (f *Faulty) SetLatency(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.latency = d
}

// Freeze takes a snapshot of every key and value, and serves Get and List
// from it until Thaw or Heal; Put and Delete still reach the store. Readers
// see the state as it was, as they may on an eventually consistent store.
func (f *Faulty) Freeze(ctx context.Context) error {
	keys, err := f.inner.List(ctx, "")
	if err != nil {
		return fmt.Errorf("kvstoretest: freeze: %w", err)
	}
	snap := make(map[string][]byte, len(keys))
	for _, k := range keys {
		v, err := f.inner.Get(ctx, k)
		if err != nil {
			continue // deleted meanwhile
		}
		snap[k] = v
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = snap
	return nil
}

// Thaw ends Freeze: reads see the store again.
func (f *Faulty) Thaw() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozen = nil
}

// Heal ends every fault.
func (f *Faulty) Heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failOps, f.failErr, f.failLeft, f.latency, f.frozen = 0, nil, 0, 0, nil
}

// Calls returns how many calls of the operations in ops were made, including
// the failed ones.
func (f *Faulty) Calls(ops Op) int64 {
	var n int64
	for i := range f.calls {
		if ops&(1<<i) != 0 {
			n += f.calls[i].Load()
		}
	}
	return n
}

// ResetCalls sets every count back to zero.
func (f *Faulty) ResetCalls() {
	for i := range f.calls {
		f.calls[i].Store(0)
	}
}

// enter counts the call, waits out any latency, and returns the injected
// error, if any, and the frozen snapshot, if any.
func (f *Faulty) enter(ctx context.Context, op Op) (map[string][]byte, error) {
	for i := range f.calls {
		if op == 1<<i {
			f.calls[i].Add(1)
		}
	}
	f.mu.Lock()
	latency, frozen := f.latency, f.frozen
	var err error
	if f.failOps&op != 0 && f.failLeft != 0 {
		err = fmt.Errorf("kvstoretest: injected %s fault: %w", op, f.failErr)
		if f.failLeft > 0 {
			f.failLeft--
		}
	}
	f.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("kvstoretest: %s: %w", op, ctx.Err())
		}
	}
	return frozen, err
}

// Get implements kvstore.Store.
func (f *Faulty) Get(ctx context.Context, key string) ([]byte, error) {
	frozen, err := f.enter(ctx, OpGet)
	if err != nil {
		return nil, err
	}
	if frozen == nil {
		return f.inner.Get(ctx, key)
	}
	if err := kvstore.ValidateKey(key); err != nil {
		return nil, err
	}
	v, ok := frozen[key]
	if !ok {
		return nil, kvstore.NotFound(key)
	}
	return append([]byte(nil), v...), nil
}

// Put implements kvstore.Store.
func (f *Faulty) Put(ctx context.Context, key string, value []byte) error {
	if _, err := f.enter(ctx, OpPut); err != nil {
		return err
	}
	return f.inner.Put(ctx, key, value)
}

// Delete implements kvstore.Store.
func (f *Faulty) Delete(ctx context.Context, key string) error {
	if _, err := f.enter(ctx, OpDelete); err != nil {
		return err
	}
	return f.inner.Delete(ctx, key)
}

// List implements kvstore.Store.
func (f *Faulty) List(ctx context.Context, prefix string) ([]string, error) {
	frozen, err := f.enter(ctx, OpList)
	if err != nil {
		return nil, err
	}
	if frozen == nil {
		return f.inner.List(ctx, prefix)
	}
	if err := kvstore.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	keys := []string{}
	for k := range frozen {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys, nil
}

var _ kvstore.Store = (*Faulty)(nil)
