package kvresolver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/grpcutil/grpcutil/kvstore"
)

// deleteTimeout bounds the Delete of a record when a Registration stops.
const deleteTimeout = 10 * time.Second

// Registration keeps a server's record in the store. Create one with
// Register; stop it with Close.
type Registration struct {
	store kvstore.Store
	key   string
	rec   Record
	cfg   registerConfig

	cancel context.CancelFunc
	wg     sync.WaitGroup
	err    error // the Delete's; set before wg.Done
}

// Register announces that addr serves service: it puts a record under
// <prefix><service>/<addr> (prefix "services/" unless WithPrefix) that
// expires after the TTL, and re-puts it every heartbeat until Close or until
// ctx ends, when it deletes the record. If the process dies instead, readers
// drop the record once it expires.
//
// addr is the address clients dial, such as "10.0.1.7:8443"; Register
// stores its canonical form (see ValidateAddress). Register blocks until
// the first Put, using ctx, and returns its error. Each later Put is bounded
// by the heartbeat; a failed one is logged and tried again at the next
// heartbeat, and the TTL (3 heartbeats by default) covers a few failures.
//
// The expiry is written by this machine's clock and checked by the
// readers': their clocks must agree to well within the TTL.
func Register(ctx context.Context, store kvstore.Store, service, addr string, opts ...RegisterOption) (*Registration, error) {
	c := registerConfig{}
	for _, o := range opts {
		if o != nil {
			o.applyRegister(&c)
		}
	}
	if store == nil {
		c.errs = append(c.errs, errors.New("kvresolver: nil store"))
	}
	if err := CheckServiceName(service); err != nil {
		c.errs = append(c.errs, err)
	}
	canon, err := ValidateAddress(addr)
	if err != nil {
		c.errs = append(c.errs, err)
	}
	if c.heartbeat == 0 {
		c.heartbeat = DefaultHeartbeat
	}
	if c.ttl == 0 {
		c.ttl = 3 * c.heartbeat
	}
	if c.ttl <= c.heartbeat {
		c.errs = append(c.errs, fmt.Errorf("kvresolver: ttl %v is not longer than the heartbeat %v", c.ttl, c.heartbeat))
	}
	if c.prefix == "" {
		c.prefix = DefaultPrefix
	}
	if c.logger == nil {
		c.logger = nopLogger{}
	}
	if c.clock.now == nil {
		c.clock = realClock
	}
	if err := errors.Join(c.errs...); err != nil {
		return nil, err
	}
	r := &Registration{
		store: store,
		key:   c.prefix + service + "/" + canon,
		rec:   Record{Address: canon, Metadata: maps.Clone(c.metadata)},
		cfg:   c,
	}
	if err := kvstore.ValidateKey(r.key); err != nil {
		return nil, fmt.Errorf("kvresolver: register: %w", err)
	}
	// Check the record (metadata, size) before touching the store.
	r.rec.Expires = c.clock.now()
	if _, err := r.rec.Marshal(); err != nil {
		return nil, err
	}
	if err := r.put(ctx); err != nil {
		return nil, err
	}
	loopCtx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	r.wg.Add(1)
	go r.run(loopCtx, context.WithoutCancel(ctx))
	return r, nil
}

// Key returns the key the record is stored under.
func (r *Registration) Key() string { return r.key }

// Address returns the canonical address the record announces.
func (r *Registration) Address() string { return r.rec.Address }

// Close stops the heartbeats, deletes the record and returns the Delete's
// error. It waits for the heartbeat goroutine to end. Calling it again
// returns the same error.
func (r *Registration) Close() error {
	r.cancel()
	r.wg.Wait()
	return r.err
}

func (r *Registration) put(ctx context.Context) error {
	rec := r.rec
	rec.Expires = r.cfg.clock.now().Add(r.cfg.ttl)
	b, err := rec.Marshal()
	if err != nil {
		return err
	}
	if err := r.store.Put(ctx, r.key, b); err != nil {
		return fmt.Errorf("kvresolver: register %q: %w", r.key, err)
	}
	return nil
}

func (r *Registration) run(ctx, bg context.Context) {
	defer r.wg.Done()
	for {
		c, stop := r.cfg.clock.newTimer(r.cfg.heartbeat)
		select {
		case <-ctx.Done():
			stop()
			dctx, cancel := context.WithTimeout(bg, deleteTimeout)
			defer cancel()
			if err := r.store.Delete(dctx, r.key); err != nil {
				r.err = fmt.Errorf("kvresolver: deregister %q: %w", r.key, err)
			}
			return
		case <-c:
		}
		pctx, cancel := context.WithTimeout(ctx, r.cfg.heartbeat)
		err := r.put(pctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			r.cfg.logger.Warnf("%v; trying again in %v", err, r.cfg.heartbeat)
		}
	}
}
