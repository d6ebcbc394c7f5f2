package kvstore

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// Memory is a Store held in memory, for tests and single-process use.
// It is safe for concurrent use. Create one with NewMemory.
type Memory struct {
	mu sync.RWMutex
	m  map[string][]byte
}

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{m: make(map[string][]byte)}
}

// Get implements Store.
func (s *Memory) Get(ctx context.Context, key string) ([]byte, error) {
	if err := begin(ctx, key); err != nil {
		return nil, err
	}
	s.mu.RLock()
	v, ok := s.m[key]
	s.mu.RUnlock()
	if !ok {
		return nil, NotFound(key)
	}
	return append([]byte(nil), v...), nil
}

// Put implements Store.
func (s *Memory) Put(ctx context.Context, key string, value []byte) error {
	if err := begin(ctx, key); err != nil {
		return err
	}
	if err := CheckValue(key, value); err != nil {
		return err
	}
	v := append(make([]byte, 0, len(value)), value...)
	s.mu.Lock()
	s.m[key] = v
	s.mu.Unlock()
	return nil
}

// Delete implements Store.
func (s *Memory) Delete(ctx context.Context, key string) error {
	if err := begin(ctx, key); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
	return nil
}

// List implements Store.
func (s *Memory) List(ctx context.Context, prefix string) ([]string, error) {
	if err := beginList(ctx, prefix); err != nil {
		return nil, err
	}
	s.mu.RLock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	sort.Strings(keys)
	return keys, nil
}

// begin validates key and checks ctx, in the order every Store should.
func begin(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	return ctxErr(ctx)
}

func beginList(ctx context.Context, prefix string) error {
	if err := ValidatePrefix(prefix); err != nil {
		return err
	}
	return ctxErr(ctx)
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("kvstore: %w", err)
	}
	return nil
}
