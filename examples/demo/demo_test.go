package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDemo runs the demo as `go run ./examples/demo` does and checks its
// report, so that the demo cannot rot.
func TestDemo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	report := out.String()
	t.Log("\n" + report)
	for _, want := range []string{
		"fake EC2 metadata service signs instance identity documents with a DEMO key",
		"1. three servers up\n  round robin over server-1, server-2, server-3: ",
		"2. server-2 rotated its certificate",
		"   calls go on\n  round robin over server-1, server-2, server-3: ",
		"3. server-3 revoked",
		"   the client drops it\n  round robin over server-1, server-2: ",
		"4. server-1 killed\n   the client carries on\n  round robin over server-2: server-2\n",
		"  server-1: 123456789012/us-east-1/i-0123456789abcdef0 x",
		"  server-2: 123456789012/us-east-1/i-0123456789abcdef0 x",
		"  server-3: 123456789012/us-east-1/i-0123456789abcdef0 x",
	} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	// On both sides every call started has ended (none in flight), and the
	// servers answered every call they got with OK. The client may have
	// seen a call fail while a change settled; it counts those by code.
	sides := strings.SplitN(report, "server metrics", 2)
	if len(sides) != 2 {
		t.Fatal("the report lacks the server metrics")
	}
	for i, side := range sides {
		started := sum(t, side, `started`)
		handled := sum(t, side, `handled\.\w+`)
		if started == 0 || started != handled || sum(t, side, `in_flight`) != 0 {
			t.Errorf("metrics side %d: started %d, handled %d, in flight %d", i, started, handled, sum(t, side, `in_flight`))
		}
		if i == 1 && sum(t, side, `handled\.OK`) != started {
			t.Errorf("the servers answered %d of %d calls OK", sum(t, side, `handled\.OK`), started)
		}
	}
}

// sum adds up the counters whose names match name in a metrics listing.
func sum(t *testing.T, listing, name string) int {
	t.Helper()
	total := 0
	for _, m := range regexp.MustCompile(`(?m)^  `+name+` +(\d+)$`).FindAllStringSubmatch(listing, -1) {
		n, err := strconv.Atoi(m[1])
		if err != nil {
			t.Fatal(err)
		}
		total += n
	}
	return total
}
