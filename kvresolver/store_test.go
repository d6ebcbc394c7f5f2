package kvresolver

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func TestParseRecord(t *testing.T) {
	const exp = `"expires":"2030-01-01T00:00:00.5Z"`
	good := Record{Address: "10.0.0.1:80", Expires: t0.Add(500 * time.Millisecond)}
	for _, tc := range []struct {
		name, in string
		want     Record
		err      string
	}{
		{"minimal", `{"address":"10.0.0.1:80",` + exp + `}`, good, ""},
		{"metadata", ` {"metadata":{"zone":"a","":"x"},"address":"10.0.0.1:80",` + exp + "}\n",
			Record{Address: good.Address, Expires: good.Expires, Metadata: map[string]string{"zone": "a", "": "x"}}, `kvresolver: invalid record: kvresolver: empty metadata key`},
		{"metadata ok", `{"metadata":{"zone":"a"},"address":"10.0.0.1:80",` + exp + `}`,
			Record{Address: good.Address, Expires: good.Expires, Metadata: map[string]string{"zone": "a"}}, ""},
		{"garbage", "\xff\xfegarbage", Record{}, `kvresolver: invalid record: not valid UTF-8`},
		{"text", "hello", Record{}, `kvresolver: invalid record: want '{' at byte 0, got 'h'`},
		{"empty", "", Record{}, `kvresolver: invalid record: want '{' at byte 0, got the end`},
		{"array", `[]`, Record{}, `kvresolver: invalid record: want '{' at byte 0, got '['`},
		{"null", `null`, Record{}, `kvresolver: invalid record: want '{' at byte 0, got 'n'`},
		{"truncated", `{"address":"10.0.0.1:80",`, Record{}, `kvresolver: invalid record: field name: want a string at byte 25, got the end`},
		{"unknown field", `{"address":"10.0.0.1:80",` + exp + `,"weight":3}`, Record{}, `kvresolver: invalid record: unknown field "weight"`},
		{"duplicate address", `{"address":"10.0.0.1:80","address":"10.0.0.2:80",` + exp + `}`, Record{}, `kvresolver: invalid record: duplicate field "address"`},
		{"duplicate expires", `{"address":"10.0.0.1:80",` + exp + `,` + exp + `}`, Record{}, `kvresolver: invalid record: duplicate field "expires"`},
		{"duplicate metadata", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{},"metadata":{}}`, Record{}, `kvresolver: invalid record: duplicate field "metadata"`},
		{"duplicate metadata key", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{"a":"1","a":"2"}}`, Record{}, `kvresolver: invalid record: "metadata": duplicate metadata key "a"`},
		{"no address", `{` + exp + `}`, Record{}, `kvresolver: invalid record: no "address"`},
		{"no expires", `{"address":"10.0.0.1:80"}`, Record{}, `kvresolver: invalid record: no "expires"`},
		{"number address", `{"address":80,` + exp + `}`, Record{}, `kvresolver: invalid record: "address": want a string at byte 11, got '8'`},
		{"bad expires", `{"address":"10.0.0.1:80","expires":"tomorrow"}`, Record{}, `kvresolver: invalid record: "expires": parsing time "tomorrow" as "2006-01-02T15:04:05.999999999Z07:00": cannot parse "tomorrow" as "2006"`},
		{"bad address", `{"address":"10.0.0.1",` + exp + `}`, Record{}, `kvresolver: invalid record: kvresolver: invalid address "10.0.0.1": address 10.0.0.1: missing port in address`},
		{"non-canonical address", `{"address":"10.0.0.1:080",` + exp + `}`, Record{}, `kvresolver: invalid record: kvresolver: address "10.0.0.1:080" is not in canonical form "10.0.0.1:80"`},
		{"metadata not strings", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{"a":1}}`, Record{}, `kvresolver: invalid record: "metadata": metadata value: want a string at byte 76, got '1'`},
		{"metadata array", `{"address":"10.0.0.1:80",` + exp + `,"metadata":["a"]}`, Record{}, `kvresolver: invalid record: "metadata": want '{' at byte 71, got '['`},
		{"trailing object", `{"address":"10.0.0.1:80",` + exp + `}{}`, Record{}, `kvresolver: invalid record: data after the object at byte 60`},
		{"trailing garbage", `{"address":"10.0.0.1:80",` + exp + `}x`, Record{}, `kvresolver: invalid record: data after the object at byte 60`},
		{"escapes", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{"\u007a\u006fne":"\u00e9\"\\\/\b\f\n\r\t"}}`,
			Record{Address: good.Address, Expires: good.Expires, Metadata: map[string]string{"zone": "é\"\\/\b\f\n\r\t"}}, ""},
		{"bad escape", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{"a":"\x41"}}`, Record{}, `kvresolver: invalid record: "metadata": metadata value: bad escape at byte 77`},
		{"bad unicode escape", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{"a":"\u12"}}`, Record{}, `kvresolver: invalid record: "metadata": metadata value: bad \u escape at byte 77`},
		{"control character", "{\"address\":\"10.0.0.1:80\t\"," + exp + "}", Record{}, `kvresolver: invalid record: "address": control character '\t' in string at byte 23`},
		{"unterminated", `{"address":"10.0.0.1:80`, Record{}, `kvresolver: invalid record: "address": unterminated string at byte 11`},
		{"no colon", `{"address" "10.0.0.1:80"}`, Record{}, `kvresolver: invalid record: want ':' at byte 11, got '"'`},
		{"trailing comma", `{"address":"10.0.0.1:80",` + exp + `,}`, Record{}, `kvresolver: invalid record: field name: want a string at byte 60, got '}'`},
		{"no comma", `{"address":"10.0.0.1:80"` + exp + `}`, Record{}, `kvresolver: invalid record: want ',' at byte 24, got '"' (or '}')`},
		{"unclosed", `{"address":"10.0.0.1:80",` + exp, Record{}, `kvresolver: invalid record: want ',' at byte 59, got the end (or '}')`},
		{"oversize", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{"a":"` + strings.Repeat("x", MaxRecordSize) + `"}}`, Record{}, `kvresolver: invalid record: 8272 bytes, over the 8192-byte limit`},
		{"too much metadata", `{"address":"10.0.0.1:80",` + exp + `,"metadata":{` + manyMetadata(MaxMetadata+1) + `}}`, Record{}, `kvresolver: invalid record: "metadata": over 64 metadata entries`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseRecord([]byte(tc.in))
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("ParseRecord error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseRecord: %v", err)
			}
			if got.Address != tc.want.Address || !got.Expires.Equal(tc.want.Expires) || !maps.Equal(got.Metadata, tc.want.Metadata) {
				t.Fatalf("ParseRecord = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func manyMetadata(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("x", i) + `":"v"`)
	}
	return b.String()
}

func TestRecordMarshalErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		rec  Record
		err  string
	}{
		{"no expiry", Record{Address: "10.0.0.1:80"}, "kvresolver: record has no expiry"},
		{"bad address", Record{Address: "x", Expires: t0}, `kvresolver: invalid address "x": address x: missing port in address`},
		{"non-canonical", Record{Address: "Host:80", Expires: t0}, `kvresolver: address "Host:80" is not in canonical form "host:80"`},
		{"oversize", Record{Address: "10.0.0.1:80", Expires: t0, Metadata: map[string]string{"a": strings.Repeat("x", MaxRecordSize)}}, "kvresolver: record of 8270 bytes, over the 8192-byte limit"},
		{"bad utf-8", Record{Address: "10.0.0.1:80", Expires: t0, Metadata: map[string]string{"a": "\xff"}}, `kvresolver: metadata "a" is not valid UTF-8`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.rec.Marshal()
			if err == nil || err.Error() != tc.err {
				t.Fatalf("Marshal error %v, want %q", err, tc.err)
			}
		})
	}
}

func putRecord(t *testing.T, s kvstore.Store, key string, rec Record) {
	t.Helper()
	b, err := rec.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put(context.Background(), key, b); err != nil {
		t.Fatal(err)
	}
}

func TestStoreLookup(t *testing.T) {
	ctx := context.Background()
	s := kvstore.NewMemory()
	clk := newFakeClock() // now is t0
	log := &recordLogger{}
	live := t0.Add(time.Minute)
	putRecord(t, s, "services/hello/10.0.0.1:80", Record{Address: "10.0.0.1:80", Expires: live, Metadata: map[string]string{"zone": "a"}})
	putRecord(t, s, "services/hello/10.0.0.2:80", Record{Address: "10.0.0.2:80", Expires: live})
	putRecord(t, s, "services/hello/10.0.0.3:80", Record{Address: "10.0.0.3:80", Expires: t0}) // expires now
	putRecord(t, s, "services/hello/10.0.0.4:80", Record{Address: "10.0.0.5:80", Expires: live})
	putRecord(t, s, "services/hello2/10.0.0.6:80", Record{Address: "10.0.0.6:80", Expires: live})
	putRecord(t, s, "services/hello/x/10.0.0.7:80", Record{Address: "10.0.0.7:80", Expires: live})
	s.Put(ctx, "services/hello/10.0.0.8:80", []byte("\xffgarbage"))

	lookup := StoreLookup(s, "", WithLogger(log), clk.option())
	got, err := lookup(ctx, "hello")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"10.0.0.1:80", "10.0.0.2:80"}; !slices.Equal(got, want) {
		t.Fatalf("lookup = %v, want %v", got, want)
	}
	logs := strings.Join(log.all(), "\n")
	for _, want := range []string{
		`kvresolver: skipped 3 malformed records under "services/hello/"`,
		`"services/hello/10.0.0.4:80": kvresolver: invalid record: address "10.0.0.5:80" differs from the key's "10.0.0.4:80"`,
		`"services/hello/10.0.0.8:80": kvresolver: invalid record: not valid UTF-8`,
		`kvresolver: key "services/hello/x/10.0.0.7:80" is not services/hello/<address>`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	recs, err := ReadRecords(ctx, s, "services/", "hello", clk.option())
	if err != nil || len(recs) != 2 || recs[0].Metadata["zone"] != "a" {
		t.Fatalf("ReadRecords = %+v, %v", recs, err)
	}

	// Nothing registered: no addresses, no error.
	if got, err := lookup(ctx, "nobody"); err != nil || len(got) != 0 {
		t.Fatalf("lookup of nobody = %v, %v", got, err)
	}
	// Only expired: the same.
	if got, err := StoreLookup(s, "", withNow(t0.Add(time.Hour)))(ctx, "hello2"); err != nil || len(got) != 0 {
		t.Fatalf("lookup of expired = %v, %v", got, err)
	}
}

