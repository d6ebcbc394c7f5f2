package kvresolver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/grpcutil/grpcutil/kvstore"
)

const (
	// maxRecords bounds how many records one lookup reads.
	maxRecords = maxAddresses
	// readers is how many records a lookup reads at once.
	readers = 16
)

// StoreLookup returns a LookupFunc that reads the records Register writes
// under prefix + target + "/" (prefix "" means DefaultPrefix, "services/")
// and returns the addresses of those that have not expired. Each call lists
// the keys and reads the records, several at a time.
//
// Expired records are skipped, and so are malformed ones (garbage, a
// record whose address differs from its key, a key with further slashes):
// a bad record never hides the good ones. When there is no good record but
// some malformed ones the lookup fails with an error that says why. A
// failure of the store fails the lookup, so the resolver keeps the last
// good addresses rather than a partial list.
func StoreLookup(store kvstore.Store, prefix string, opts ...StoreOption) LookupFunc {
	var c storeConfig
	for _, o := range opts {
		if o != nil {
			o.applyStore(&c)
		}
	}
	if c.logger == nil {
		c.logger = nopLogger{}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return func(ctx context.Context, target string) ([]string, error) {
		recs, err := readRecords(ctx, store, prefix, target, &c)
		if err != nil {
			return nil, err
		}
		addrs := make([]string, len(recs))
		for i, r := range recs {
			addrs[i] = r.Address
		}
		return addrs, nil
	}
}

// ReadRecords returns the unexpired records of service under prefix ("" means
// DefaultPrefix), sorted by address, skipping malformed ones as StoreLookup
// does. It is StoreLookup for callers that want the metadata too.
func ReadRecords(ctx context.Context, store kvstore.Store, prefix, service string, opts ...StoreOption) ([]Record, error) {
	c := storeConfig{logger: nopLogger{}, now: time.Now}
	for _, o := range opts {
		if o != nil {
			o.applyStore(&c)
		}
	}
	return readRecords(ctx, store, prefix, service, &c)
}

func readRecords(ctx context.Context, store kvstore.Store, prefix, service string, c *storeConfig) ([]Record, error) {
	if store == nil {
		return nil, errors.New("kvresolver: nil store")
	}
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	if err := CheckServiceName(service); err != nil {
		return nil, err
	}
	dir := prefix + service + "/"
	keys, err := store.List(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("kvresolver: list %q: %w", dir, err)
	}
	if len(keys) > maxRecords {
		return nil, fmt.Errorf("kvresolver: %d records under %q, over the limit of %d", len(keys), dir, maxRecords)
	}
	type result struct {
		rec Record
		bad error // malformed: skip
		err error // store failure: fail the lookup
	}
	results := make([]result, len(keys))
	now := c.now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(readers, len(keys)) {
		wg.Go(func() {
			for i := range next {
				res := &results[i]
				key := keys[i]
				addr, ok := strings.CutPrefix(key, dir)
				if !ok || strings.Contains(addr, "/") {
					res.bad = fmt.Errorf("kvresolver: key %q is not %s<address>", key, dir)
					continue
				}
				b, err := store.Get(ctx, key)
				switch {
				case errors.Is(err, kvstore.ErrNotFound):
					continue // deleted since the List
				case err != nil:
					res.err = fmt.Errorf("kvresolver: get %q: %w", key, err)
					cancel()
					continue
				}
				rec, err := ParseRecord(b)
				if err == nil && rec.Address != addr {
					err = fmt.Errorf("kvresolver: invalid record: address %q differs from the key's %q", rec.Address, addr)
				}
				if err != nil {
					res.bad = fmt.Errorf("%q: %w", key, err)
					continue
				}
				if now.Before(rec.Expires) {
					res.rec = rec
				}
			}
		})
	}
	for i := range keys {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	var recs []Record
	var bad []error
	for _, res := range results {
		switch {
		case res.err != nil:
			return nil, res.err
		case res.bad != nil:
			bad = append(bad, res.bad)
		case res.rec.Address != "":
			recs = append(recs, res.rec)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("kvresolver: read %q: %w", dir, err)
	}
	if len(bad) > 0 {
		if len(recs) == 0 {
			return nil, fmt.Errorf("kvresolver: no valid record under %q, %d malformed: %w", dir, len(bad), joinSome(bad))
		}
		c.logger.Warnf("kvresolver: skipped %d malformed records under %q: %v", len(bad), dir, joinSome(bad))
	}
	return recs, nil
}

// CheckServiceName reports whether name can name a service in the store:
// 1 to 253 bytes of letters, digits, '.', '-' and '_', not beginning with a
// dot.
func CheckServiceName(name string) error {
	if name == "" {
		return errors.New("kvresolver: empty service name")
	}
	if len(name) > 253 {
		return fmt.Errorf("kvresolver: service name of %d bytes, over 253", len(name))
	}
	if name[0] == '.' {
		return fmt.Errorf("kvresolver: service name %q begins with a dot", name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("kvresolver: service name %.40q: character %q not allowed", name, c)
		}
	}
	return nil
}

func checkPrefix(p string) error {
	if !strings.HasSuffix(p, "/") {
		return fmt.Errorf("kvresolver: prefix %q does not end with a slash", p)
	}
	if err := kvstore.ValidateKey(strings.TrimSuffix(p, "/")); err != nil {
		return fmt.Errorf("kvresolver: prefix %q: %w", p, err)
	}
	return nil
}
