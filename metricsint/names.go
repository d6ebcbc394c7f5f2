package metricsint

import (
	"strings"

	"google.golang.org/grpc/codes"
)

// Metric name parts. Every name the package registers is built from these;
// doc.go lists the full set.
const (
	sideServer = "server"
	sideClient = "client"

	totalSegment = "total"
	otherSegment = "_other"

	nameStarted = "started"
	nameHandled = "handled."
	// nameHandledOther counts the codes outside grpc-go's known ones past
	// the first maxOddCodes of a side.
	nameHandledOther = nameHandled + "Code_other"
	nameLatency      = "latency"
	nameInFlight     = "in_flight"
	nameMsgSent      = "msg_sent"
	nameMsgReceived  = "msg_received"
)

// safeByte reports whether b may appear in a service or method segment.
func safeByte(b byte) bool {
	return b == '_' || ('0' <= b && b <= '9') || ('a' <= b && b <= 'z') || ('A' <= b && b <= 'Z')
}

// sanitizeSegment returns s with every byte outside [A-Za-z0-9_] replaced by
// '_'. An empty s becomes "_" so that a name never has an empty segment.
func sanitizeSegment(s string) string {
	if s == "" {
		return "_"
	}
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			return sanitizeSlow(s)
		}
	}
	return s
}

func sanitizeSlow(s string) string {
	b := []byte(s)
	for i := range b {
		if !safeByte(b[i]) {
			b[i] = '_'
		}
	}
	return string(b)
}

// sanitizePrefix keeps the dots of prefix as hierarchy separators, drops
// empty segments and sanitizes the others like service and method names.
func sanitizePrefix(prefix string) string {
	var parts []string
	for _, p := range strings.Split(prefix, ".") {
		if p != "" {
			parts = append(parts, sanitizeSegment(p))
		}
	}
	return strings.Join(parts, ".")
}

// splitMethod splits a gRPC full method name "/package.Service/Method" into
// sanitized service and method segments. A name without the expected shape
// still yields two non-empty, safe segments.
func splitMethod(fullMethod string) (service, method string) {
	s := strings.TrimPrefix(fullMethod, "/")
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return "_", sanitizeSegment(s)
	}
	return sanitizeSegment(s[:i]), sanitizeSegment(s[i+1:])
}

// baseName returns "<prefix>.<service>.<method>.<side>." for a full method.
func baseName(prefix, side, fullMethod string) string {
	svc, m := splitMethod(fullMethod)
	return join(prefix, svc+"."+m+"."+side+".")
}

// totalBaseName returns "<prefix>.total.<side>.".
func totalBaseName(prefix, side string) string {
	return join(prefix, totalSegment+"."+side+".")
}

// otherBaseName returns "<prefix>._other._other.<side>.", where methods over
// the WithMaxMethods cap are recorded.
func otherBaseName(prefix, side string) string {
	return join(prefix, otherSegment+"."+otherSegment+"."+side+".")
}

func join(prefix, rest string) string {
	if prefix == "" {
		return rest
	}
	return prefix + "." + rest
}

// codeName returns the metric suffix for a status code: "handled.<Code>",
// with <Code> from codes.Code.String(), sanitized (a code outside the
// known range gives e.g. "handled.Code_99_").
func codeName(c codes.Code) string {
	return nameHandled + sanitizeSegment(c.String())
}