func withNow(t time.Time) clockOption {
	return clockOption{clock{now: func() time.Time { return t }}}
}

func TestStoreLookupErrors(t *testing.T) {
	ctx := context.Background()
	mem := kvstore.NewMemory()
	putRecord(t, mem, "services/hello/10.0.0.1:80", Record{Address: "10.0.0.1:80", Expires: t0.Add(time.Minute)})
	mem.Put(ctx, "services/junk/10.0.0.1:80", []byte("garbage"))
	f := kvstoretest.NewFaulty(mem)
	lookup := StoreLookup(f, "", withNow(t0))

	for _, tc := range []struct {
		name   string
		fail   kvstoretest.Op
		target string
		prefix string
		err    string
	}{
		{"list fails", kvstoretest.OpList, "hello", "", `kvresolver: list "services/hello/": kvstoretest: injected List fault: boom`},
		{"get fails", kvstoretest.OpGet, "hello", "", `kvresolver: get "services/hello/10.0.0.1:80": kvstoretest: injected Get fault: boom`},
		{"only garbage", 0, "junk", "", `kvresolver: no valid record under "services/junk/", 1 malformed: "services/junk/10.0.0.1:80": kvresolver: invalid record: want '{' at byte 0, got 'g'`},
		{"target with slash", 0, "a/b", "", `kvresolver: service name "a/b": character '/' not allowed`},
		{"empty target", 0, "", "", `kvresolver: empty service name`},
		{"prefix without slash", 0, "hello", "services", `kvresolver: prefix "services" does not end with a slash`},
		{"bad prefix", 0, "hello", "../", `kvresolver: prefix "../": kvstore: invalid key "..": ".." path segment`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.Heal()
			if tc.fail != 0 {
				f.Fail(tc.fail, errBoom)
			}
			l := lookup
			if tc.prefix != "" {
				l = StoreLookup(f, tc.prefix)
			}
			got, err := l(ctx, tc.target)
			if err == nil || err.Error() != tc.err {
				t.Fatalf("lookup = %v, %v; want error %q", got, err, tc.err)
			}
			if tc.fail != 0 && !errors.Is(err, errBoom) {
				t.Fatalf("error %v does not wrap the store's", err)
			}
		})
	}
	if _, err := ReadRecords(ctx, nil, "", "hello"); err == nil || err.Error() != "kvresolver: nil store" {
		t.Fatalf("nil store: %v", err)
	}
}

// vanishing lists a key that Get then does not find, as when a record is
// deleted between the two.
type vanishing struct{ kvstore.Store }

func (v vanishing) List(ctx context.Context, prefix string) ([]string, error) {
	keys, err := v.Store.List(ctx, prefix)
	return append(keys, prefix+"10.0.0.9:80"), err
}

func TestStoreLookupDeletedMeanwhile(t *testing.T) {
	mem := kvstore.NewMemory()
	putRecord(t, mem, "services/hello/10.0.0.1:80", Record{Address: "10.0.0.1:80", Expires: t0.Add(time.Minute)})
	got, err := StoreLookup(vanishing{mem}, "", withNow(t0))(context.Background(), "hello")
	if err != nil || !slices.Equal(got, []string{"10.0.0.1:80"}) {
		t.Fatalf("lookup = %v, %v", got, err)
	}
}

