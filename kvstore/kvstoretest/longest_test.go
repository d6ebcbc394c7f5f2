package kvstoretest

import (
	"testing"

	"github.com/grpcutil/grpcutil/kvstore"
)

func TestLongestKey(t *testing.T) {
	for _, o := range []Options{
		{MaxKeyLen: kvstore.MaxKeyLen},
		{MaxKeyLen: kvstore.MaxKeyLen, MaxSegmentLen: 255},
		{MaxKeyLen: 1015, MaxSegmentLen: 255},
		{MaxKeyLen: 513, MaxSegmentLen: 255}, // 255 / 255 leaves one byte: no trailing slash
		{MaxKeyLen: 10, MaxSegmentLen: 3},
	} {
		k := longestKey(o)
		if len(k) != o.MaxKeyLen {
			t.Errorf("longestKey(%+v) is %d bytes", o, len(k))
		}
		if err := kvstore.ValidateKey(k); err != nil {
			t.Errorf("longestKey(%+v): %v", o, err)
		}
	}
}
