package iid

import (
	"errors"
)

// BER limits. PKCS#7 from IMDS nests about 10 deep and has well under a
// hundred elements.
const (
	maxBERDepth = 32
	maxBERNodes = 4096
)

var errBER = errors.New("malformed ber")

// berToDER rewrites the BER that IMDS's PKCS#7 uses (indefinite lengths,
// constructed OCTET STRINGs) as DER: definite minimal lengths and primitive
// OCTET STRINGs. Only low tag numbers and lengths below 2^24 are accepted;
// the whole input must be exactly one element.
func berToDER(in []byte) ([]byte, error) {
	c := berConv{in: in}
	n, rest, err := c.parse(in, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errors.New("trailing data after ber element")
	}
	out := make([]byte, 0, len(in))
	return n.encode(out), nil
}

type berNode struct {
	tag      byte // identifier octet, constructed bit included
	content  []byte
	children []*berNode
}

type berConv struct {
	in    []byte
	nodes int
}

// parse reads one element from b and returns it and what follows it.
func (c *berConv) parse(b []byte, depth int) (*berNode, []byte, error) {
	if depth > maxBERDepth {
		return nil, nil, errors.New("ber nested too deep")
	}
	if c.nodes++; c.nodes > maxBERNodes {
		return nil, nil, errors.New("too many ber elements")
	}
	if len(b) < 2 {
		return nil, nil, errBER
	}
	tag := b[0]
	if tag&0x1f == 0x1f {
		return nil, nil, errors.New("ber high tag numbers not supported")
	}
	if tag == 0 {
		return nil, nil, errors.New("unexpected ber end-of-contents")
	}
	constructed := tag&0x20 != 0
	l := b[1]
	b = b[2:]
	n := &berNode{tag: tag}
	if l == 0x80 {
		if !constructed {
			return nil, nil, errors.New("indefinite length on primitive ber element")
		}
		for {
			if len(b) >= 2 && b[0] == 0 && b[1] == 0 {
				b = b[2:]
				break
			}
			if len(b) == 0 {
				return nil, nil, errors.New("ber indefinite length without end-of-contents")
			}
			child, rest, err := c.parse(b, depth+1)
			if err != nil {
				return nil, nil, err
			}
			n.children = append(n.children, child)
			b = rest
		}
		fn, _, err := c.flatten(n)
		return fn, b, err
	}
	length := 0
	if l < 0x80 {
		length = int(l)
	} else {
		k := int(l & 0x7f)
		if k > 3 || k > len(b) {
			return nil, nil, errors.New("ber length too long")
		}
		for i := range k {
			length = length<<8 | int(b[i])
		}
		b = b[k:]
	}
	if length > len(b) {
		return nil, nil, errors.New("ber length beyond end of data")
	}
	body, rest := b[:length], b[length:]
	if !constructed {
		n.content = body
		return n, rest, nil
	}
	for len(body) > 0 {
		child, r, err := c.parse(body, depth+1)
		if err != nil {
			return nil, nil, err
		}
		n.children = append(n.children, child)
		body = r
	}
	n, _, err := c.flatten(n)
	return n, rest, err
}

// flatten turns a constructed universal OCTET STRING into a primitive one
// holding the concatenation of its segments.
func (c *berConv) flatten(n *berNode) (*berNode, []byte, error) {
	if n.tag != 0x24 {
		return n, nil, nil
	}
	var content []byte
	for _, ch := range n.children {
		if ch.tag != 0x04 {
			return nil, nil, errors.New("constructed octet string holds a non-octet-string")
		}
		content = append(content, ch.content...)
	}
	return &berNode{tag: 0x04, content: content}, nil, nil
}

func (n *berNode) size() int {
	if n.children == nil {
		return len(n.content)
	}
	s := 0
	for _, ch := range n.children {
		s += ch.total()
	}
	return s
}

func (n *berNode) total() int {
	s := n.size()
	return 1 + lenOfLen(s) + s
}

func lenOfLen(s int) int {
	switch {
	case s < 0x80:
		return 1
	case s < 0x100:
		return 2
	case s < 0x10000:
		return 3
	default:
		return 4
	}
}

func (n *berNode) encode(out []byte) []byte {
	s := n.size()
	out = append(out, n.tag)
	switch lenOfLen(s) {
	case 1:
		out = append(out, byte(s))
	case 2:
		out = append(out, 0x81, byte(s))
	case 3:
		out = append(out, 0x82, byte(s>>8), byte(s))
	default:
		out = append(out, 0x83, byte(s>>16), byte(s>>8), byte(s))
	}
	if n.children == nil {
		return append(out, n.content...)
	}
	for _, ch := range n.children {
		out = ch.encode(out)
	}
	return out
}