func getRecord(t *testing.T, s kvstore.Store, key string) Record {
	t.Helper()
	b, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRegisterHeartbeats(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	mem := kvstore.NewMemory()
	f := kvstoretest.NewFaulty(mem)
	clk := newFakeClock()
	log := &recordLogger{}
	md := map[string]string{"zone": "a"}
	reg, err := Register(ctx, f, "hello", "LocalHost:08080", WithHeartbeat(time.Second), WithMetadata(md), WithLogger(log), clk.option())
	if err != nil {
		t.Fatal(err)
	}
	md["zone"] = "changed" // the registration keeps its own copy
	if reg.Key() != "services/hello/localhost:8080" || reg.Address() != "localhost:8080" {
		t.Fatalf("key %q, address %q", reg.Key(), reg.Address())
	}
	rec := getRecord(t, mem, reg.Key())
	if !rec.Expires.Equal(t0.Add(3*time.Second)) || rec.Metadata["zone"] != "a" {
		t.Fatalf("record %+v, want expiry 3 heartbeats ahead and the metadata", rec)
	}

	// Each heartbeat re-puts the record with a fresh expiry.
	tm := clk.nextTimer(t)
	if tm.d != time.Second {
		t.Fatalf("heartbeat after %v", tm.d)
	}
	tm.fire(clk)
	tm = clk.nextTimer(t) // the put is done
	if rec := getRecord(t, mem, reg.Key()); !rec.Expires.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("after a heartbeat, expiry %v", rec.Expires)
	}

	// A failed heartbeat is logged and the next one tried.
	f.FailNext(kvstoretest.OpPut, 1, errBoom)
	tm.fire(clk)
	tm = clk.nextTimer(t)
	if logs := strings.Join(log.all(), "\n"); !strings.Contains(logs, `kvresolver: register "services/hello/localhost:8080": kvstoretest: injected Put fault: boom; trying again in 1s`) {
		t.Fatalf("log: %s", logs)
	}
	if rec := getRecord(t, mem, reg.Key()); !rec.Expires.Equal(t0.Add(4 * time.Second)) {
		t.Fatalf("after a failed heartbeat, expiry %v", rec.Expires)
	}
	tm.fire(clk)
	clk.nextTimer(t)
	if rec := getRecord(t, mem, reg.Key()); !rec.Expires.Equal(t0.Add(6 * time.Second)) {
		t.Fatalf("after a heartbeat, expiry %v", rec.Expires)
	}

	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := mem.Get(ctx, reg.Key()); !errors.Is(err, kvstore.ErrNotFound) {
		t.Fatalf("record still there after Close: %v", err)
	}
	puts := f.Calls(kvstoretest.OpPut)
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
	if f.Calls(kvstoretest.OpPut) != puts {
		t.Fatal("put after Close")
	}
}

