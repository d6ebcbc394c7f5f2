package handshake

import (
	"context"
	"fmt"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// AuthInfo is the credentials.AuthInfo of a connection made with Wrap. It
// embeds credentials.CommonAuthInfo with the inner credentials' security
// level, so credentials.CheckSecurityLevel (and grpc-go's per-RPC credentials
// checks) see what the inner layer provides.
type AuthInfo struct {
	credentials.CommonAuthInfo

	inner credentials.AuthInfo
	value any
}

var (
	_ credentials.AuthInfo             = (*AuthInfo)(nil)
	_ credentials.AuthorityValidator   = (*AuthInfo)(nil)
	_ credentials.ChannelzSecurityInfo = (*AuthInfo)(nil)
)

func newAuthInfo(inner credentials.AuthInfo, value any) *AuthInfo {
	a := &AuthInfo{inner: inner, value: value}
	if c, ok := inner.(interface {
		GetCommonAuthInfo() credentials.CommonAuthInfo
	}); ok {
		a.CommonAuthInfo = c.GetCommonAuthInfo()
	}
	return a
}

// AuthType names both layers, the inner one first, e.g. "tls+handshake".
func (a *AuthInfo) AuthType() string {
	if a.inner == nil {
		return "handshake"
	}
	return a.inner.AuthType() + "+handshake"
}

// Inner returns the inner credentials' AuthInfo (e.g. a credentials.TLSInfo).
func (a *AuthInfo) Inner() credentials.AuthInfo { return a.inner }

// Value returns what the local ClientFunc or ServerFunc returned (nil when
// there was no function).
func (a *AuthInfo) Value() any { return a.value }

// TLSInfo returns the credentials.TLSInfo beneath a, if the inner layers have
// one.
func (a *AuthInfo) TLSInfo() (credentials.TLSInfo, bool) { return FindTLSInfo(a) }

// ValidateAuthority implements credentials.AuthorityValidator by delegating
// to the inner AuthInfo. An inner AuthInfo that does not implement it refuses
// every override, as grpc-go does for such credentials.
func (a *AuthInfo) ValidateAuthority(authority string) error {
	if v, ok := a.inner.(credentials.AuthorityValidator); ok {
		return v.ValidateAuthority(authority)
	}
	return fmt.Errorf("handshake: inner credentials %q do not validate authority overrides", a.innerType())
}

// GetSecurityValue implements credentials.ChannelzSecurityInfo, delegating to
// the inner AuthInfo when it has a channelz value.
func (a *AuthInfo) GetSecurityValue() credentials.ChannelzSecurityValue {
	if c, ok := a.inner.(credentials.ChannelzSecurityInfo); ok {
		return c.GetSecurityValue()
	}
	return &credentials.OtherChannelzSecurityValue{Name: a.AuthType()}
}

func (a *AuthInfo) innerType() string {
	if a.inner == nil {
		return "<nil>"
	}
	return a.inner.AuthType()
}

// FindTLSInfo walks ai and the AuthInfos beneath it (anything with an
// Inner() credentials.AuthInfo method, like *AuthInfo) and returns the first
// credentials.TLSInfo.
func FindTLSInfo(ai credentials.AuthInfo) (credentials.TLSInfo, bool) {
	for i := 0; ai != nil && i < 16; i++ { // bound the walk: no cycles
		switch t := ai.(type) {
		case credentials.TLSInfo:
			return t, true
		case *credentials.TLSInfo:
			if t != nil {
				return *t, true
			}
			return credentials.TLSInfo{}, false
		}
		w, ok := ai.(interface{ Inner() credentials.AuthInfo })
		if !ok {
			break
		}
		ai = w.Inner()
	}
	return credentials.TLSInfo{}, false
}

// FromPeer returns the *AuthInfo of p's connection, if it was made with
// Wrap. It also finds one beneath other wrappers that expose Inner().
func FromPeer(p *peer.Peer) (*AuthInfo, bool) {
	if p == nil {
		return nil, false
	}
	ai := p.AuthInfo
	for i := 0; ai != nil && i < 16; i++ {
		if a, ok := ai.(*AuthInfo); ok {
			return a, a != nil
		}
		w, ok := ai.(interface{ Inner() credentials.AuthInfo })
		if !ok {
			break
		}
		ai = w.Inner()
	}
	return nil, false
}

// FromContext returns the *AuthInfo of the connection an RPC arrived on (in a
// server handler or interceptor), if it was made with Wrap.
func FromContext(ctx context.Context) (*AuthInfo, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil, false
	}
	return FromPeer(p)
}
