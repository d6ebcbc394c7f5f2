package kvstore_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/grpcutil/grpcutil/kvstore"
)

// BenchmarkStores measures Get, Put and List (of 1,000 keys under one
// prefix, beside 1,000 others) on the memory and folder stores:
//
//	go test -run '^$' -bench BenchmarkStores -benchmem ./kvstore/
func BenchmarkStores(b *testing.B) {
	stores := []struct {
		name string
		new  func(b *testing.B) kvstore.Store
	}{
		{"Memory", func(b *testing.B) kvstore.Store { return kvstore.NewMemory() }},
		{"Dir", func(b *testing.B) kvstore.Store { s, _ := newDir(b); return s }},
	}
	ctx := context.Background()
	value := make([]byte, 1024)
	for _, st := range stores {
		b.Run(st.name+"/Get", func(b *testing.B) {
			s := st.new(b)
			s.Put(ctx, "certs/10.0.0.1:443", value)
			for b.Loop() {
				if _, err := s.Get(ctx, "certs/10.0.0.1:443"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(st.name+"/Put", func(b *testing.B) {
			s := st.new(b)
			for b.Loop() {
				if err := s.Put(ctx, "certs/10.0.0.1:443", value); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(st.name+"/List1000", func(b *testing.B) {
			s := st.new(b)
			for i := 0; i < 1000; i++ {
				s.Put(ctx, fmt.Sprintf("services/hello/10.0.%d.%d:443", i/256, i%256), []byte("{}"))
				s.Put(ctx, fmt.Sprintf("certs/10.0.%d.%d:443", i/256, i%256), []byte("{}"))
			}
			for b.Loop() {
				keys, err := s.List(ctx, "services/hello/")
				if err != nil || len(keys) != 1000 {
					b.Fatalf("List = %d keys, %v", len(keys), err)
				}
			}
		})
	}
}