func TestRegisterContextEnds(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mem := kvstore.NewMemory()
	ctx, cancel := context.WithCancel(context.Background())
	reg, err := Register(ctx, mem, "hello", "10.0.0.1:80", WithHeartbeat(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	reg.wg.Wait() // the goroutine ends by itself
	if _, err := mem.Get(context.Background(), reg.Key()); !errors.Is(err, kvstore.ErrNotFound) {
		t.Fatalf("record still there after ctx ended: %v", err)
	}
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestRegisterDeleteFails(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := kvstoretest.NewFaulty(kvstore.NewMemory())
	reg, err := Register(context.Background(), f, "hello", "10.0.0.1:80", WithHeartbeat(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	f.Fail(kvstoretest.OpDelete, errBoom)
	want := `kvresolver: deregister "services/hello/10.0.0.1:80": kvstoretest: injected Delete fault: boom`
	for range 2 {
		if err := reg.Close(); err == nil || err.Error() != want || !errors.Is(err, errBoom) {
			t.Fatalf("Close = %v, want %q", err, want)
		}
	}
}

func TestRegisterErrors(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	mem := kvstore.NewMemory()
	for _, tc := range []struct {
		name, service, addr string
		store               kvstore.Store
		opts                []RegisterOption
		err                 string
	}{
		{"nil store", "hello", "10.0.0.1:80", nil, nil, "kvresolver: nil store"},
		{"no service", "", "10.0.0.1:80", mem, nil, "kvresolver: empty service name"},
		{"dot service", ".hello", "10.0.0.1:80", mem, nil, `kvresolver: service name ".hello" begins with a dot`},
		{"listen address", "hello", ":8080", mem, nil, `kvresolver: invalid address ":8080": no host (give the address clients dial, not a listen address)`},
		{"no port", "hello", "10.0.0.1", mem, nil, `kvresolver: invalid address "10.0.0.1": address 10.0.0.1: missing port in address`},
		{"heartbeat", "hello", "10.0.0.1:80", mem, []RegisterOption{WithHeartbeat(0)}, "kvresolver: heartbeat 0s is not positive"},
		{"ttl", "hello", "10.0.0.1:80", mem, []RegisterOption{WithTTL(-time.Second)}, "kvresolver: ttl -1s is not positive"},
		{"ttl short", "hello", "10.0.0.1:80", mem, []RegisterOption{WithHeartbeat(time.Second), WithTTL(time.Second)}, "kvresolver: ttl 1s is not longer than the heartbeat 1s"},
		{"prefix", "hello", "10.0.0.1:80", mem, []RegisterOption{WithPrefix("svc")}, `kvresolver: prefix "svc" does not end with a slash`},
		{"metadata", "hello", "10.0.0.1:80", mem, []RegisterOption{WithMetadata(map[string]string{"": "x"})}, "kvresolver: empty metadata key"},
		{"two errors", "", ":80", mem, nil, "kvresolver: empty service name\nkvresolver: invalid address \":80\": no host (give the address clients dial, not a listen address)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg, err := Register(context.Background(), tc.store, tc.service, tc.addr, tc.opts...)
			if err == nil || err.Error() != tc.err {
				if reg != nil {
					reg.Close()
				}
				t.Fatalf("Register error %v, want %q", err, tc.err)
			}
		})
	}
	keys, _ := mem.List(context.Background(), "")
	if len(keys) != 0 {
		t.Fatalf("failed registrations wrote %v", keys)
	}

	// The first Put's failure is Register's.
	f := kvstoretest.NewFaulty(mem)
	f.Fail(kvstoretest.OpPut, errBoom)
	if _, err := Register(context.Background(), f, "hello", "10.0.0.1:80"); err == nil || !errors.Is(err, errBoom) ||
		err.Error() != `kvresolver: register "services/hello/10.0.0.1:80": kvstoretest: injected Put fault: boom` {
		t.Fatalf("Register with failing store: %v", err)
	}
}

func TestRegisterHeartbeatBounded(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	f := kvstoretest.NewFaulty(kvstore.NewMemory())
	log := &recordLogger{}
	reg, err := Register(context.Background(), f, "hello", "10.0.0.1:80", WithHeartbeat(20*time.Millisecond), WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	// The store hangs: each heartbeat gives up after one heartbeat's time
	// and the next one is tried.
	f.SetLatency(time.Hour)
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, m := range log.all() {
			if strings.Contains(m, "context deadline exceeded; trying again in 20ms") {
				n++
			}
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heartbeats not bounded; log: %v", log.all())
		}
		runtime.Gosched()
	}
	f.Heal()
	if err := reg.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestErrorsBounded: thousands of malformed records or invalid addresses
// make an error (and a log line) of bounded size that still says how many
// there were, not one that names them all: it ends up in every failing RPC's
// status.
func TestErrorsBounded(t *testing.T) {
	ctx := context.Background()
	mem := kvstore.NewMemory()
	for i := range 2000 {
		if err := mem.Put(ctx, fmt.Sprintf("services/junk/10.0.%d.%d:80", i/256, i%256), []byte("garbage")); err != nil {
			t.Fatal(err)
		}
	}
	_, err := StoreLookup(mem, "", withNow(t0))(ctx, "junk")
	if err == nil || len(err.Error()) > 2048 {
		t.Fatalf("error of %d bytes, want at most 2048", len(fmt.Sprint(err)))
	}
	want := `kvresolver: no valid record under "services/junk/", 2000 malformed: "services/junk/10.0.0.0:80": kvresolver: invalid record: want '{' at byte 0, got 'g'`
	if !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "\n(and 1992 more)") {
		t.Fatalf("error %q", err)
	}

	addrs := make([]string, maxAddresses)
	for i := range addrs {
		addrs[i] = fmt.Sprintf("bad-%d", i)
	}
	h := newHarness(t)
	h.lk.reply(addrs...)
	select {
	case err := <-h.cc.reports:
		if len(err.Error()) > 2048 || !strings.HasSuffix(err.Error(), "\n(and 9992 more)") {
			t.Fatalf("ReportError of %d bytes: %.200q", len(err.Error()), err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ReportError")
	}
}
