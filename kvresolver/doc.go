// Package kvresolver is a grpc-go resolver that polls a lookup function,
// and a service registry kept in a kvstore.Store.
//
// # Resolving
//
// A Builder polls a LookupFunc for the addresses of a target, on the model
// of grpc-go's DNS resolver, and hands them to the channel as endpoints
// with a service config that selects round_robin:
//
//	lookup := func(ctx context.Context, target string) ([]string, error) {
//		return []string{"10.0.1.7:8443", "10.0.1.8:8443"}, nil
//	}
//	b, err := kvresolver.NewBuilder(lookup, kvresolver.WithInterval(10*time.Second))
//	if err != nil {
//		return err
//	}
//	conn, err := grpc.NewClient("kv:///hello", grpc.WithResolvers(b), grpc.WithTransportCredentials(creds))
//
// Each resolver polls once when grpc-go builds it, then every interval
// plus a random jitter. ResolveNow brings the next poll forward without
// blocking, but never to less than the minimum ResolveNow interval after
// the last one (by default the interval itself, so however many
// subchannels ask, a target costs one lookup per interval). Each lookup is
// bounded by a timeout.
//
// The resolver updates the channel only when the set of addresses changes;
// it validates, de-duplicates and sorts them first. A failed lookup is
// reported to the channel (ReportError) until a good set has been seen;
// after that the channel keeps the last good set and the resolver retries
// with capped exponential backoff. An empty list also keeps the last good
// set, since an eventually consistent store can briefly list nothing,
// unless WithEmptyMeansEmpty is given. If the channel rejects an update the
// resolver resolves again after a backoff. Close stops the polling
// goroutine and waits for it; grpc-go closes resolvers when a channel goes
// idle and builds new ones when it wakes.
//
// # The store as a registry
//
// StoreLookup is a LookupFunc that reads services/<target>/<address>
// records from a kvstore.Store, and Register writes such a record for a
// server and keeps it fresh:
//
//	reg, err := kvresolver.Register(ctx, store, "hello", "10.0.1.7:8443",
//		kvresolver.WithHeartbeat(10*time.Second))
//	if err != nil {
//		return err
//	}
//	defer reg.Close() // deletes the record
//
//	b, err := kvresolver.NewBuilder(kvresolver.StoreLookup(store, ""))
//
// A record is JSON: the address, an expiry and optional metadata (see
// Record). Register re-puts it every heartbeat with an expiry one TTL
// ahead (3 heartbeats by default), and deletes it on Close or when its
// context ends. Readers skip expired records, so the record of a server
// that crashed drops out by itself, and they skip malformed records, so
// one bad record never hides the good ones.
//
// # Trust
//
// Whoever can write under services/ in the store can send a service's
// clients to any address; pair the resolver with transport credentials
// that authenticate the server (such as kvcertverify). Everything read from
// the store is parsed strictly and bounded in size: a record is at most
// MaxRecordSize bytes, a lookup at most 10,000 addresses.
package kvresolver
