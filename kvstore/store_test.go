package kvstore_test

import (
	"testing"

	"github.com/grpcutil/grpcutil/kvstore"
	"github.com/grpcutil/grpcutil/kvstore/kvstoretest"
)

func TestMemoryConformance(t *testing.T) {
	kvstoretest.Run(t, func(t *testing.T) kvstore.Store { return kvstore.NewMemory() })
}

func TestDirConformance(t *testing.T) {
	kvstoretest.Run(t, func(t *testing.T) kvstore.Store {
		s, err := kvstore.NewDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestFaultyConformance(t *testing.T) {
	kvstoretest.Run(t, func(t *testing.T) kvstore.Store { return kvstoretest.NewFaulty(kvstore.NewMemory()) })
}
